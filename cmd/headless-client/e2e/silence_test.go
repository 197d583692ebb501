package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"pipeguard/cmd/headless-client/uapi"
)

// TestPeerSilenceLoggedAtInfo: at the default log level, a peer that is
// down when traffic starts is logged once as not answering, after 20 s
// of unanswered initiations (not before), and once as answering when it
// comes up; in between, the log says nothing more of it.
func TestPeerSilenceLoggedAtInfo(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	a, z := peeredNodes(t)
	t.Cleanup(func() { os.Remove(uapi.SocketPath(a.iface)) })
	pa := start(t, a.ns, "client "+a.iface, b.client, []string{"PIPEGUARD_ID=e2e-" + a.iface},
		"--log-level", "info", "standalone", "--config", a.conf, "--interface", a.iface, "--state-dir", t.TempDir())
	pa.waitSocket(t, a.iface)
	const silent, answers = "peer does not answer handshakes", "peer answers again"
	// Traffic for the peer, which is not there: initiations every 5 s.
	begin := time.Now()
	go a.ns.Run("ping", "-c", "1", "-W", "1", z.inner[0].Addr().String())
	pollUntil(t, 60*time.Second, "the silence is logged", func() bool { return strings.Contains(pa.out.String(), silent) })
	if took := time.Since(begin); took < 19*time.Second {
		t.Errorf("logged silent after %v, before 20 s of unanswered initiations", took)
	}
	line := pa.out.String()[strings.Index(pa.out.String(), silent):]
	line = line[:strings.IndexByte(line, '\n')]
	t.Logf("%s", line)
	if !strings.Contains(line, z.outer.String()) {
		t.Errorf("the line does not name the endpoint %s: %s", z.outer, line)
	}
	z.startWGPeer(t, b)
	pollUntil(t, 30*time.Second, "the answer is logged", func() bool { return strings.Contains(pa.out.String(), answers) })
	a.ping(t, z.inner[0].Addr())
	out := pa.out.String()
	if strings.Count(out, silent) != 1 || strings.Count(out, answers) != 1 {
		t.Errorf("want one line of each:\n%s", out)
	}
	stopAndCheck(t, pa, a)
}
