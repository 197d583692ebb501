package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/nsenv/nsenvtest"
	"pipeguard/bench/core/svg"
	"pipeguard/bench/core/svg/svgtest"
)

// TestLoadgenQuick runs the loadgen mode's quick form end to end: real
// namespaces, both PipeGuard engines and wireguard-go each under load from
// the harness, both directions. It checks that every cell is measured
// (throughput, packets, the tunnel's CPU and the generator's own), that
// each inbound cell was sent from a ring sealed ahead, that the table
// holds every row and the ratio table in its fixed form, that the report
// survives its JSON and the chart holds the figures, and that nothing is left behind. About
// 45 s on two cores (with the race detector), a tenth of it mapping the
// ring and a fifth sealing it.
func TestLoadgenQuick(t *testing.T) {
	requireLoadgen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m, st := core.DescribeMachine(nil), core.Settings{Repeat: 1}
	begin := time.Now()
	lr, err := Measure(ctx, Config{Quick: true, Out: core.Out{W: nsenvtest.Log{T: t}}})
	t.Logf("loadgen run: %v", time.Since(begin).Round(100*time.Millisecond))
	nsenvtest.AssertNothingLeft(t)
	if err != nil {
		t.Fatal(err)
	}
	checkLoadgenReport(t, lr, st.Repeat, m)
	var b strings.Builder
	lr.WriteTable(&b, m, st)
	table := b.String()
	t.Logf("\n%s", table)
	j, err := json.Marshal(lr)
	if err != nil {
		t.Fatal(err)
	}
	var back *Report
	if err := json.Unmarshal(j, &back); err != nil || !reflect.DeepEqual(back, lr) {
		t.Errorf("JSON round trip: %v", err)
	}
	for _, run := range lr.Runs {
		for _, res := range run.Results {
			if row := strings.Join(loadgenRow(run, res), " "); !strings.Contains(squeeze(table), row+"\n") {
				t.Errorf("table lacks the row %q", row)
			}
		}
	}
	// Columns of 23, 9 and 8 characters, two spaces apart; numbers right
	// aligned with two decimals.
	ratios := regexp.MustCompile(`(?m)^loadgen ratio {14}inbound {2}outbound\n` +
		`pipeline / sequential {4}[ \d]{5}\d\.\d\d {2}[ \d]{4}\d\.\d\d\n` +
		`pipeline / wireguard-go {2}[ \d]{5}\d\.\d\d {2}[ \d]{4}\d\.\d\d\n`)
	if !ratios.MatchString(table) {
		t.Errorf("no ratio table in its fixed form:\n%s", table)
	}
	if !strings.Contains(table, "Load average: "+m.LoadAverage+" at the start") || !strings.Contains(table, "Generator: ") ||
		!strings.Contains(table, "Pre-sealed ring: ") {
		t.Errorf("the header lacks the load average, the generator or the ring")
	}
	var chart bytes.Buffer
	if err := svg.Write(&chart, lr.AddChart(svg.Chart{}, m, st, 0)); err != nil {
		t.Fatal(err)
	}
	d := svgtest.Parse(t, chart.Bytes())
	for _, text := range []string{"PipeGuard pipeline", "PipeGuard sequential", "wireguard-go", "inbound, one end under load", "outbound, one end under load"} {
		if !slices.Contains(d.Texts, text) {
			t.Errorf("chart lacks %q", text)
		}
	}
}

// requireLoadgen skips t unless the loadgen mode can run here (root, ip,
// /dev/net/tun) and the test is not short; with CI=true it fails instead.
func requireLoadgen(t *testing.T) {
	t.Helper()
	nsenvtest.Require(t, loadgenUsable())
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("runs tunnels under load for half a minute")
	}
}

// checkLoadgenReport checks that a loadgen report of repeat repeats on
// machine m holds every figure, sane, and that its ratios are its
// figures' quotients.
func checkLoadgenReport(t *testing.T, lr *Report, repeat int, m core.Machine) {
	t.Helper()
	if lr == nil {
		t.Fatal("no loadgen figures")
	}
	if lr.RingPackets < loadRingMin || lr.RingBytes != uint64(lr.RingPackets)*ringSlot || lr.PeakRSSBytes < lr.RingBytes {
		t.Errorf("ring: %d datagrams, %d bytes; harness peak RSS %d bytes", lr.RingPackets, lr.RingBytes, lr.PeakRSSBytes)
	}
	if lr.MTU != 1280 || lr.InnerPacketBytes != 1280 || !(lr.Seconds > 0) || lr.Generator == "" ||
		lr.WireguardGoVersion == "" || lr.WireguardGoVersion == "unknown" || m.LoadAverage == "" || lr.LoadAverageEnd == "" {
		t.Errorf("settings %+v, load average %q", lr, m.LoadAverage)
	}
	var kinds []string
	gbps := map[string]float64{}
	maxCPU := 100 * float64(m.Cores) * 1.1
	for _, run := range lr.Runs {
		k := core.Kind{Impl: run.Impl, Engine: run.Engine}.String()
		kinds = append(kinds, k)
		if len(run.Results) != 2 || run.Results[0].Direction != core.Inbound || run.Results[1].Direction != core.Outbound || len(run.Args) == 0 {
			t.Fatalf("%s: results %+v, args %q", k, run.Results, run.Args)
		}
		for _, res := range run.Results {
			what := fmt.Sprintf("%s %s", k, res.Direction)
			if !(res.Gbps > 0) || !(res.Mpps > 0) || !near(res.Gbps, res.Mpps*1280*8/1e3) || len(res.Samples) != repeat ||
				!(res.TunnelCPUPercent > 0) || res.TunnelCPUPercent > maxCPU ||
				!(res.GeneratorCPUPercent > 0) || res.GeneratorCPUPercent > maxCPU ||
				!(res.OfferedMpps > 0) || res.LostPercent < 0 || res.LostPercent > 100 || res.WaitPercent < 0 || res.WaitPercent > 101 {
				t.Errorf("%s: %+v", what, res)
			}
			gbps[what] = res.Gbps
			// Inbound is sent from the ring, sealed ahead; outbound
			// seals nothing.
			inbound := res.Direction == core.Inbound
			if inbound != (res.SealSeconds > 0) {
				t.Errorf("%s: sealing took %v s", what, res.SealSeconds)
			}
			for _, s := range res.Samples {
				if inbound != (s.SealedAhead == uint64(lr.RingPackets)) || !inbound && s.SealedLive != 0 {
					t.Errorf("%s: %d sealed ahead, %d on the fly", what, s.SealedAhead, s.SealedLive)
				}
			}
			// Not a check: on a loaded machine the tunnel may get less
			// CPU than the generator.
			t.Logf("%s: %.2f Gbit/s, tunnel CPU %.0f%%, generator CPU %.0f%%", what, res.Gbps, res.TunnelCPUPercent, res.GeneratorCPUPercent)
		}
	}
	if want := []string{"pipeguard sequential", "pipeguard pipeline", "wireguard-go"}; !slices.Equal(kinds, want) {
		t.Fatalf("tunnels %q, want %q", kinds, want)
	}
	for _, run := range lr.Runs {
		for _, res := range run.Results {
			d := " " + string(res.Direction)
			wantWG, wantSeq := 0.0, 0.0
			if run.Impl == core.ImplPipeGuard {
				wantWG = res.Gbps / gbps["wireguard-go"+d]
				if run.Engine == "pipeline" {
					wantSeq = res.Gbps / gbps["pipeguard sequential"+d]
				}
			}
			if !near(res.VsWireguardGo, wantWG) || !near(res.VsSequential, wantSeq) {
				t.Errorf("%s %s%s: ratios %v, %v; want %v, %v", run.Impl, run.Engine, d, res.VsWireguardGo, res.VsSequential, wantWG, wantSeq)
			}
		}
	}
	for _, w := range lr.Warnings {
		t.Logf("warning: %s", w)
	}
}

// TestLoadgenCancel cancels a loadgen run while the generator floods (as
// cmd/bench does on Ctrl-C) and checks that it returns the context's
// error promptly and leaves nothing behind: no namespace, process,
// socket or directory.
func TestLoadgenCancel(t *testing.T) {
	requireLoadgen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The first measurement's end is reported while the second (the first
	// tunnel's outbound flood) starts: cancel then, a little into it.
	var once sync.Once
	progress := writerFunc(func(p []byte) (int, error) {
		t.Log(strings.TrimRight(string(p), "\n"))
		if bytes.Contains(p, []byte("[1/")) {
			once.Do(func() { time.AfterFunc(500*time.Millisecond, cancel) })
		}
		return len(p), nil
	})
	stopped := make(chan time.Time, 1)
	go func() { <-ctx.Done(); stopped <- time.Now() }()
	_, err := Measure(ctx, Config{Quick: true, Out: core.Out{W: progress}})
	took := time.Since(<-stopped)
	nsenvtest.AssertNothingLeft(t)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("the run: %v, want %v", err, context.Canceled)
	}
	if took > 10*time.Second {
		t.Errorf("took %v to stop after the cancel", took)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
