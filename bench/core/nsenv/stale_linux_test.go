package nsenv_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pipeguard/bench/core/nsenv"
	"pipeguard/bench/core/nsenv/nsenvtest"
)

// TestRemoveStale leaves behind what a crashed run would (a namespace with
// a process in it, a socket, a directory, all named for a pid that has
// exited) and one of a live run, and checks that RemoveStale removes the
// first and keeps the second.
func TestRemoveStale(t *testing.T) {
	nsenvtest.Require(t, nsenv.Usable("ip"))
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	deadPid := dead.Process.Pid
	staleNS := fmt.Sprintf("%s%d-1a", nsenv.NsPrefix, deadPid)
	liveNS := fmt.Sprintf("%s%d-999a", nsenv.NsPrefix, os.Getpid())
	for _, ns := range []string{staleNS, liveNS} {
		if err := nsenv.IPCmd("netns", "add", ns); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, ns := range []string{staleNS, liveNS} {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	p, err := nsenv.StartProc(staleNS, "sleeper", nil, "sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(time.Second) })
	if err := os.MkdirAll(nsenv.UAPIDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(nsenv.UAPIDir, fmt.Sprintf("%s%dt1a.sock", nsenv.IfPrefix, deadPid))
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("%s%d-x", nsenv.BuildPrefix, deadPid))
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(sock); os.RemoveAll(dir) })

	removed := nsenv.RemoveStale()
	t.Logf("removed %q", removed)
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Error("the process in the stale namespace still runs")
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out), staleNS) || !strings.Contains(string(out), liveNS) {
		t.Errorf("namespaces after RemoveStale:\n%s", out)
	}
	for _, path := range []string{sock, dir} {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v", path, err)
		}
	}
}
