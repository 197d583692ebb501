package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"pipeguard/cmd/internal/netnstest"
)

// TestDemo runs the README's first command as it runs it and checks that
// it reports a working tunnel and leaves no namespace or socket behind.
func TestDemo(t *testing.T) {
	netnstest.RequireRoot(t)
	out, errOut, code := runMain(t, "", "demo", "--bytes", "5000000")
	if code != 0 {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"ping A → 10.251.0.2", "ping B → fd51::1", "0% packet loss",
		"TCP  A → B: 5 MB", "TCP  B → A: 5 MB", "matches at both ends",
		"The tunnel works.", "stopped tunnel A with SIGTERM", "exit: status 0", "deleted namespace",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "still there") {
		t.Errorf("demo left something behind:\n%s", out)
	}
	if list, err := exec.Command("ip", "netns", "list").Output(); err != nil || strings.Contains(string(list), "pgdemo-") {
		t.Errorf("namespaces after the demo: %s (%v)", list, err)
	}
	if ents, _ := os.ReadDir("/var/run/wireguard"); len(ents) > 0 {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "pgd") {
				t.Errorf("socket %s left behind", e.Name())
			}
		}
	}
}
