package flood

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"pipeguard/bench/core"
)

// floodLine is the shape of the flood mode's summary line.
var floodLine = regexp.MustCompile(`^flood: data kept \d+% of its unloaded rate; [0-9.]+ -> [0-9.]+ Gbit/s; ` +
	`initiations \d+/s received \(10x X25519 \d+/s\), \d+/s answered, \d+/s worked on \(budget \d+/s\), \d+/s dropped; ` +
	`cookie replies \d+/s; tunnel CPU \d+% -> \d+% \(handshake [0-9.]+%\)$`)

// TestFloodShort runs the flood mode briefly: the summary line has its
// shape and agrees with the JSON report; the tunnel, under a flood of
// initiations it cannot afford Curve25519 work for, answered with cookie
// replies, and its Curve25519 work stayed within its budget (a burst and
// the rate over the time flooded) whatever the flood's rate. It asserts
// behaviour, not throughput.
func TestFloodShort(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a tunnel under a flood")
	}
	var prog bytes.Buffer
	// A fixed count of packets: one segment of each phase, a round each.
	cfg := Config{Packets: 20000, Out: core.Out{W: &prog}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, _, err := Measure(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	rep.WriteTable(&table, core.Settings{Repeat: 1})
	var line string
	for _, l := range strings.Split(table.String(), "\n") {
		if strings.HasPrefix(l, "flood:") {
			line = l
		}
	}
	if !floodLine.MatchString(line) {
		t.Fatalf("summary line %q does not have the flood mode's shape; output:\n%s", line, table.String())
	}
	// The report read back from its JSON says the same.
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var fr *Report
	if err := json.Unmarshal(b, &fr); err != nil {
		t.Fatal(err)
	}
	if fr.Line() != line || !reflect.DeepEqual(fr, rep) {
		t.Fatalf("the JSON report's summary differs from the printed one:\n%s\n%s", fr.Line(), line)
	}
	fl := fr.Flooded
	t.Logf("%s", line)
	if !(fr.X25519PerSecond > 0) || !(fl.Received > 0) || !(fr.Unloaded.Gbps > 0) || !(fl.Gbps > 0) {
		t.Fatalf("figures missing: %+v", fr)
	}
	if !(fl.CookieReplies > 0) {
		t.Errorf("no cookie replies under a flood at %.0f initiations/s: %+v", fl.Received, fl)
	}
	if fl.Answered != 0 {
		t.Errorf("%.0f/s forged initiations answered with a response", fl.Answered)
	}
	// Curve25519 work: the budget's burst, plus its rate over the time
	// flooded (and the second under load lasts after each segment).
	worked, bound := fl.Worked*fl.WallSeconds, fr.BudgetBurst+fr.BudgetPerSecond*(fl.WallSeconds+1)
	if worked > bound {
		t.Errorf("%.0f initiations cost Curve25519 work in %.2f s flooded, more than the budget's %.0f", worked, fl.WallSeconds, bound)
	}
	if got := prog.String(); !strings.Contains(got, "X25519 rate") || !strings.Contains(got, "flooded at") {
		t.Errorf("progress:\n%s", got)
	}
}
