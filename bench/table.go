package bench

import (
	"fmt"
	"io"
	"strings"
)

// WriteTable prints the report as aligned tables: a line on the machine,
// then each mode's own tables, in the order soak, netns, loadgen, mem,
// flood, peers, for the modes that ran.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "PipeGuard bench: %s, %d cores, %s, %s, %s", m.CPUModel, m.Cores, m.GoVersion, m.Kernel, m.Date)
	if m.LoadAverage != "" {
		fmt.Fprintf(&b, ", load average %s", m.LoadAverage)
	}
	b.WriteString("\n")
	if r.Soak != nil {
		r.Soak.WriteTable(&b)
	}
	if r.Netns != nil {
		r.Netns.WriteTable(&b, r.Settings)
	}
	if r.Loadgen != nil {
		r.Loadgen.WriteTable(&b, m, r.Settings)
	}
	if r.Mem != nil {
		r.Mem.WriteTable(&b, r.Settings)
	}
	if r.Flood != nil {
		r.Flood.WriteTable(&b, r.Settings)
	}
	if r.Peers != nil {
		r.Peers.WriteTable(&b)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
