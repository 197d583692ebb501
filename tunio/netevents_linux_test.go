package tunio

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// addrMessage is an RTM_NEWADDR/RTM_DELADDR body as the kernel sends it.
func addrMessage(family, index int, attrs ...*nl.RtAttr) []byte {
	m := nl.NewIfAddrmsg(family)
	m.Index = uint32(index)
	b := m.Serialize()
	for _, a := range attrs {
		b = append(b, a.Serialize()...)
	}
	return b
}

func addrAttr(typ int, ip string) *nl.RtAttr {
	return nl.NewRtAttr(typ, netip.MustParseAddr(ip).AsSlice())
}

func TestParseAddrMessage(t *testing.T) {
	tests := []struct {
		name  string
		b     []byte
		want  string // "" for not readable
		index int
	}{
		{"ipv4, local and address", addrMessage(unix.AF_INET, 3, addrAttr(unix.IFA_ADDRESS, "10.0.0.1"), addrAttr(unix.IFA_LOCAL, "10.0.0.1")), "10.0.0.1", 3},
		{"ipv4 point-to-point: the local end", addrMessage(unix.AF_INET, 4, addrAttr(unix.IFA_ADDRESS, "10.9.9.9"), addrAttr(unix.IFA_LOCAL, "10.0.0.1")), "10.0.0.1", 4},
		{"ipv6, address only", addrMessage(unix.AF_INET6, 5, addrAttr(unix.IFA_ADDRESS, "fd00::1")), "fd00::1", 5},
		{"family and length disagree", addrMessage(unix.AF_INET, 3, addrAttr(unix.IFA_ADDRESS, "fd00::1")), "", 0},
		{"no address", addrMessage(unix.AF_INET, 3, nl.NewRtAttr(unix.IFA_LABEL, []byte("eth0\x00"))), "", 0},
		{"short header", addrMessage(unix.AF_INET, 3)[:4], "", 0},
		{"cut attribute", addrMessage(unix.AF_INET, 3, addrAttr(unix.IFA_LOCAL, "10.0.0.1"))[:unix.SizeofIfAddrmsg+6], "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, ok := parseAddrMessage(tt.b)
			if tt.want == "" {
				if ok {
					t.Fatalf("read %+v from an unreadable message", ev)
				}
				return
			}
			if !ok || ev.Addr != netip.MustParseAddr(tt.want) || ev.Index != tt.index {
				t.Fatalf("got %+v, %v; want %s on %d", ev, ok, tt.want, tt.index)
			}
		})
	}
}

// FuzzParseAddrMessage: the address notification parser takes any bytes
// without panicking, and what it returns is an address of the message's
// family.
func FuzzParseAddrMessage(f *testing.F) {
	f.Add(addrMessage(unix.AF_INET, 3, addrAttr(unix.IFA_ADDRESS, "10.9.9.9"), addrAttr(unix.IFA_LOCAL, "10.0.0.1")))
	f.Add(addrMessage(unix.AF_INET6, 5, addrAttr(unix.IFA_ADDRESS, "fd00::1")))
	f.Add([]byte{2, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, ok := parseAddrMessage(b)
		if !ok {
			return
		}
		if fam := b[0]; !ev.Addr.IsValid() || ev.Addr.Is4() != (fam == unix.AF_INET) {
			t.Fatalf("family %d gave %v", fam, ev.Addr)
		}
	})
}

// TestNetEvents follows addresses and routes in a namespace of the
// test's own: an address added and removed is reported with its
// interface, a route added as a routing change; Next with a wait returns
// empty when nothing comes, and Close unblocks it.
func TestNetEvents(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t)
	var ev *NetEvents
	inNetns(t, ns, func() (err error) { ev, err = SubscribeNet(); return err })
	defer ev.Close()
	// A veth pair with both ends here stands in for any interface (this
	// kernel may have no dummy driver).
	ipIn(t, ns, "link", "add", "pgd0", "type", "veth", "peer", "name", "pgd1")
	ipIn(t, ns, "link", "set", "pgd0", "up")
	var index int
	inNetns(t, ns, func() error {
		r, err := OpenRTNL()
		if err != nil {
			return err
		}
		defer r.Close()
		st, err := r.Link("pgd0")
		index = st.Index
		return err
	})
	// wait reads events until one satisfies ok, or fails the test.
	wait := func(what string, ok func(NetEvent) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			evs, err := ev.Next(time.Second)
			if err != nil && !errors.Is(err, ErrEventsLost) {
				t.Fatal(err)
			}
			for _, e := range evs {
				if ok(e) {
					return
				}
			}
		}
		t.Fatalf("no event: %s", what)
	}
	ipIn(t, ns, "addr", "add", "10.7.0.1/24", "dev", "pgd0")
	wait("10.7.0.1 added", func(e NetEvent) bool {
		return e.Kind == AddrAdded && e.Addr == netip.MustParseAddr("10.7.0.1") && e.Index == index
	})
	ipIn(t, ns, "addr", "add", "fd07::1/64", "dev", "pgd0", "nodad")
	ipIn(t, ns, "addr", "del", "fd07::1/64", "dev", "pgd0")
	wait("fd07::1 removed", func(e NetEvent) bool {
		return e.Kind == AddrRemoved && e.Addr == netip.MustParseAddr("fd07::1") && e.Index == index
	})
	ipIn(t, ns, "route", "add", "10.8.0.0/16", "dev", "pgd0")
	wait("a route added", func(e NetEvent) bool { return e.Kind == RoutingChanged })
	ipIn(t, ns, "rule", "add", "fwmark", "7", "lookup", "100")
	wait("a rule added", func(e NetEvent) bool { return e.Kind == RoutingChanged })

	// Nothing more happens: Next with a wait returns empty.
	for {
		evs, err := ev.Next(50 * time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := ev.Next(0)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	ev.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Next after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not return after Close")
	}
}

// TestRouteOut asks which interface a datagram leaves by, from one of
// the host's addresses, and with a mark that policy routing follows.
func TestRouteOut(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t)
	for _, l := range []string{"pgo0", "pgo1"} {
		ipIn(t, ns, "link", "add", l, "type", "veth", "peer", "name", l+"p")
		ipIn(t, ns, "link", "set", l, "up")
		ipIn(t, ns, "link", "set", l+"p", "up")
	}
	ipIn(t, ns, "addr", "add", "10.7.0.1/24", "dev", "pgo0")
	ipIn(t, ns, "addr", "add", "10.7.1.1/24", "dev", "pgo1")
	ipIn(t, ns, "addr", "add", "fd07::1/64", "dev", "pgo1", "nodad")
	ipIn(t, ns, "route", "add", "10.9.0.0/16", "dev", "pgo0")
	ipIn(t, ns, "route", "add", "10.9.0.0/16", "dev", "pgo1", "table", "100")
	ipIn(t, ns, "rule", "add", "fwmark", "7", "lookup", "100")
	var r *RTNL
	inNetns(t, ns, func() (err error) { r, err = OpenRTNL(); return err })
	defer r.Close()
	index := func(name string) int {
		st, err := r.Link(name)
		if err != nil {
			t.Fatal(err)
		}
		return st.Index
	}
	a := netip.MustParseAddr
	tests := []struct {
		name     string
		dst, src netip.Addr
		mark     uint32
		want     string // interface; "" for an error
	}{
		{"main table", a("10.9.1.1"), a("10.7.0.1"), 0, "pgo0"},
		{"from the other interface's address, routing decides", a("10.9.1.1"), a("10.7.1.1"), 0, "pgo0"},
		{"the mark's table", a("10.9.1.1"), a("10.7.0.1"), 7, "pgo1"},
		{"ipv6", a("fd07::9"), a("fd07::1"), 0, "pgo1"},
		{"v4-mapped", a("::ffff:10.9.1.1"), a("::ffff:10.7.0.1"), 0, "pgo0"},
		{"a source the host does not have", a("10.9.1.1"), a("10.7.0.99"), 0, ""},
		{"no route", a("10.66.0.1"), a("10.7.0.1"), 0, ""},
		{"mixed families", a("fd07::9"), a("10.7.0.1"), 0, ""},
	}
	for _, tt := range tests {
		got, err := r.RouteOut(tt.dst, tt.src, tt.mark)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("%s: interface %d, want an error", tt.name, got)
		case tt.want != "" && (err != nil || got != index(tt.want)):
			t.Errorf("%s: interface %d, %v; want %s (%d)", tt.name, got, err, tt.want, index(tt.want))
		}
	}
}
