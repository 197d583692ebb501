package sdnotify_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"pipeguard/cmd/headless-client/sdnotify"
	"pipeguard/cmd/headless-client/sdnotify/sdnotifytest"
	"pipeguard/cmd/internal/netnstest"
	"pipeguard/noise"
	"pipeguard/stages"
	"pipeguard/tunio/memtun"
	"pipeguard/tunio/memudp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFromEnv(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name             string
		socket, usec, wp string
		wantNil, wantErr bool
		wantWatchdog     time.Duration
	}{
		{name: "not under systemd", wantNil: true},
		{name: "path", socket: "/run/systemd/notify"},
		{name: "abstract", socket: "@/org/freedesktop/systemd1/notify"},
		{name: "watchdog", socket: "/run/systemd/notify", usec: "30000000", wantWatchdog: 30 * time.Second},
		{name: "watchdog for this pid", socket: "/run/systemd/notify", usec: "2000000", wp: pid, wantWatchdog: 2 * time.Second},
		{name: "watchdog for another pid", socket: "/run/systemd/notify", usec: "2000000", wp: "1"},
		{name: "vsock", socket: "vsock:2:1234", wantErr: true},
		{name: "bad watchdog", socket: "/run/systemd/notify", usec: "soon", wantErr: true},
		{name: "zero watchdog", socket: "/run/systemd/notify", usec: "0", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NOTIFY_SOCKET", tc.socket)
			t.Setenv("WATCHDOG_USEC", tc.usec)
			t.Setenv("WATCHDOG_PID", tc.wp)
			n, err := sdnotify.FromEnv()
			if tc.wantErr {
				if !errors.Is(err, sdnotify.ErrBadEnv) {
					t.Fatalf("FromEnv = %v, want ErrBadEnv", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (n == nil) != tc.wantNil {
				t.Fatalf("FromEnv = %v, want nil: %v", n, tc.wantNil)
			}
			if got := n.WatchdogInterval(); got != tc.wantWatchdog {
				t.Errorf("WatchdogInterval = %v, want %v", got, tc.wantWatchdog)
			}
		})
	}
}

// TestProtocol sends every kind of notification to a real socket, at a
// path and in the abstract namespace, and checks what arrives.
func TestProtocol(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    func(t *testing.T) *sdnotifytest.Listener
	}{
		{"path", func(t *testing.T) *sdnotifytest.Listener { return sdnotifytest.Listen(t) }},
		{"abstract", func(t *testing.T) *sdnotifytest.Listener {
			return sdnotifytest.ListenAt(t, "@"+netnstest.UniqueName("pipeguard-notify-test"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.l(t)
			t.Setenv("NOTIFY_SOCKET", l.Path)
			n, err := sdnotify.FromEnv()
			if err != nil || n == nil {
				t.Fatalf("FromEnv = %v, %v", n, err)
			}
			const wait = 5 * time.Second
			if err := n.Ready("1 peer, 0 with a handshake\nin the last 3 min"); err != nil {
				t.Fatal(err)
			}
			m := l.Next(t, wait)
			if !m.Has("READY", "1") || !m.Has("STATUS", "1 peer, 0 with a handshake in the last 3 min") || len(m.Vars) != 2 {
				t.Errorf("Ready sent %v", m.Vars)
			}
			before := monotonicUsec(t)
			if err := n.Reloading(); err != nil {
				t.Fatal(err)
			}
			after := monotonicUsec(t)
			m = l.Next(t, wait)
			usec, err := strconv.ParseInt(m.Vars["MONOTONIC_USEC"], 10, 64)
			if !m.Has("RELOADING", "1") || err != nil || usec < before || usec > after {
				t.Errorf("Reloading sent %v; want RELOADING=1 and MONOTONIC_USEC in [%d, %d]", m.Vars, before, after)
			}
			for _, step := range []struct {
				send      func() error
				key, want string
			}{
				{n.Stopping, "STOPPING", "1"},
				{n.Watchdog, "WATCHDOG", "1"},
				{func() error { return n.Status("up") }, "STATUS", "up"},
			} {
				if err := step.send(); err != nil {
					t.Fatal(err)
				}
				if m := l.Next(t, wait); !m.Has(step.key, step.want) || len(m.Vars) != 1 {
					t.Errorf("sent %v, want only %s=%s", m.Vars, step.key, step.want)
				}
			}
		})
	}
}

// TestNilNotifier: outside systemd every call is a no-op.
func TestNilNotifier(t *testing.T) {
	var n *sdnotify.Notifier
	for _, err := range []error{n.Ready("x"), n.Reloading(), n.Stopping(), n.Status("x"), n.Watchdog()} {
		if err != nil {
			t.Errorf("nil notifier: %v", err)
		}
	}
	n.Watch(context.Background(), nil, nil) // returns at once
}

// TestSendWithoutManager: a socket nobody listens on is an error to log,
// not a crash.
func TestSendWithoutManager(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", t.TempDir()+"/gone")
	n, err := sdnotify.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Ready("x"); err == nil {
		t.Error("Ready to a missing socket: no error")
	}
}

func monotonicUsec(t *testing.T) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1e3
}

// TestWatchTunnel runs Watch on a real (in-memory) tunnel with a 200 ms
// watchdog: it pings every 100 ms while the tunnel is healthy, with a
// STATUS= line about its peer, and stops when its context ends. That the
// pings stop for a stalled stage is shown in stages
// (TestWatchdogPingsStopWhileStalled), where stages can be stalled.
func TestWatchTunnel(t *testing.T) {
	l := sdnotifytest.Listen(t)
	t.Setenv("NOTIFY_SOCKET", l.Path)
	t.Setenv("WATCHDOG_USEC", "200000")
	n, err := sdnotify.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	tun := memTunnel(t)
	ctx, cancel := context.WithCancel(context.Background())
	serveDone := make(chan error, 1)
	go func() { serveDone <- tun.Serve(ctx) }()
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); n.Watch(ctx, tun, quiet()) }()

	pings := 0
	var first, last time.Time
	for pings < 5 {
		m := l.Next(t, 5*time.Second)
		if m.Has("WATCHDOG", "1") {
			if pings == 0 {
				first = m.At
			}
			last = m.At
			pings++
			continue
		}
		// The peer has no session: the line names it.
		if s := m.Vars["STATUS"]; s != "1 peer, 0 with a handshake in the last 3 min; without a session: "+tun.Peers()[0].PublicKey.String()[:8] {
			t.Errorf("status %q", s)
		}
	}
	if gap := last.Sub(first) / 4; gap < 50*time.Millisecond || gap > time.Second {
		t.Errorf("pings every %v on average, want about 100 ms", gap)
	}
	cancel()
	<-watchDone
	if err := <-serveDone; err != nil {
		t.Fatal(err)
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// memTunnel is a tunnel with one peer on in-memory devices; Serve closes them.
func memTunnel(t *testing.T) *stages.Tunnel {
	t.Helper()
	conn, err := memudp.NewNetwork().Listen(netip.MustParseAddrPort("192.0.2.1:51820"))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := memtun.New(memtun.Config{})
	if err != nil {
		t.Fatal(err)
	}
	k, err := noise.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	pk, err := noise.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	tun, err := stages.New(stages.Config{PrivateKey: k, Peers: []stages.PeerConfig{{
		PublicKey: pk.Public(), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")},
	}}}, dev, conn, nil, quiet())
	if err != nil {
		t.Fatal(err)
	}
	return tun
}
