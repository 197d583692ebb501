package nsenvtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"pipeguard/bench/core/nsenv"
)

// Require skips t when err says that a namespace mode cannot run
// here (not root, a tool missing); with CI=true it fails instead, so that
// CI cannot pass by skipping.
func Require(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: this test must run, but: %v", err)
	}
	t.Skip(err)
}

// Log passes progress lines to t.Log.
type Log struct{ T *testing.T }

// Write logs p, one call of t.Log, without its last newline.
func (l Log) Write(p []byte) (int, error) {
	l.T.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// AssertNothingLeft checks that this process left no namespace, socket,
// directory or process behind.
func AssertNothingLeft(t *testing.T) {
	t.Helper()
	pid := strconv.Itoa(os.Getpid())
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), nsenv.NsPrefix+pid+"-") {
		t.Errorf("namespaces left behind:\n%s", out)
	}
	for _, pattern := range []string{filepath.Join(nsenv.UAPIDir, nsenv.IfPrefix+pid+"t*"), filepath.Join(os.TempDir(), nsenv.BuildPrefix+pid+"-*")} {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			t.Errorf("left behind: %q", m)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		i := bytes.LastIndexByte(b, ')')
		if f := strings.Fields(string(b[i+1:])); i >= 0 && len(f) > 1 && f[1] == pid {
			t.Errorf("child process left: %s", b)
		}
		cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
		if bytes.Contains(cmdline, []byte(nsenv.BuildPrefix+pid+"-")) {
			t.Errorf("tunnel process left: %q", cmdline)
		}
	}
}
