package sdsocket

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name               string
		pidVar, fds, names string
		n                  int
		wantNames          []string
		err                bool
	}{
		{"none", "", "", "", 0, nil, false},
		{"one", "42", "1", "", 1, []string{"unknown"}, false},
		{"named", "42", "2", "a:b", 2, []string{"a", "b"}, false},
		{"one name empty", "42", "2", "a:", 2, []string{"a", "unknown"}, false},
		{"another process's", "41", "1", "", 0, nil, false},
		{"zero", "42", "0", "", 0, []string{}, false},
		{"bad pid", "x", "1", "", 0, nil, true},
		{"no pid", "", "1", "", 0, nil, true},
		{"negative pid", "-42", "1", "", 0, nil, true},
		{"bad count", "42", "one", "", 0, nil, true},
		{"negative count", "42", "-1", "", 0, nil, true},
		{"too many", "42", strconv.Itoa(maxFDs + 1), "", 0, nil, true},
		{"names miscounted", "42", "2", "a", 0, nil, true},
	} {
		n, names, err := parse(tc.pidVar, tc.fds, tc.names, 42)
		if (err != nil) != tc.err || err != nil && !errors.Is(err, ErrEnv) {
			t.Errorf("%s: error %v, want error %v", tc.name, err, tc.err)
			continue
		}
		if n != tc.n || !slices.Equal(names, tc.wantNames) && len(names)+len(tc.wantNames) > 0 {
			t.Errorf("%s: %d %q, want %d %q", tc.name, n, names, tc.n, tc.wantNames)
		}
	}
}

// FuzzParse: whatever the environment holds, parse never panics, and a
// count it accepts is in range with a name for each descriptor.
func FuzzParse(f *testing.F) {
	f.Add("42", "1", "")
	f.Add("42", "3", "a:b:c")
	f.Add("7", "1", "")
	f.Add("42", "99999999999999999999", "")
	f.Fuzz(func(t *testing.T, pidVar, fds, names string) {
		n, got, err := parse(pidVar, fds, names, 42)
		if err != nil {
			return
		}
		if n < 0 || n > maxFDs || len(got) != n {
			t.Fatalf("%d descriptors, %d names", n, len(got))
		}
	})
}

// TestTake runs this test binary again as a service manager starts a
// socket-activated service: a listening socket at descriptor 3, and
// LISTEN_PID set (by the shell that then execs) to the pid of the
// process that runs. The child takes it, checks it, and accepts a
// connection on it.
func TestTake(t *testing.T) {
	if os.Getenv("SDSOCKET_TEST_CHILD") == "1" {
		child(t)
		return
	}
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=uapi exec "$0" -test.run=^TestTake$ -test.v`, os.Args[0])
	cmd.Env = append(os.Environ(), "SDSOCKET_TEST_CHILD=1", "SDSOCKET_TEST_PATH="+path)
	cmd.ExtraFiles = []*os.File{f}
	done := make(chan error, 1)
	var out []byte
	go func() {
		var err error
		out, err = cmd.CombinedOutput()
		done <- err
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello\n"))
	c.Close()
	if err := <-done; err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// child is TestTake in the started process.
func child(t *testing.T) {
	files, err := Take()
	if err != nil || len(files) != 1 || files[0].Name != "uapi" {
		t.Fatalf("Take: %v %v", files, err)
	}
	for _, v := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if _, ok := os.LookupEnv(v); ok {
			t.Errorf("%s still set", v)
		}
	}
	ln, err := net.FileListener(files[0].File)
	if err != nil {
		t.Fatal(err)
	}
	files[0].Close()
	defer ln.Close()
	if got := ln.Addr().String(); got != os.Getenv("SDSOCKET_TEST_PATH") {
		t.Errorf("listening at %s", got)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if again, err := Take(); err != nil || len(again) != 0 {
		t.Errorf("second Take: %v %v", again, err)
	}
}
