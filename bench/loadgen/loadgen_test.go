package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/svg"
	"pipeguard/bench/core/svg/svgtest"
	"pipeguard/stages"
	"pipeguard/tunio"
)

func TestTunDelivered(t *testing.T) {
	for _, tc := range []struct {
		bytes, writes, want uint64
	}{
		{0, 0, 0},
		{1280, 1, 1},                    // one packet, one write
		{64 * 1280, 64, 64},             // no coalescing
		{28 + 64*1252, 1, 64},           // one UDP GRO write of 64
		{2*28 + 100*1252, 2, 100},       // two GRO writes
		{28 + 3*1252 + 5*1280, 6, 8},    // a GRO write of 3, five single writes
		{27, 1, 0},                      // nonsense counters do not underflow
		{1280 - 1, 1, 0},                // a partial packet is not a packet
		{3*1280 + 28 + 2*1252, 4, 5},    // mixed the other way
		{1 << 40, 1 << 30, 854_190_780}, // large counters: (2^40 - 28*2^30) / 1252
	} {
		if got := tunDelivered(tc.bytes, tc.writes); got != tc.want {
			t.Errorf("tunDelivered(%d, %d) = %d, want %d", tc.bytes, tc.writes, got, tc.want)
		}
	}
}

const netDevSample = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 163433753   59963    0    0    0     0          0         0 163433753   59963    0    0    0     0       0          0
pgb1234t5a: 81920000   64000    0    7    0     0          0         0   769838    6641    0   12    0     0       0          0
  eth0: 162555037    9507    0    0    0     0          0         0   769838    6641    0    0    0     0       0          0
`

const snmpSample = `Ip: Forwarding DefaultTTL InReceives
Ip: 2 64 100
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 7160 0 42 5233 40 0 0 0 2
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 99 0 0 0 0
`

func TestParseNetDev(t *testing.T) {
	c, err := parseNetDev([]byte(netDevSample), "pgb1234t5a")
	if err != nil {
		t.Fatal(err)
	}
	want := netDevCounters{rxBytes: 81920000, rxPackets: 64000, rxDropped: 7, txBytes: 769838, txPackets: 6641, txDropped: 12}
	if c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}
	for _, bad := range []struct{ text, iface string }{
		{netDevSample, "pgb1234t5"},                              // a prefix of a name is not the name
		{netDevSample, "t5a"},                                    // nor a suffix
		{"  x0: 1 2 3\n", "x0"},                                  // too few fields
		{"  x0: 1 2 3 4 5 6 7 8 9 10 11 -1 13 14 15 16\n", "x0"}, // not a number
		{"", "lo"},
	} {
		if _, err := parseNetDev([]byte(bad.text), bad.iface); err == nil {
			t.Errorf("%q in %q: no error", bad.iface, bad.text)
		}
	}
	dev := []byte(netDevSample)
	if n := testing.AllocsPerRun(100, func() { parseNetDev(dev, "eth0") }); n != 0 {
		t.Errorf("%v allocations per parse", n)
	}
}

func TestParseSnmpUDP(t *testing.T) {
	for name, want := range map[string]uint64{"InDatagrams": 7160, "RcvbufErrors": 40, "MemErrors": 2, "InErrors": 42} {
		got, err := parseSnmpUDP([]byte(snmpSample), name)
		if err != nil || got != want {
			t.Errorf("%s: %d, %v; want %d", name, got, err, want)
		}
	}
	for _, bad := range []struct{ text, name string }{
		{snmpSample, "Nope"},
		{"Udp: A B\n", "A"},           // no values line
		{"Udp: A B\nUdp: 1 x\n", "B"}, // not a number
		{"Udp: A B\nUdp: 1\n", "B"},   // short values line
	} {
		if _, err := parseSnmpUDP([]byte(bad.text), bad.name); err == nil {
			t.Errorf("%s in %q: no error", bad.name, bad.text)
		}
	}
	snmp := []byte(snmpSample)
	if n := testing.AllocsPerRun(100, func() { parseSnmpUDP(snmp, "RcvbufErrors") }); n != 0 {
		t.Errorf("%v allocations per parse", n)
	}
	if v, ok := parseDec([]byte("18446744073709551615")); !ok || v != 1<<64-1 {
		t.Errorf("max uint64: %d, %v", v, ok)
	}
	if _, ok := parseDec([]byte("18446744073709551616")); ok {
		t.Error("2^64 accepted")
	}
}

// TestWindow walks the window through its rules: room up to its size;
// growth when full without drops; a shrink by an eighth on drops and no
// growth right after; a stall writes off what is in flight and halves
// it; packets written off that turn up after all are taken back.
func TestWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	w := newWindow(t0)
	if w.room() != windowStart {
		t.Fatalf("room %d", w.room())
	}
	w.sent = windowStart
	if w.room() != 0 {
		t.Fatalf("room %d when all sent", w.room())
	}
	w.look(100, 0, t0.Add(time.Millisecond))
	if w.room() != 100 {
		t.Errorf("room %d after 100 delivered", w.room())
	}
	w.sent += 100
	w.full(t0.Add(time.Millisecond))
	if w.size != windowStart+windowGrow || w.room() != windowGrow {
		t.Errorf("full without drops: size %d, room %d", w.size, w.room())
	}
	size := w.size
	w.look(100, 10, t0.Add(2*time.Millisecond))
	if w.size != size-size/8 || !w.shrunk {
		t.Errorf("drops: size %d, want %d", w.size, size-size/8)
	}
	big := newWindow(t0)
	big.sent = windowStart
	big.look(0, windowStart-300, t0)
	if big.size != 300 {
		t.Errorf("many drops: size %d, want 300", big.size)
	}
	w.full(t0.Add(2 * time.Millisecond))
	if w.size != size-size/8 {
		t.Errorf("grew right after drops: %d", w.size)
	}
	// Nothing moves: the window does not grow, and after stallAfter what
	// is in flight is written off.
	size = w.size
	inFlight := w.sent - w.done
	w.look(100, 10, t0.Add(10*time.Millisecond))
	w.full(t0.Add(10 * time.Millisecond))
	if w.stalls != 0 || w.size != size {
		t.Fatalf("no progress: stalls %d, size %d, want 0, %d", w.stalls, w.size, size)
	}
	w.full(t0.Add(2*time.Millisecond + stallAfter))
	if w.stalls != 1 || w.writtenOff != inFlight || w.size != size/2 || w.room() != w.size {
		t.Errorf("stall: %+v, in flight %d", w, inFlight)
	}
	// Half of them arrive after all: they are taken back, and done never
	// passes sent.
	w.look(100+inFlight/2, 10, t0.Add(time.Second))
	if w.writtenOff != inFlight-inFlight/2 || w.done != w.sent || w.size != size {
		t.Errorf("late arrivals: written off %d, done %d, sent %d, size %d (want %d back)", w.writtenOff, w.done, w.sent, w.size, size)
	}
	for i := range uint64(100) {
		w.sent += 100
		w.look(100+inFlight, 20+i, t0) // a drop each time
	}
	if w.size != windowMin {
		t.Errorf("size %d after many drops, want the minimum %d", w.size, windowMin)
	}
}

// fakePath is a tunio.UDPConn into a make-believe tunnel: what is sent
// queues up to capacity (the rest is dropped and counted), and each sleep
// of the generator lets the tunnel take perSleep packets (none for a
// black hole, which neither delivers nor counts drops).
type fakePath struct {
	mu                 sync.Mutex
	clock              time.Time // advanced by sleep
	capacity, perSleep uint64
	queued, delivered  uint64
	dropped, sent      uint64
	maxInFlight        uint64
	batches            int
}

func (p *fakePath) WriteBatch(msgs []tunio.Datagram) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range msgs {
		if m.N != 7 || !m.Addr.IsValid() {
			panic("bad datagram")
		}
	}
	n := uint64(len(msgs))
	p.sent += n
	p.batches++
	p.queued += n
	if p.queued > p.capacity {
		if p.perSleep > 0 {
			p.dropped += p.queued - p.capacity
		}
		p.queued = p.capacity
	}
	p.maxInFlight = max(p.maxInFlight, p.queued)
	return nil
}

func (p *fakePath) count() (uint64, uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delivered, p.dropped, nil
}

func (p *fakePath) sleep(time.Duration) {
	p.mu.Lock()
	k := min(p.queued, p.perSleep)
	p.queued -= k
	p.delivered += k
	p.clock = p.clock.Add(floodPause)
	p.mu.Unlock()
	runtime.Gosched()
}

func (p *fakePath) now() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.clock
}

func (p *fakePath) ReadBatch([]tunio.Datagram) (int, error) { return 0, tunio.ErrClosed }
func (p *fakePath) LocalAddr() netip.AddrPort               { return netip.AddrPort{} }
func (p *fakePath) BatchSize() int                          { return 128 }
func (p *fakePath) Close() error                            { return nil }

// TestFlood runs the generator against make-believe tunnels: one with room
// for more than the window (the generator never has more than the window
// in flight, loses nothing, and waits for the tunnel), one whose queue is
// smaller than the window (the window shrinks until little is lost), and
// a black hole (stalls are written off and the generator goes on).
func TestFlood(t *testing.T) {
	for _, tc := range []struct {
		name               string
		capacity, perSleep uint64
		until              func(p *fakePath, s floodStats) bool
		check              func(t *testing.T, p *fakePath, s floodStats)
	}{
		{"roomy", 1 << 20, 100, func(p *fakePath, s floodStats) bool { return p.delivered > 200_000 },
			func(t *testing.T, p *fakePath, s floodStats) {
				if p.maxInFlight > windowMax || p.dropped != 0 || s.Stalls != 0 || s.Window != windowMax || s.Wait <= 0 {
					t.Errorf("max in flight %d, dropped %d, stats %+v", p.maxInFlight, p.dropped, s)
				}
			}},
		// Long enough that the first overshoot (windowStart into a queue
		// of 500, dropped at once) is not what the loss bound measures.
		{"small queue", 500, 100, func(p *fakePath, s floodStats) bool { return p.delivered > 1_000_000 },
			func(t *testing.T, p *fakePath, s floodStats) {
				if p.dropped*50 > p.sent || s.Window > 1000 || s.Stalls != 0 {
					t.Errorf("dropped %d of %d, stats %+v", p.dropped, p.sent, s)
				}
			}},
		{"black hole", 1 << 20, 0, func(p *fakePath, s floodStats) bool { return s.Stalls >= 2 },
			func(t *testing.T, p *fakePath, s floodStats) {
				if s.WrittenOff == 0 || s.Sent-s.WrittenOff > windowStart || s.Window != uint64(max(windowMin, windowStart>>s.Stalls)) {
					t.Errorf("stats %+v", s)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &fakePath{capacity: tc.capacity, perSleep: tc.perSleep}
			fill := func(msgs []tunio.Datagram) {
				for i := range msgs {
					msgs[i] = tunio.Datagram{Buf: make([]byte, 7), N: 7, Addr: netip.MustParseAddrPort("192.0.2.1:9")}
				}
			}
			f := newFlood(p, p.BatchSize(), fill, p.count, p.sleep)
			f.now = p.now
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- f.run(ctx) }()
			deadline := time.Now().Add(20 * time.Second)
			for {
				s := f.snapshot() // before p.mu: the fake clock takes it
				p.mu.Lock()
				ok := tc.until(p, s)
				p.mu.Unlock()
				if ok {
					break
				}
				if time.Now().After(deadline) {
					cancel()
					t.Fatalf("not done: %+v, stats %+v", p, f.snapshot())
				}
				time.Sleep(time.Millisecond)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			s := f.snapshot()
			p.mu.Lock()
			defer p.mu.Unlock()
			if s.Sent != p.sent {
				t.Errorf("sent %d, the path saw %d", s.Sent, p.sent)
			}
			if s.Wait <= 0 || s.Wait > p.clock.Sub(time.Time{}) {
				t.Errorf("waited %v of %v", s.Wait, p.clock.Sub(time.Time{}))
			}
			tc.check(t, p, s)
		})
	}
}

// loadgenFixture is a made-up loadgen report, two repeats of each tunnel,
// and the machine and settings it was measured with.
func loadgenFixture() (*Report, core.Machine, core.Settings) {
	kinds := []core.Kind{{Impl: core.ImplPipeGuard, Engine: "sequential"}, {Impl: core.ImplPipeGuard, Engine: "pipeline"}, {Impl: core.ImplWireguardGo}}
	s := func(mpps float64, tunnelCPU, genCPU, wait float64) Sample {
		p := uint64(mpps * 2e6)
		return Sample{Packets: p, Offered: p + p/100, Seconds: 2, TunnelCPUSeconds: tunnelCPU * 2, GeneratorCPUSeconds: genCPU * 2, WaitSeconds: wait * 2}
	}
	samples := [][][]Sample{
		{{s(0.2, 1, 0.3, 0.9), s(0.4, 1, 0.5, 0.9)}, {s(0.3, 1, 0.2, 0.8), s(0.3, 1, 0.2, 0.8)}},
		{{s(0.5, 1.8, 0.5, 0.95), s(0.7, 1.8, 0.6, 0.95)}, {s(0.6, 1.6, 0.3, 0.9), s(0.6, 1.6, 0.3, 0.9)}},
		{{s(0.25, 1.5, 0.3, 0.9), s(0.25, 1.5, 0.3, 0.9)}, {s(0.2, 1.2, 0.2, 0.05), s(0.2, 1.2, 0.2, 0.05)}},
	}
	for i := range samples { // inbound: the ring's sealing, 1.0 and 1.2 s
		for j := range samples[i][0] {
			samples[i][0][j].SealSeconds, samples[i][0][j].SealedAhead = 1+0.2*float64(j), 2_500_000
		}
	}
	runs := summarizeLoadgen(kinds, [][]string{{"a"}, {"b"}, {"c"}}, samples)
	return &Report{MTU: 1280, InnerPacketBytes: 1280, Seconds: 2, WarmupSeconds: 0.3, Generator: "one thread",
			RingPackets: 2_500_000, RingBytes: 2_500_000 * ringSlot, RingMapSeconds: 0.5, PeakRSSBytes: 3 << 30,
			LoadAverageEnd: "0.60 0.40 0.30", WireguardGoVersion: "v0.0.0-test", Runs: runs, Warnings: loadgenWarnings(runs)},
		core.Machine{CPUModel: "Test CPU", Cores: 2, Date: "2026-11-28T00:00:00Z", LoadAverage: "0.50 0.40 0.30"},
		core.Settings{Mode: "loadgen", Repeat: 2}
}

// TestLoadgenSummary checks the arithmetic (medians of two are means,
// percentages of the measured time, ratios of the medians), the table,
// the ratio table in its fixed form, the warnings and the chart.
func TestLoadgenSummary(t *testing.T) {
	lr, m, st := loadgenFixture()
	runs := lr.Runs
	seq, pipe, wg := runs[0], runs[1], runs[2]
	if !near(seq.Results[0].Mpps, 0.3) || !near(pipe.Results[0].Mpps, 0.6) || !near(wg.Results[1].Mpps, 0.2) ||
		seq.Results[0].Direction != core.Inbound || seq.Results[1].Direction != core.Outbound {
		t.Errorf("medians %+v", runs)
	}
	if !near(pipe.Results[0].Gbps, 0.6*1280*8/1e3) || !near(seq.Results[0].TunnelCPUPercent, 100) ||
		!near(seq.Results[0].GeneratorCPUPercent, 40) || !near(pipe.Results[1].WaitPercent, 90) ||
		!near(seq.Results[0].OfferedMpps, 0.303) || !near(seq.Results[1].LostPercent, 100*float64(6000)/606000) {
		t.Errorf("figures %+v", seq.Results[0])
	}
	if !near(pipe.Results[0].VsSequential, 2) || !near(pipe.Results[1].VsSequential, 2) ||
		!near(pipe.Results[0].VsWireguardGo, 2.4) || !near(pipe.Results[1].VsWireguardGo, 3) ||
		!near(seq.Results[1].VsWireguardGo, 1.5) || seq.Results[0].VsSequential != 0 || wg.Results[0].VsWireguardGo != 0 {
		t.Errorf("ratios %+v", runs)
	}
	if w := lr.Warnings; len(w) != 1 || !strings.Contains(w[0], "wireguard-go outbound: the generator waited for the tunnel only 5%") {
		t.Errorf("warnings %q", w)
	}
	if !near(seq.Results[0].SealSeconds, 1.1) || seq.Results[1].SealSeconds != 0 {
		t.Errorf("sealing time: %v inbound, %v outbound", seq.Results[0].SealSeconds, seq.Results[1].SealSeconds)
	}
	ranOut := slices.Clone(runs[0].Results)
	ranOut[0].Samples = []Sample{{Offered: 1000, SealedLive: 0}, {Offered: 1000, SealedLive: 50}}
	if w := loadgenWarnings([]Run{{Impl: core.ImplPipeGuard, Engine: "sequential", Results: ranOut}}); len(w) != 1 ||
		!strings.HasPrefix(w[0], "pipeguard sequential inbound: the pre-sealed ring ran out; 2.5% of the datagrams offered were sealed on the fly") {
		t.Errorf("ring warnings %q", w)
	}
	stalled := slices.Clone(runs[0].Results)
	stalled[0].Samples = []Sample{{Stalls: 1}, {Stalls: 2}}
	if w := loadgenWarnings([]Run{{Impl: core.ImplPipeGuard, Engine: "sequential", Results: stalled}}); len(w) != 1 ||
		!strings.HasPrefix(w[0], "pipeguard sequential inbound: 3 stall(s) of 50ms") {
		t.Errorf("stall warnings %q", w)
	}

	out := lr.table(m, st)
	wantInTable(t, out,
		"Load average: 0.50 0.40 0.30 at the start, 0.60 0.40 0.30 at the end.\n",
		"Generator: one thread.\n",
		"Pre-sealed ring: 2500000 datagrams, 3.06 GiB, mapped in 0.50 s (harness peak RSS 3.00 GiB); sealing it before each inbound cell, "+
			"outside every figure, took 1.10 s (pipeguard sequential), 1.10 s (pipeguard pipeline), 1.10 s (wireguard-go).\n",
		"loadgen ratio              inbound  outbound\n"+
			"pipeline / sequential         2.00      2.00\n"+
			"pipeline / wireguard-go       2.40      3.00\n",
		"warning: wireguard-go outbound: the generator waited")
	for _, run := range runs {
		for _, res := range run.Results {
			if row := strings.Join(loadgenRow(run, res), " "); !strings.Contains(squeeze(out), row+"\n") {
				t.Errorf("table lacks the row %q", row)
			}
		}
	}

	// Without the pipeline (--engines sequential), the ratios are dashes.
	lr.Runs = slices.Delete(slices.Clone(runs), 1, 2)
	wantInTable(t, lr.table(m, st), "pipeline / sequential            -         -\n")
	lr.Runs = runs

	var chart bytes.Buffer
	if err := svg.Write(&chart, lr.AddChart(svg.Chart{}, m, st, 0)); err != nil {
		t.Fatal(err)
	}
	d := svgtest.Parse(t, chart.Bytes())
	for _, text := range []string{"inbound, one end under load",
		"outbound, one end under load", "tunnel CPU (cores)", "delivered Gbit/s",
		"1.4"} { // an x tick: cores from 1.0 to 1.8 tick every 0.2
		if !slices.Contains(d.Texts, text) {
			t.Errorf("chart lacks %q: %q", text, d.Texts)
		}
	}
	// One point per tunnel and direction: markers, and a legend entry
	// each.
	for _, name := range []string{"PipeGuard pipeline", "PipeGuard sequential", "wireguard-go"} {
		if !slices.Contains(d.Texts, name) {
			t.Errorf("chart's legend lacks %q", name)
		}
	}
	if n := strings.Count(chart.String(), `<polyline class="legend"`); n != 3 {
		t.Errorf("%d legend entries, want 3", n)
	}
	if n := strings.Count(chart.String(), `<circle `); n != 3 {
		t.Errorf("%d circles (the pipeline's markers, two panels and the legend), want 3", n)
	}

	// Through JSON and back, nothing is lost.
	j, err := json.Marshal(lr)
	if err != nil {
		t.Fatal(err)
	}
	var back *Report
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&back); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(back) != fmt.Sprint(lr) {
		t.Errorf("JSON round trip:\n%+v\n%+v", back, lr)
	}
}

func TestLoadgenPlan(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want time.Duration
	}{
		{Config{}, 10 * time.Second},
		{Config{Quick: true}, 2 * time.Second},
		{Config{Quick: true, Duration: 700 * time.Millisecond}, 700 * time.Millisecond},
	} {
		if c := tc.cfg.WithDefaults(); c.Duration != tc.want {
			t.Errorf("%+v: %v, want %v", tc.cfg, c.Duration, tc.want)
		}
	}
}

// squeeze collapses each line's runs of white space into one space, so
// that a table's row can be found by its cells.
func squeeze(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		b.WriteString(strings.Join(strings.Fields(line), " ") + "\n")
	}
	return b.String()
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// TestLoadgenQueueManagementOff: with each engine measured both ways,
// every managed run gets its ratio to the same engine unmanaged, the
// pipeline's ratio to the sequential engine compares runs managed alike,
// and the table shows which is which.
func TestLoadgenQueueManagementOff(t *testing.T) {
	kinds := core.KindsManaged([]stages.Engine{stages.EngineSequential, stages.EnginePipeline}, true, true)
	if len(kinds) != 5 || !kinds[1].Unmanaged || kinds[2].Unmanaged || !kinds[3].Unmanaged {
		t.Fatalf("kinds %v", kinds)
	}
	// Gbit/s at 1280 bytes: mpps × 10.24; managed at 0.8 of off, the
	// pipeline at twice the sequential engine, wireguard-go at 0.1.
	mpps := []float64{0.4, 0.5, 0.8, 1.0, 0.1}
	samples := make([][][]Sample, len(kinds))
	args := make([][]string, len(kinds))
	for i, m := range mpps {
		s := Sample{Packets: uint64(m * 2e6), Offered: uint64(m * 2e6), Seconds: 2}
		samples[i] = [][]Sample{{s}, {s}}
	}
	runs := summarizeLoadgen(kinds, args, samples)
	for i, want := range []struct{ onOff, vsSeq, vsWG float64 }{
		{0.8, 0, 4}, {0, 0, 5}, {0.8, 2, 8}, {0, 2, 10}, {0, 0, 0},
	} {
		for _, res := range runs[i].Results {
			if !near(res.VsManagementOff, want.onOff) || !near(res.VsSequential, want.vsSeq) || !near(res.VsWireguardGo, want.vsWG) {
				t.Errorf("%v %s: on/off %.2f, vs sequential %.2f, vs wireguard-go %.2f; want %+v",
					runs[i].kind(), res.Direction, res.VsManagementOff, res.VsSequential, res.VsWireguardGo, want)
			}
		}
	}
	lr, m, st := loadgenFixture()
	lr.Runs = runs
	out := lr.table(m, st)
	wantInTable(t, out,
		"pipeline / sequential         2.00      2.00\n",
		"pipeline on/off               0.80      0.80\n",
		"sequential on/off             0.80      0.80\n")
	for _, row := range []string{
		"pipeguard pipeline managed inbound 8.19 ",
		"pipeguard pipeline off inbound 10.24 ",
		"wireguard-go - - outbound 1.02 ",
	} {
		if !strings.Contains(squeeze(out), row) {
			t.Errorf("table lacks a row starting %q:\n%s", row, out)
		}
	}
}

// table is lr's printed table.
func (lr *Report) table(m core.Machine, st core.Settings) string {
	var b strings.Builder
	lr.WriteTable(&b, m, st)
	return b.String()
}

// wantInTable fails t for each of wants the table out lacks.
func wantInTable(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
