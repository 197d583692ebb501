package bench

import (
	"fmt"
	"io"
	"time"
)

// progress shows how far the run is: on a terminal, one line rewritten in
// place; otherwise one line per finished measurement, which reads well in
// a CI log. A nil writer shows nothing. Used by one goroutine.
type progress struct {
	w            io.Writer
	tty          bool
	total, done  int
	start, began time.Time
}

// progressWidth keeps the terminal line within 80 columns.
const progressWidth = 79

func newProgress(w io.Writer, tty bool, total int) *progress {
	return &progress{w: w, tty: tty, total: total, start: time.Now()}
}

// begin says that the measurement what starts.
func (p *progress) begin(what string) {
	p.began = time.Now()
	if p.w == nil || !p.tty {
		return
	}
	line := fmt.Sprintf("[%d/%d %s] %s", p.done+1, p.total, p.eta(), what)
	if len(line) > progressWidth { // a wrapped line would not be rewritten in place
		line = line[:progressWidth-3] + "..."
	}
	// \r and "erase to end of line": the line is rewritten in place.
	fmt.Fprint(p.w, "\r\x1b[K"+line)
}

// end says that the measurement what finished with result.
func (p *progress) end(what, result string) {
	p.done++
	if p.w == nil || p.tty {
		return
	}
	fmt.Fprintf(p.w, "bench: [%d/%d] %s: %s (%.1fs)\n", p.done, p.total, what, result, time.Since(p.began).Seconds())
}

// finish clears the terminal's progress line.
func (p *progress) finish() {
	if p.w != nil && p.tty {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

// eta is the elapsed time and an estimate of the time left, from the
// average time per finished step.
func (p *progress) eta() string {
	el := time.Since(p.start)
	if p.done == 0 {
		return fmtMinSec(el)
	}
	left := el / time.Duration(p.done) * time.Duration(p.total-p.done)
	return fmtMinSec(el) + ", ~" + fmtMinSec(left) + " left"
}

func fmtMinSec(d time.Duration) string {
	s := int(d.Round(time.Second).Seconds())
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
