package netnstest

import (
	"os"
	"strings"
	"testing"
)

func TestUniqueName(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		n := UniqueName("abc")
		if len(n) > 15 || !strings.HasPrefix(n, "abc") || seen[n] {
			t.Fatalf("name %q: too long, wrong prefix or repeated", n)
		}
		seen[n] = true
	}
}

func TestPairPings(t *testing.T) {
	RequireRoot(t)
	a, b, addrA, addrB := Pair(t)
	a.MustRun(t, "ping", "-c", "1", "-W", "2", addrB.String())
	b.MustRun(t, "ping", "-c", "1", "-W", "2", addrA.String())
	// The namespaces are private: the host does not see their links.
	if out := a.MustRun(t, "ip", "-o", "link"); strings.Count(out, "\n") != 2 {
		t.Errorf("namespace %s has links other than lo and its veth:\n%s", a.Name, out)
	}
}

// TestWriteEtc gives a namespace its own resolv.conf: commands in it see
// that one, and the host's stays as it was.
func TestWriteEtc(t *testing.T) {
	RequireRoot(t)
	host, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Skipf("the host has no /etc/resolv.conf to mount over: %v", err)
	}
	ns := New(t)
	const own = "# netnstest\nnameserver 192.0.2.1\n"
	ns.WriteEtc(t, "resolv.conf", own)
	if out := ns.MustRun(t, "cat", "/etc/resolv.conf"); out != own {
		t.Errorf("in the namespace: %q, want %q", out, own)
	}
	if now, _ := os.ReadFile("/etc/resolv.conf"); string(now) != string(host) {
		t.Errorf("the host's resolv.conf changed: %q", now)
	}
}
