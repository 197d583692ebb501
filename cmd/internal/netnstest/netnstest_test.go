package netnstest

import (
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
