package core

import (
	"bytes"
	"strings"
	"testing"
)

func TestProgress(t *testing.T) {
	var b bytes.Buffer
	p := NewProgress(&b, true, 2)
	p.Begin("one")
	p.End("one", "fine")
	p.Begin("two " + strings.Repeat("long ", 30))
	p.End("two", "fine")
	p.Finish()
	out := b.String()
	for _, line := range strings.Split(out, "\r\x1b[K") {
		if len(line) > ProgressWidth {
			t.Errorf("line of %d characters: %q", len(line), line)
		}
	}
	if strings.Contains(out, "\n") || !strings.Contains(out, "\r\x1b[K[2/2 ") || !strings.HasSuffix(out, "\r\x1b[K") {
		t.Errorf("terminal progress %q", out)
	}
	b.Reset()
	p = NewProgress(&b, false, 1)
	p.Begin("one")
	p.End("one", "fine")
	p.Finish()
	if !strings.HasPrefix(b.String(), "bench: [1/1] one: fine (") || strings.Count(b.String(), "\n") != 1 {
		t.Errorf("log progress %q", b.String())
	}
}
