package addrwatch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"pipeguard/cmd/internal/netnstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeTunnel records what the watcher asks of the tunnel; its one peer
// is at peer and answered from local.
type fakeTunnel struct {
	peer, local netip.Addr

	mu        sync.Mutex // guards the fields below
	forgot    []netip.Addr
	forgotAll int
	checks    int
	routes    []string // what routeOut said in each check: interface or error
}

func (f *fakeTunnel) ForgetLocalAddr(a netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgot = append(f.forgot, a)
}

func (f *fakeTunnel) ForgetLocalAddrs() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgotAll++
}

func (f *fakeTunnel) CheckLocalAddrs(routeOut func(dst, src netip.Addr) (int, error)) int {
	out, err := routeOut(f.peer, f.local)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks++
	if err != nil {
		f.routes = append(f.routes, "error")
	} else {
		f.routes = append(f.routes, fmt.Sprint(out))
	}
	return 0
}

func (f *fakeTunnel) FwMark() uint32 { return 0 }

func (f *fakeTunnel) snapshot() (forgot []netip.Addr, checks int, routes []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.forgot), f.checks, slices.Clone(f.routes)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for: %s", what)
}

// TestWatcher: in a namespace of the test's own, a removed address is
// forgotten by address, a route change runs the route check with the
// kernel's answer, a burst of changes runs it a few times rather than
// once per change, and Serve returns when its context ends.
func TestWatcher(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t)
	link := netnstest.UniqueName("pw")
	ns.MustRun(t, "ip", "link", "add", link, "type", "veth", "peer", "name", link+"p")
	ns.MustRun(t, "ip", "link", "set", link, "up")
	ns.MustRun(t, "ip", "link", "set", link+"p", "up")
	ns.MustRun(t, "ip", "addr", "add", "10.6.0.1/24", "dev", link)
	var index int
	fmt.Sscanf(ns.MustRun(t, "cat", "/sys/class/net/"+link+"/ifindex"), "%d", &index)

	ft := &fakeTunnel{peer: netip.MustParseAddr("10.6.0.9"), local: netip.MustParseAddr("10.6.0.1")}
	var w *Watcher
	if err := ns.Do(func() (err error) { w, err = New(ft, slog.New(slog.NewTextHandler(io.Discard, nil))); return err }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Serve(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	}()

	ns.MustRun(t, "ip", "addr", "add", "10.6.0.2/24", "dev", link)
	ns.MustRun(t, "ip", "addr", "del", "10.6.0.2/24", "dev", link)
	waitFor(t, "10.6.0.2 forgotten", func() bool {
		forgot, _, _ := ft.snapshot()
		return slices.Contains(forgot, netip.MustParseAddr("10.6.0.2"))
	})
	if forgot, _, _ := ft.snapshot(); slices.Contains(forgot, netip.MustParseAddr("10.6.0.1")) {
		t.Fatal("an address still there was forgotten")
	}

	_, before, _ := ft.snapshot()
	ns.MustRun(t, "ip", "route", "add", "10.7.0.0/16", "dev", link)
	waitFor(t, "a route check", func() bool { _, n, _ := ft.snapshot(); return n > before })
	if _, _, routes := ft.snapshot(); routes[len(routes)-1] != fmt.Sprint(index) {
		t.Fatalf("the check was told %s, want interface %d", routes[len(routes)-1], index)
	}

	// A burst: 200 routes in one batch of ip commands, then a route that
	// sends the peer out by the other end of the pair.
	var batch strings.Builder
	for i := range 200 {
		fmt.Fprintf(&batch, "route add 10.8.%d.0/24 dev %s\n", i, link)
	}
	fmt.Fprintf(&batch, "route add 10.6.0.9/32 dev %sp\n", link)
	var other int
	fmt.Sscanf(ns.MustRun(t, "cat", "/sys/class/net/"+link+"p/ifindex"), "%d", &other)
	_, before, _ = ft.snapshot()
	start := time.Now()
	cmd := ns.Command(context.Background(), "ip", "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -batch: %v\n%s", err, out)
	}
	// The last change is followed by a check that sees it.
	waitFor(t, "a check after the burst", func() bool {
		_, _, routes := ft.snapshot()
		return routes[len(routes)-1] == fmt.Sprint(other)
	})
	elapsed := time.Since(start)
	// Paced: one at the start, then at most one per minCheckGap.
	if _, n, _ := ft.snapshot(); n-before > int(elapsed/minCheckGap)+2 {
		t.Fatalf("%d checks for 201 route changes in %v: not paced", n-before, elapsed)
	}
	t.Logf("%d checks for 201 route changes in %v", func() int { _, n, _ := ft.snapshot(); return n - before }(), elapsed)
}
