package linkwatch

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"pipeguard/cmd/headless-client/ifsetup"
	"pipeguard/cmd/internal/netnstest"
	"pipeguard/tunio"
)

// records keeps the log records of a test.
type records struct {
	mu   sync.Mutex // guards recs
	recs []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

// count counts the records at level whose message contains s.
func (r *records) count(level slog.Level, s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.recs {
		if rec.Level == level && strings.Contains(rec.Message, s) {
			n++
		}
	}
	return n
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for: %s", what)
}

// fixture is a TUN in a namespace of its own with a watcher serving.
type fixture struct {
	ns    *netnstest.NS
	name  string
	dev   tunio.Device
	log   *records
	done  chan error
	stop  context.CancelFunc
	onUps chan struct{}
}

func start(t *testing.T, cfg Config, setup func(f *fixture) func() error) *fixture {
	t.Helper()
	netnstest.RequireRoot(t)
	f := &fixture{ns: netnstest.New(t), name: netnstest.UniqueName("pg"), log: &records{}, done: make(chan error, 1), onUps: make(chan struct{}, 10)}
	if err := f.ns.Do(func() (err error) { f.dev, err = tunio.CreateTUN(f.name, 1280); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.dev.Close() })
	f.ns.MustRun(t, "ip", "link", "set", f.name, "up")
	cfg.Name = f.name
	if setup != nil {
		hook := setup(f)
		cfg.OnUp = func() error {
			f.onUps <- struct{}{}
			return hook()
		}
	}
	var w *Watcher
	if err := f.ns.Do(func() (err error) { w, err = New(cfg, slog.New(f.log)); return err }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.stop = cancel
	go func() { f.done <- w.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-f.done:
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return f
}

func (f *fixture) mtu(t *testing.T) int {
	t.Helper()
	out := f.ns.MustRun(t, "ip", "-o", "link", "show", f.name)
	var mtu int
	if i := strings.Index(out, " mtu "); i >= 0 {
		for _, c := range out[i+5:] {
			if c < '0' || c > '9' {
				break
			}
			mtu = mtu*10 + int(c-'0')
		}
	}
	return mtu
}

// TestHoldsMTU: an MTU raised above 1280 (as wg-quick does: 1420) is set
// back, with one warning per raise that names the fix; the watcher stops
// when the interface is deleted.
func TestHoldsMTU(t *testing.T) {
	f := start(t, Config{MaxMTU: 1280}, nil)
	for round := 1; round <= 2; round++ {
		f.ns.MustRun(t, "ip", "link", "set", f.name, "mtu", "1420")
		waitFor(t, "MTU back at 1280", func() bool { return f.mtu(t) == 1280 })
		waitFor(t, "the warning", func() bool { return f.log.count(slog.LevelWarn, "MTU 1420 set back to 1280") == round })
	}
	// Lowering is the admin's business.
	f.ns.MustRun(t, "ip", "link", "set", f.name, "mtu", "1280")
	f.ns.MustRun(t, "ip", "link", "set", f.name, "mtu", "1200")
	time.Sleep(100 * time.Millisecond)
	if m := f.mtu(t); m != 1200 {
		t.Errorf("MTU 1200 became %d", m)
	}
	if n := f.log.count(slog.LevelWarn, "set back"); n != 2 {
		t.Errorf("%d warnings, want 2 (one per raise)", n)
	}
	if f.log.count(slog.LevelWarn, "set MTU = 1280 where the MTU is configured") != 2 {
		t.Error("the warning does not say what to change")
	}
	f.dev.Close()
	select {
	case err := <-f.done:
		f.done <- err
		if err != nil {
			t.Errorf("Serve after the interface went: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the interface was deleted")
	}
}

// TestHoldsMTUSetBeforeServe: a raise between New and Serve is seen too.
func TestHoldsMTUSetBeforeServe(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t)
	name := netnstest.UniqueName("pg")
	var dev tunio.Device
	var w *Watcher
	if err := ns.Do(func() (err error) {
		if dev, err = tunio.CreateTUN(name, 1280); err != nil {
			return err
		}
		w, err = New(Config{Name: name, MaxMTU: 1280}, slog.New(&records{}))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	ns.MustRun(t, "ip", "link", "set", name, "mtu", "9000", "up")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Serve(ctx) }()
	waitFor(t, "MTU back at 1280", func() bool { return strings.Contains(ns.MustRun(t, "ip", "link", "show", name), "mtu 1280 ") })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, goleak.IgnoreCurrent())
}

// TestRestoresAfterLinkBounce:
// after `ip link set IFACE down; up` the routes through the interface
// (and its IPv6 addresses) came back only with a restart. With the
// watcher's OnUp calling ifsetup's Restore they are back at once; an MTU
// change alone does not run OnUp.
func TestRestoresAfterLinkBounce(t *testing.T) {
	var ifc *ifsetup.Interface
	f := start(t, Config{MaxMTU: 1280}, func(f *fixture) func() error {
		err := f.ns.Do(func() (err error) {
			ifc, err = ifsetup.Up(ifsetup.Config{Name: f.name, MTU: 1280,
				Addresses: []netip.Prefix{netip.MustParsePrefix("10.7.0.2/24"), netip.MustParsePrefix("fd07::2/64")},
				Routes:    []netip.Prefix{netip.MustParsePrefix("10.8.0.0/16"), netip.MustParsePrefix("fd08::/64")},
			}, slog.New(f.log))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.ns.Do(ifc.Down) })
		return ifc.Restore
	})
	routes := func() string {
		return f.ns.MustRun(t, "ip", "-4", "route", "show", "dev", f.name) + f.ns.MustRun(t, "ip", "-6", "route", "show", "dev", f.name) +
			f.ns.MustRun(t, "ip", "addr", "show", "dev", f.name)
	}
	complete := func() bool {
		r := routes()
		return strings.Contains(r, "10.8.0.0/16") && strings.Contains(r, "fd08::/64") && strings.Contains(r, "fd07::2/64") && strings.Contains(r, "10.7.0.2/24")
	}
	for round := range 3 {
		f.ns.MustRun(t, "ip", "link", "set", f.name, "down")
		f.ns.MustRun(t, "ip", "link", "set", f.name, "up")
		waitFor(t, "routes and addresses restored after a bounce", complete)
		if n := len(f.onUps); n != round+1 {
			t.Errorf("round %d: OnUp ran %d times", round, n)
		}
	}
	f.ns.MustRun(t, "ip", "link", "set", f.name, "mtu", "1300")
	waitFor(t, "MTU back at 1280", func() bool { return f.mtu(t) == 1280 })
	time.Sleep(100 * time.Millisecond)
	if n := len(f.onUps); n != 3 {
		t.Errorf("OnUp ran %d times after an MTU change, want 3", n)
	}
}
