package metrics

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"go.uber.org/goleak"

	"pipeguard/noise"
	"pipeguard/stages"
	"pipeguard/tunio/memtun"
	"pipeguard/tunio/memudp"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// serve starts s in the background and returns a function that stops it
// and checks it returned nil promptly.
func serve(t *testing.T, s *Server) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx) }()
	return func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not return")
		}
	}
}

func TestPprofServer(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s, err := Listen("127.0.0.1:0", PprofMux(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	stop := serve(t, s)
	base := "http://" + s.Addr().String()
	if code, b := get(t, base+"/debug/pprof/"); code != 200 || !bytes.Contains(b, []byte("goroutine")) {
		t.Errorf("index: %d %.100s", code, b)
	}
	if code, b := get(t, base+"/debug/pprof/cmdline"); code != 200 || len(b) == 0 {
		t.Errorf("cmdline: %d", code)
	}
	if code, b := get(t, base+"/debug/pprof/goroutine"); code != 200 {
		t.Errorf("goroutine: %d", code)
	} else if _, err := profile.Parse(bytes.NewReader(b)); err != nil {
		t.Errorf("goroutine profile: %v", err)
	}
	if code, b := get(t, base+"/debug/pprof/profile?seconds=1"); code != 200 {
		t.Errorf("profile: %d", code)
	} else if _, err := profile.Parse(bytes.NewReader(b)); err != nil {
		t.Errorf("CPU profile: %v", err)
	}
	// Its own mux: nothing else is served there.
	if code, _ := get(t, base+"/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics on the pprof mux: %d", code)
	}
	stop()
}

func TestListenErrors(t *testing.T) {
	if _, err := Listen("127.0.0.1:99999", PprofMux(), quiet); err == nil {
		t.Error("bad port accepted")
	}
	s, err := Listen("127.0.0.1:0", PprofMux(), nil) // nil: no log
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(s.Addr().String(), PprofMux(), quiet); err == nil {
		t.Error("busy address accepted")
	}
	stop := serve(t, s)
	stop()
}

// TestTunnelMetrics serves a real tunnel's metrics: it is a Source, its
// stages and peers show, and the output is well-formed.
func TestTunnelMetrics(t *testing.T) {
	key, _ := noise.GeneratePrivateKey()
	peerKey, _ := noise.GeneratePrivateKey()
	dev, err := memtun.New(memtun.Config{})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := memudp.NewNetwork().Listen(netip.MustParseAddrPort("192.0.2.1:51820"))
	if err != nil {
		t.Fatal(err)
	}
	tun, err := stages.New(stages.Config{PrivateKey: key, Workers: 2, Peers: []stages.PeerConfig{{
		PublicKey: peerKey.Public(), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.9.0.2/32")},
	}}}, dev, conn, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tun.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	s, err := Listen("127.0.0.1:0", NewMux(tun), quiet)
	if err != nil {
		t.Fatal(err)
	}
	stop := serve(t, s)
	defer stop()
	code, b := get(t, "http://"+s.Addr().String()+"/metrics")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	got := parseStrict(t, string(b))
	for _, k := range []string{
		`pipeguard_stage_instances{stage="decrypt"}`,
		`pipeguard_stage_queue_capacity{stage="tunwrite"}`,
		`pipeguard_peer_last_handshake_seconds{public_key="` + peerKey.Public().String() + `"}`,
	} {
		if _, ok := got[k]; !ok {
			t.Errorf("no %s in:\n%s", k, strings.Join(strings.SplitN(string(b), "\n", 20), "\n"))
		}
	}
	if got[`pipeguard_stage_instances{stage="decrypt"}`] != 2 || got["pipeguard_peers"] != 1 {
		t.Errorf("instances %v, peers %v", got[`pipeguard_stage_instances{stage="decrypt"}`], got["pipeguard_peers"])
	}
}

// TestServeStopsWithIdleConnection: one TCP connection
// that sent nothing held Shutdown for the whole 2 s grace, which equalled
// the client's stop timeout: the client exited 1, "did not stop within
// 2 s". Now such a connection is cut after ShutdownGrace.
func TestServeStopsWithIdleConnection(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s, err := Listen("127.0.0.1:0", PprofMux(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx) }()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // let the server accept it
	begin := time.Now()
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
		// 1.5 s: ShutdownGrace and a margin for a loaded machine, and
		// still below the client's 2 s stop timeout.
		if d := time.Since(begin); d > 1500*time.Millisecond {
			t.Fatalf("Serve took %v to stop with an idle connection open", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
}
