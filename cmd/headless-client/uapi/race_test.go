package uapi

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pipeguard/stages"
)

// serve runs a server for dev on a socket in a temporary directory, with
// a lock as the tunnel command passes, until the test ends.
func serve(t *testing.T, dev Device) string {
	t.Helper()
	path := t.TempDir() + "/t.sock"
	srv, err := Listen(path, dev, &sync.Mutex{}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return path
}

// peersOf parses a get answer into each peer's allowed IPs and keepalive,
// one string per peer, by public key.
func peersOf(answer string) map[string]string {
	out := map[string]string{}
	var cur string
	for line := range strings.Lines(answer) {
		k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		switch k {
		case "public_key":
			cur = v
			out[cur] = ""
		case "allowed_ip", "persistent_keepalive_interval":
			out[cur] += k + "=" + v + ";"
		}
	}
	return out
}

// generation is a whole configuration: n peers, each with a /32, a /128
// and a keepalive that say which generation made them.
type generation struct {
	body string            // the set request
	want map[string]string // peersOf of what a get must then show
}

func makeGeneration(t *testing.T, g, n int) generation {
	gen := generation{want: map[string]string{}}
	var b strings.Builder
	b.WriteString("set=1\nreplace_peers=true\n")
	for i := range n {
		pk := hexOf(key(t).Public())
		v4 := fmt.Sprintf("10.%d.%d.%d/32", g, i>>8, i&0xff)
		v6 := netip.MustParsePrefix(fmt.Sprintf("fd00::%x:%x/128", g, i)).String()
		fmt.Fprintf(&b, "public_key=%s\npersistent_keepalive_interval=%d\nallowed_ip=%s\nallowed_ip=%s\n", pk, 20+g, v4, v6)
		gen.want[pk] = fmt.Sprintf("persistent_keepalive_interval=%d;allowed_ip=%s;allowed_ip=%s;", 20+g, v4, v6)
	}
	b.WriteString("\n")
	gen.body = b.String()
	return gen
}

// TestSetRacesGets: one client replaces all peers again and again with
// one of two configurations, while two others read; every answer must be
// the configuration before a set or after it, never a mix. Run under
// -race, it also checks that get and set share no unguarded state.
func TestSetRacesGets(t *testing.T) {
	tun, _ := newTunnel(t)
	path := serve(t, tun)
	const n, sets = 300, 30
	gens := []generation{makeGeneration(t, 0, n), makeGeneration(t, 1, n)}
	empty := map[string]string{}

	stop := make(chan struct{})
	var readers sync.WaitGroup
	var mu sync.Mutex
	gets := 0
	for range 2 {
		readers.Go(func() {
			c := dial(t, path)
			r := bufio.NewReader(c)
			for {
				select {
				case <-stop:
					return
				default:
				}
				io.WriteString(c, "get=1\n\n")
				got := peersOf(readAnswer(t, r))
				if !maps.Equal(got, empty) && !maps.Equal(got, gens[0].want) && !maps.Equal(got, gens[1].want) {
					for k, v := range got {
						if gens[0].want[k] != v && gens[1].want[k] != v {
							t.Errorf("peer %s: %q, want %q or %q", k, v, gens[0].want[k], gens[1].want[k])
							break
						}
					}
					t.Errorf("a get saw %d peers, neither configuration whole", len(got))
					return
				}
				mu.Lock()
				gets++
				mu.Unlock()
			}
		})
	}
	c := dial(t, path)
	r := bufio.NewReader(c)
	for i := range sets {
		io.WriteString(c, gens[i%2].body)
		if got := readAnswer(t, r); got != "errno=0\n" {
			t.Fatalf("set %d answered %q", i, got)
		}
	}
	close(stop)
	readers.Wait()
	if gets == 0 {
		t.Fatal("no get completed while the sets ran")
	}
	if got := peersOf(string(AppendGet(nil, tun))); !maps.Equal(got, gens[(sets-1)%2].want) {
		t.Fatal("the last configuration is not what the tunnel has")
	}
}

// stalledDevice is a tunnel whose Configure waits, in the middle of a
// batch, until release is closed: a set that takes as long as we like.
type stalledDevice struct {
	*stages.Tunnel
	inside  chan struct{} // closed once a batch is under way
	release chan struct{}
}

func (d *stalledDevice) Configure(change func(*stages.Batch) error) error {
	return d.Tunnel.Configure(func(b *stages.Batch) error {
		if err := change(b); err != nil {
			return err
		}
		close(d.inside)
		<-d.release
		return nil
	})
}

// TestGetDoesNotWaitForSet: while a set is half applied (its batch
// stalled), a get from another client answers at once, with the peers as
// they were before the set.
func TestGetDoesNotWaitForSet(t *testing.T) {
	tun, _ := newTunnel(t)
	old := key(t).Public()
	if err := tun.AddPeer(stages.PeerConfig{PublicKey: old}); err != nil {
		t.Fatal(err)
	}
	dev := &stalledDevice{Tunnel: tun, inside: make(chan struct{}), release: make(chan struct{})}
	path := serve(t, dev)

	setter := dial(t, path)
	io.WriteString(setter, makeGeneration(t, 0, 50).body)
	select {
	case <-dev.inside:
	case <-time.After(10 * time.Second):
		t.Fatal("the set did not start")
	}

	reader := dial(t, path)
	reader.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(reader, "get=1\n\n")
	got := peersOf(readAnswer(t, bufio.NewReader(reader)))
	if keys := slices.Collect(maps.Keys(got)); !slices.Equal(keys, []string{hexOf(old)}) {
		t.Fatalf("a get during a set saw %d peers, want the one from before", len(keys))
	}
	close(dev.release)
	setter.SetReadDeadline(time.Now().Add(10 * time.Second))
	if ans := readAnswer(t, bufio.NewReader(setter)); ans != "errno=0\n" {
		t.Fatalf("set answered %q", ans)
	}
	if n := len(tun.Peers()); n != 50 {
		t.Fatalf("%d peers after the set, want 50", n)
	}
}
