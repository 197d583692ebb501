package cpuprof

import (
	"bufio"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// The recorded profile is of one pipeline measurement:
//
//	go run ./cmd/bench --directions both --sizes 1280 --procs 2 --peers 1 --engines pipeline --workers 2 \
//	    --duration 1s --no-stage-cpu --cpuprofile testdata/pipeline-both.pprof
//
// and pipeline-both.tags.txt is `go tool pprof -tags` of it: an
// independent reading of the same labels to check StageShares against.
func TestStageSharesRecorded(t *testing.T) {
	f, err := os.Open("testdata/pipeline-both.pprof")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	shares, samples, total, err := StageShares(p)
	if err != nil {
		t.Fatal(err)
	}
	want := readTags(t, "testdata/pipeline-both.tags.txt")
	if len(want) == 0 {
		t.Fatal("no stages in the tags table")
	}
	if samples != int64(total/(10*time.Millisecond)) {
		t.Errorf("%d samples for %v of CPU at 100 Hz", samples, total)
	}
	var sum float64
	seen := map[string]bool{}
	for i, s := range shares {
		sum += s.Share
		seen[s.Stage] = true
		if s.Stage == NoStage {
			if i != len(shares)-1 {
				t.Errorf("%s is not last", NoStage)
			}
			continue
		}
		if i > 0 && shares[i-1].Seconds < s.Seconds {
			t.Errorf("%s after a smaller stage", s.Stage)
		}
		w, ok := want[s.Stage]
		if !ok {
			t.Errorf("stage %s not in go tool pprof's table", s.Stage)
			continue
		}
		// pprof prints milliseconds and percentages to two decimals.
		if math.Abs(s.Seconds-w.seconds) > 0.0005 || math.Abs(100*s.Share-w.percent) > 0.005 {
			t.Errorf("%s: %.3f s %.2f%%, go tool pprof says %.3f s %.2f%%", s.Stage, s.Seconds, 100*s.Share, w.seconds, w.percent)
		}
	}
	for st := range want {
		if !seen[st] {
			t.Errorf("stage %s missing", st)
		}
	}
	if !seen[NoStage] {
		t.Errorf("%s missing", NoStage)
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("shares sum to %v", sum)
	}
}

type tagRow struct{ seconds, percent float64 }

// readTags reads the stage section of `go tool pprof -tags`:
//
//	650ms (35.14%): decrypt
func readTags(t *testing.T, path string) map[string]tagRow {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]tagRow{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		val, name, ok := strings.Cut(strings.TrimSpace(sc.Text()), "): ")
		if !ok {
			continue
		}
		dur, pct, ok := strings.Cut(val, " (")
		if !ok {
			t.Fatalf("bad line %q", sc.Text())
		}
		d, err1 := time.ParseDuration(dur)
		p, err2 := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(pct, "%")), 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad line %q: %v %v", sc.Text(), err1, err2)
		}
		out[name] = tagRow{d.Seconds(), p}
	}
	return out
}

func TestStageSharesUnlabelled(t *testing.T) {
	cpu := &profile.ValueType{Type: "cpu", Unit: "nanoseconds"}
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, cpu},
		Sample: []*profile.Sample{
			{Value: []int64{3, 30e6}, Label: map[string][]string{"stage": {"decrypt"}}},
			{Value: []int64{1, 10e6}},
			{Value: []int64{6, 60e6}, Label: map[string][]string{"stage": {"encrypt"}}},
		},
	}
	shares, n, total, err := StageShares(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []StageShare{{"encrypt", 0.06, 0.6}, {"decrypt", 0.03, 0.3}, {NoStage, 0.01, 0.1}}
	if n != 10 || total != 100*time.Millisecond || len(shares) != len(want) {
		t.Fatalf("got %v, %d samples, %v", shares, n, total)
	}
	for i := range want {
		if shares[i].Stage != want[i].Stage || !near(shares[i].Seconds, want[i].Seconds) || !near(shares[i].Share, want[i].Share) {
			t.Errorf("share %d = %+v, want %+v", i, shares[i], want[i])
		}
	}
	if _, _, _, err := StageShares(&profile.Profile{SampleType: []*profile.ValueType{{Type: "alloc_space", Unit: "bytes"}}}); err == nil {
		t.Error("a profile without CPU time was accepted")
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
