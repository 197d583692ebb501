package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMetricsAndPprofEndpoints runs a client with --metrics-addr and
// --pprof-addr on its namespace's loopback, passes traffic, and reads
// both endpoints from inside the namespace: the metrics must show the
// traffic per stage and per peer, and pprof must answer.
func TestMetricsAndPprofEndpoints(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	a, z := peeredNodes(t)
	pa := a.startClient(t, b, "--metrics-addr", "127.0.0.1:9586", "--pprof-addr", "127.0.0.1:6060")
	pz := z.startClient(t, b)
	transfer(t, a, z, 2<<20, nil)

	metrics := httpGetIn(t, a, "http://127.0.0.1:9586/metrics")
	for _, want := range []string{
		`# TYPE pipeguard_stage_packets_total counter`,
		`pipeguard_peer_last_handshake_seconds{public_key="` + z.key.Public().String() + `"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if v := sample(t, metrics, `pipeguard_peer_transmit_bytes_total{public_key="`+z.key.Public().String()+`"}`); v < 2<<20 {
		t.Errorf("peer sent bytes %v after a 2 MiB transfer", v)
	}
	if v := sample(t, metrics, `pipeguard_peer_handshakes_total{public_key="`+z.key.Public().String()+`"}`); v != 1 {
		t.Errorf("peer handshakes %v, want 1", v)
	}
	if v := sample(t, metrics, `pipeguard_stage_packets_total{stage="encrypt"}`); v < 1000 {
		t.Errorf("encrypt stage packets %v after a 2 MiB transfer", v)
	}
	if idx := httpGetIn(t, a, "http://127.0.0.1:6060/debug/pprof/"); !strings.Contains(idx, "goroutine") {
		t.Errorf("pprof index does not list profiles:\n%.300s", idx)
	}
	stopAndCheck(t, pa, a)
	stopAndCheck(t, pz, z)
}

// httpGetIn fetches url from inside n's namespace.
func httpGetIn(t *testing.T, n *node, url string) string {
	t.Helper()
	var body string
	err := n.ns.Do(func() error {
		// Dial here, on the thread that joined the namespace: an
		// http.Client would dial from another goroutine, outside it.
		u, err := neturl.Parse(url)
		if err != nil {
			return err
		}
		conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Close = true
		if err := req.Write(conn); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return &httpStatusError{resp.Status}
		}
		body = string(b)
		return err
	})
	if err != nil {
		t.Fatalf("GET %s in %s: %v", url, n.ns.Name, err)
	}
	return body
}

type httpStatusError struct{ status string }

func (e *httpStatusError) Error() string { return "HTTP " + e.status }

// sample returns the value of the metrics line that starts with series.
func sample(t *testing.T, text, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			return v
		}
	}
	t.Fatalf("no metrics line for %s", series)
	return 0
}
