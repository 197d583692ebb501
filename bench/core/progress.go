package core

import (
	"fmt"
	"io"
	"time"
)

// Progress shows how far the run is: on a terminal, one line rewritten in
// place; otherwise one line per finished measurement, which reads well in
// a CI log. A nil writer shows nothing. Used by one goroutine.
type Progress struct {
	w            io.Writer
	tty          bool
	total, done  int
	start, began time.Time
}

// Out is where a run says how far it has come: the progress indicator's
// writer (nil for none), and whether that is a terminal, where the
// indicator is one line rewritten in place.
type Out struct {
	W   io.Writer
	TTY bool
}

// Progress starts an indicator for total measurements.
func (o Out) Progress(total int) *Progress { return NewProgress(o.W, o.TTY, total) }

// Note writes a line about the run to the writer, if there is one.
func (o Out) Note(format string, a ...any) {
	if o.W != nil {
		fmt.Fprintf(o.W, "bench: "+format+"\n", a...)
	}
}

// ProgressWidth keeps the terminal line within 80 columns.
const ProgressWidth = 79

// NewProgress starts an indicator for total measurements on w, a
// terminal when tty.
func NewProgress(w io.Writer, tty bool, total int) *Progress {
	return &Progress{w: w, tty: tty, total: total, start: time.Now()}
}

// Begin says that the measurement what starts.
func (p *Progress) Begin(what string) {
	p.began = time.Now()
	if p.w == nil || !p.tty {
		return
	}
	line := fmt.Sprintf("[%d/%d %s] %s", p.done+1, p.total, p.eta(), what)
	if len(line) > ProgressWidth { // a wrapped line would not be rewritten in place
		line = line[:ProgressWidth-3] + "..."
	}
	// \r and "erase to end of line": the line is rewritten in place.
	fmt.Fprint(p.w, "\r\x1b[K"+line)
}

// End says that the measurement what finished with result.
func (p *Progress) End(what, result string) {
	p.done++
	if p.w == nil || p.tty {
		return
	}
	fmt.Fprintf(p.w, "bench: [%d/%d] %s: %s (%.1fs)\n", p.done, p.total, what, result, time.Since(p.began).Seconds())
}

// Finish clears the terminal's progress line.
func (p *Progress) Finish() {
	if p.w != nil && p.tty {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

// eta is the elapsed time and an estimate of the time left, from the
// average time per finished step.
func (p *Progress) eta() string {
	el := time.Since(p.start)
	if p.done == 0 {
		return FmtMinSec(el)
	}
	left := el / time.Duration(p.done) * time.Duration(p.total-p.done)
	return FmtMinSec(el) + ", ~" + FmtMinSec(left) + " left"
}

// FmtMinSec prints d as minutes and seconds, 1:05.
func FmtMinSec(d time.Duration) string {
	s := int(d.Round(time.Second).Seconds())
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
