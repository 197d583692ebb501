package nsenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestParseProcFiles(t *testing.T) {
	// A command name with spaces and a parenthesis, as a process may set.
	stat := "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 100 1000 200\n"
	if d, err := parseProcStat([]byte(stat)); err != nil || d != 3250*time.Millisecond {
		t.Errorf("parseProcStat: %v, %v; want 3.25s", d, err)
	}
	for _, bad := range []string{"", "1234 (a) S 1 2", "1 (a) S 1 1 1 0 -1 0 0 0 0 0 x 1 0"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q) accepted", bad)
		}
	}
	status := "Name:\twgpeer\nVmPeak:\t 1300000 kB\nVmHWM:\t   34712 kB\nVmRSS:\t   30000 kB\n"
	if n, err := parseVmHWM([]byte(status)); err != nil || n != 34712<<10 {
		t.Errorf("parseVmHWM: %v, %v", n, err)
	}
	for _, bad := range []string{"Name:\tx\n", "VmHWM:\t12 MB\n"} {
		if _, err := parseVmHWM([]byte(bad)); err == nil {
			t.Errorf("parseVmHWM(%q) accepted", bad)
		}
	}
	// This process's own files parse.
	if _, err := ProcCPU(os.Getpid()); err != nil {
		t.Error(err)
	}
	if n, err := ProcPeakRSS(os.Getpid()); err != nil || n == 0 {
		t.Errorf("own VmHWM %v, %v", n, err)
	}
}

func TestStaleName(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, prefix, sep string
		stale             bool
	}{
		{fmt.Sprintf("pgbench-%d-1a", dead.Process.Pid), NsPrefix, "-", true},
		{fmt.Sprintf("pgbench-%d-1a", os.Getpid()), NsPrefix, "-", false}, // a live run's
		{fmt.Sprintf("pgb%dt3a.sock", dead.Process.Pid), IfPrefix, "t", true},
		{"pgbase", NsPrefix, "-", false},
		{"pgbench--1a", NsPrefix, "-", false},
		{"pgbench-12x-1a", NsPrefix, "-", false},
		{"pgbench-0-1a", NsPrefix, "-", false},
		{"pgbench-77", NsPrefix, "-", false}, // no separator after the pid
	} {
		if got := staleName(tc.name, tc.prefix, tc.sep); got != tc.stale {
			t.Errorf("staleName(%q) = %v", tc.name, got)
		}
	}
}

func TestTailBuffer(t *testing.T) {
	b := &TailBuffer{Max: 8}
	b.Write([]byte("hello "))
	b.Write([]byte("world!"))
	if got := b.String(); got != "o world!" {
		t.Errorf("tail %q", got)
	}
	if got := LastLine("a\nb\n\n"); got != "b" {
		t.Errorf("lastLine %q", got)
	}
	if strings.Contains(LastLine("one"), "\n") {
		t.Error("lastLine")
	}
}
