package logfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestRotation(t *testing.T) {
	for _, tc := range []struct {
		name       string
		maxSize    int64
		keep       int
		lines      int
		wantFiles  int
		wantLatest int // lines in name.log
	}{
		{"no rotation", 1000, 3, 10, 1, 10}, // 10 lines of 10 bytes
		{"one rotation", 50, 3, 8, 2, 3},    // 5 + 3
		{"drops oldest", 20, 2, 10, 3, 2},   // 2 per file, keep 2 old
		{"line larger than limit", 5, 1, 3, 2, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := Open(filepath.Join(dir, "logs"), "pg0", tc.maxSize, tc.keep)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tc.lines {
				if _, err := fmt.Fprintf(w, "line %04d\n", i); err != nil {
					t.Fatal(err)
				}
			}
			w.Close()
			files, _ := filepath.Glob(filepath.Join(dir, "logs", "pg0.log*"))
			if len(files) != tc.wantFiles {
				t.Fatalf("files %v, want %d", files, tc.wantFiles)
			}
			b, _ := os.ReadFile(w.Path())
			if got := strings.Count(string(b), "\n"); got != tc.wantLatest {
				t.Errorf("%d lines in the current file, want %d", got, tc.wantLatest)
			}
			// The newest line is in the current file, older ones in .1.
			if !strings.HasSuffix(string(b), fmt.Sprintf("line %04d\n", tc.lines-1)) {
				t.Errorf("current file ends %q", b)
			}
			for _, f := range files {
				fi, _ := os.Stat(f)
				if fi.Size() > max(tc.maxSize, 10) {
					t.Errorf("%s has %d bytes, over the limit %d", f, fi.Size(), tc.maxSize)
				}
				if fi.Mode().Perm() != 0o640 {
					t.Errorf("%s has mode %v", f, fi.Mode())
				}
			}
		})
	}
}

func TestReopenAppends(t *testing.T) {
	dir := t.TempDir()
	for i := range 2 {
		w, err := Open(dir, "x", 1000, 1)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "run %d\n", i)
		w.Close()
	}
	b, _ := os.ReadFile(filepath.Join(dir, "x.log"))
	if string(b) != "run 0\nrun 1\n" {
		t.Fatalf("file %q", b)
	}
}

func TestConcurrentWritesStayWhole(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, "c", 400, 50)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				fmt.Fprintf(w, "goroutine %d record %03d\n", g, i)
			}
		})
	}
	wg.Wait()
	w.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "c.log*"))
	total := 0
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for line := range strings.SplitSeq(strings.TrimSuffix(string(b), "\n"), "\n") {
			if !strings.HasPrefix(line, "goroutine ") || len(line) != len("goroutine 0 record 000") {
				t.Fatalf("torn record %q in %s", line, f)
			}
			total++
		}
	}
	if total != 200 {
		t.Fatalf("%d records, want 200", total)
	}
}

func TestOpenRejectsBadSettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		maxSize int64
		keep    int
	}{{"a", 0, 1}, {"a", 10, 0}, {"../a", 10, 1}, {"", 10, 1}} {
		if _, err := Open(t.TempDir(), tc.name, tc.maxSize, tc.keep); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v, want ErrConfig", tc, err)
		}
	}
	w, _ := Open(t.TempDir(), "z", 10, 1)
	w.Close()
	if _, err := w.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("write after close: %v", err)
	}
}
