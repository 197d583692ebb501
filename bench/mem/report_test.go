package mem

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"pipeguard/bench/core"
	"pipeguard/bench/core/memrig"
)

// Recorded reports: real runs of this harness on the development machine.
//
//	report-quick.json:   go run ./cmd/bench --quick --json …
//	report-repeat3.json: go run ./cmd/bench --repeat 3 --directions inbound,outbound --sizes 512 --procs 1,2 --workers 0 --duration 200ms --json …
var recordedReports = []string{"testdata/report-quick.json", "testdata/report-repeat3.json"}

// recordedReport is a report as cmd/bench writes it in mem mode.
type recordedReport struct {
	Machine  core.Machine  `json:"machine"`
	Settings core.Settings `json:"settings"`
	Mem      *Report       `json:"mem"`
}

// readRecorded reads the recorded report at path.
func readRecorded(t *testing.T, path string) recordedReport {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r recordedReport
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if r.Mem == nil || len(r.Mem.Results) == 0 {
		t.Fatalf("%s: no in-memory results", path)
	}
	return r
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// TestRecordedMedians recomputes every figure of the recorded reports from
// their raw samples, by hand, and compares.
func TestRecordedMedians(t *testing.T) {
	for _, path := range recordedReports {
		r := readRecorded(t, path)
		for _, res := range r.Mem.Results {
			if len(res.Samples) != r.Settings.Repeat {
				t.Errorf("%s: %v: %d samples for %d repeats", path, res.Case, len(res.Samples), r.Settings.Repeat)
			}
			var gbps, cpu []float64
			for _, s := range res.Samples {
				gbps = append(gbps, float64(s.Packets)*float64(res.PacketSize)*8/s.Seconds/1e9)
				cpu = append(cpu, s.CPUSeconds*1e9/float64(s.Packets))
			}
			slices.Sort(gbps)
			slices.Sort(cpu)
			// Odd counts only in the recordings: the middle one.
			if want := gbps[len(gbps)/2]; !near(res.Gbps, want) {
				t.Errorf("%s: %v: Gbps %v, want median %v of %v", path, res.Case, res.Gbps, want, gbps)
			}
			if want := cpu[len(cpu)/2]; !near(res.CPUNsPerPacket, want) {
				t.Errorf("%s: %v: CPU ns %v, want %v", path, res.Case, res.CPUNsPerPacket, want)
			}
		}
	}
}

// TestRecordedRatios checks each pipeline row's ratio to its sequential
// row, and each row's AEAD limit, by looking them up by hand.
func TestRecordedRatios(t *testing.T) {
	for _, path := range recordedReports {
		r := readRecorded(t, path)
		pipelines := 0
		for _, res := range r.Mem.Results {
			var seq *Result
			for i, o := range r.Mem.Results {
				if o.Engine == "sequential" && o.Direction == res.Direction && o.PacketSize == res.PacketSize &&
					o.Peers == res.Peers && o.Procs == res.Procs {
					seq = &r.Mem.Results[i]
				}
			}
			switch {
			case res.Engine == "sequential" && res.VsSequential != 0:
				t.Errorf("%s: %v: sequential row has a ratio %v", path, res.Case, res.VsSequential)
			case res.Engine == "pipeline":
				pipelines++
				if seq == nil || !near(res.VsSequential, res.Gbps/seq.Gbps) {
					t.Errorf("%s: %v: pipe/seq %v, want %v", path, res.Case, res.VsSequential, res.Gbps/seq.Gbps)
				}
			}
			found := false
			for _, a := range r.Mem.AEAD {
				if a.PacketSize == res.PacketSize && a.Procs == res.Procs {
					found = true
					if !near(res.AEADGbps, a.Gbps) || !near(res.OfAEAD, res.Gbps/a.Gbps) {
						t.Errorf("%s: %v: AEAD %v (%v), want %v", path, res.Case, res.AEADGbps, res.OfAEAD, a.Gbps)
					}
				}
			}
			if !found {
				t.Errorf("%s: %v: no AEAD limit", path, res.Case)
			}
		}
		if pipelines == 0 {
			t.Errorf("%s: no pipeline rows", path)
		}
	}
}

// TestSummarizeReproducesRecorded runs the harness's own arithmetic on the
// recorded samples: it must give the recorded figures exactly.
func TestSummarizeReproducesRecorded(t *testing.T) {
	for _, path := range recordedReports {
		r := readRecorded(t, path)
		var cases []memrig.Case
		var samples, aeadSamples [][]memrig.Sample
		var aeads []AEADLimit
		for _, res := range r.Mem.Results {
			cases, samples = append(cases, res.Case), append(samples, res.Samples)
		}
		for _, a := range r.Mem.AEAD {
			aeads, aeadSamples = append(aeads, AEADLimit{PacketSize: a.PacketSize, Procs: a.Procs}), append(aeadSamples, a.Samples)
		}
		got := summarize(cases, samples, aeads, aeadSamples)
		got.StageCPU = r.Mem.StageCPU
		if !reflect.DeepEqual(got, r.Mem) {
			t.Errorf("%s: summarize differs from the recording", path)
		}
	}
}

func TestRecordedTable(t *testing.T) {
	for _, path := range recordedReports {
		r := readRecorded(t, path)
		var b strings.Builder
		r.Mem.WriteTable(&b, r.Settings)
		checkTable(t, b.String(), r.Mem)
	}
}

// checkTable checks that the printed table shows the report's figures,
// figure for figure, to the precision it prints them.
func checkTable(t *testing.T, text string, mr *Report) {
	t.Helper()
	lines := strings.Split(text, "\n")
	start := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "direction ") })
	if start < 0 {
		t.Fatalf("no table header in:\n%s", text)
	}
	var rows [][]string
	i := start + 1
	for ; i < len(lines) && !strings.HasPrefix(lines[i], "CPU per stage"); i++ {
		if f := strings.Fields(lines[i]); len(f) > 0 {
			rows = append(rows, f)
		}
	}
	if len(rows) != len(mr.Results) {
		t.Fatalf("table has %d rows, report %d results:\n%s", len(rows), len(mr.Results), text)
	}
	for k, res := range mr.Results {
		row := rows[k]
		if len(row) != len(memHead) {
			t.Errorf("row %d has %d cells: %v", k, len(row), row)
			continue
		}
		words := []string{string(res.Direction), strconv.Itoa(res.PacketSize), strconv.Itoa(res.Peers), strconv.Itoa(res.Procs), res.Engine}
		if !slices.Equal(row[:5], words) {
			t.Errorf("row %d is %v, want %v", k, row[:5], words)
		}
		checkCell(t, row[5], float64(res.Workers), 0, "workers")
		checkCell(t, row[6], res.Gbps, 2, "Gbit/s")
		checkCell(t, row[7], res.Mpps, 3, "Mpps")
		checkCell(t, row[8], res.CPUNsPerPacket, 0, "CPU ns/pkt")
		checkCell(t, row[9], res.AllocsPerPacket, 3, "allocs/pkt")
		checkCell(t, row[10], res.VsSequential, 2, "pipe/seq")
		checkCell(t, row[11], res.AEADGbps, 2, "AEAD Gbit/s")
		checkCell(t, row[12], 100*res.OfAEAD, 0, "of AEAD")
	}
	if mr.StageCPU == nil {
		return
	}
	for i < len(lines) && !slices.Equal(strings.Fields(lines[i]), []string{"stage", "CPU", "s", "share"}) {
		i++
	}
	var stages [][]string
	for i++; i < len(lines); i++ {
		if f := strings.Fields(lines[i]); len(f) >= 3 {
			stages = append(stages, []string{strings.Join(f[:len(f)-2], " "), f[len(f)-2], f[len(f)-1]})
		}
	}
	if len(stages) != len(mr.StageCPU.Stages) {
		t.Fatalf("stage table has %d rows, report %d", len(stages), len(mr.StageCPU.Stages))
	}
	for k, s := range mr.StageCPU.Stages {
		if stages[k][0] != s.Stage {
			t.Errorf("stage row %d is %q, want %q", k, stages[k][0], s.Stage)
		}
		checkCell(t, stages[k][1], s.Seconds, 3, s.Stage+" CPU s")
		checkCell(t, stages[k][2], 100*s.Share, 1, s.Stage+" share")
	}
}

// checkCell checks that cell shows v with dec decimals ("-" for 0, a
// trailing % allowed).
func checkCell(t *testing.T, cell string, v float64, dec int, what string) {
	t.Helper()
	if cell == "-" {
		if v != 0 {
			t.Errorf("%s: table shows -, report %v", what, v)
		}
		return
	}
	got, err := strconv.ParseFloat(strings.TrimSuffix(cell, "%"), 64)
	if err != nil {
		t.Errorf("%s: cell %q: %v", what, cell, err)
		return
	}
	if math.Abs(got-v) > 0.5*math.Pow(10, -float64(dec))+1e-9 {
		t.Errorf("%s: table shows %s, report %v", what, cell, v)
	}
}
