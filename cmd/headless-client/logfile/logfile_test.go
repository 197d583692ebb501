package logfile

import (
	"errors"
	"fmt"
	"io"
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

// TestRotationFailureKeepsLogging: one failed rotation
// (the directory immutable at that moment) left the Writer without a
// file, and every later line was lost without a word. Now the line goes
// to the current file, OnError says why, and rotation resumes once it
// can.
func TestRotationFailureKeepsLogging(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, "pg0", 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var reports []error
	w.OnError = func(err error) { reports = append(reports, err) }
	line := func(i int) string { return fmt.Sprintf("line %04d %s\n", i, strings.Repeat("x", 39)) } // 50 bytes
	write := func(i int) {
		t.Helper()
		if n, err := io.WriteString(w, line(i)); err != nil || n != 50 {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	// The oldest kept file cannot be removed: a non-empty directory
	// stands in its place, which stops a rotation (even for root).
	blocker := w.Path() + ".2"
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(0)
	write(1) // 100 bytes: full
	write(2) // rotation fails; the line still lands
	write(3)
	if len(reports) != 1 || reports[0] == nil {
		t.Fatalf("reports after the failure: %v, want one error", reports)
	}
	b, _ := os.ReadFile(w.Path())
	if !strings.Contains(string(b), line(3)) {
		t.Fatalf("the current file lacks the lines written after the failed rotation:\n%s", b)
	}
	os.RemoveAll(blocker)
	for i := 4; i < 8; i++ {
		write(i)
	}
	if len(reports) != 2 || reports[1] != nil {
		t.Fatalf("reports after the directory was fixed: %v, want the error then nil", reports)
	}
	// Rotated twice since: 0-3 (written past the limit) in .2, 4-5 in
	// .1, 6-7 in the current file.
	for suffix, want := range map[string]string{"": line(6) + line(7), ".1": line(4) + line(5), ".2": line(0) + line(1) + line(2) + line(3)} {
		if b, _ := os.ReadFile(w.Path() + suffix); string(b) != want {
			t.Errorf("pg0.log%s after recovery: %q, want %q", suffix, b, want)
		}
	}
}
