package soak

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/svg"
)

// The soak mode's table and chart.

// soakHead is the series table's header for ends; soakRows formats the
// samples to match it. The last column is end A's datagram throughput
// over the interval before the sample, sent and received together.
func soakHead(ends []string) []string {
	h := []string{"t s"}
	for _, e := range ends {
		h = append(h, "RSS "+e+" MiB")
	}
	for _, e := range ends {
		h = append(h, "heap "+e+" MiB")
	}
	for _, e := range ends {
		h = append(h, "GCs "+e)
	}
	for _, e := range ends {
		h = append(h, "goroutines "+e)
	}
	h = append(h, "panic drops", "stage restarts")
	if len(ends) > 0 {
		h = append(h, ends[0]+" tunnel Gbit/s")
	}
	return h
}

func soakRows(r *Report) [][]string {
	var rows [][]string
	for i, s := range r.Samples {
		row := []string{fmt.Sprintf("%.0f", s.AtSeconds)}
		var drops, restarts uint64
		for _, e := range s.Ends {
			row = append(row, fmt.Sprintf("%.1f", mib(e.RSSBytes)))
		}
		for _, e := range s.Ends {
			row = append(row, fmt.Sprintf("%.1f", mib(e.HeapBytes)))
		}
		for _, e := range s.Ends {
			row = append(row, strconv.FormatUint(e.GCCycles, 10))
		}
		for _, e := range s.Ends {
			row = append(row, strconv.Itoa(e.Goroutines))
			drops += e.PanicDrops
			restarts += e.StageRestarts
		}
		row = append(row, strconv.FormatUint(drops, 10), strconv.FormatUint(restarts, 10))
		if len(s.Ends) > 0 {
			g := soakGbps(r, i)
			row = append(row, core.OrDash(i > 0, fmt.Sprintf("%.2f", g)))
		}
		rows = append(rows, row)
	}
	return rows
}

// soakGbps is end A's datagram throughput, sent and received, between
// samples i-1 and i; 0 for the first.
func soakGbps(r *Report, i int) float64 {
	if i == 0 || len(r.Samples[i].Ends) == 0 || len(r.Samples[i-1].Ends) == 0 {
		return 0
	}
	a, b := r.Samples[i-1], r.Samples[i]
	bytes := float64(b.Ends[0].RxBytes+b.Ends[0].TxBytes) - float64(a.Ends[0].RxBytes+a.Ends[0].TxBytes)
	return core.Ratio(bytes*8/1e9, b.AtSeconds-a.AtSeconds)
}

// WriteTable prints the soak's series, its changes, the traffic, the
// bounds and what broke them, and the line.
func (r *Report) WriteTable(b *strings.Builder) {
	every := time.Duration(r.ChangeEverySeconds * float64(time.Second))
	fmt.Fprintf(b, "\nSoak: two PipeGuard ends in network namespaces joined by a veth pair, real TUN, MTU %d, each\n", r.MTU)
	fmt.Fprintf(b, "pipeguard-headless-client %s (with %s);\n", strings.Join(r.Args, " "), strings.Join(r.Env, " "))
	fmt.Fprintf(b, "iperf3 --bidir (a TCP stream each way) and ping -i %g from A to B for %s after %s of warm-up;\n",
		soakPingInterval.Seconds(), fmtSoakDuration(time.Duration(r.DurationSeconds*float64(time.Second))),
		fmtSoakDuration(time.Duration(r.WarmupSeconds*float64(time.Second))))
	fmt.Fprintf(b, "a SIGHUP reload and a wg set peer change at each end every %s; every %gs, each end's RSS (VmRSS) and\n",
		fmtSoakDuration(every), r.SampleEverySeconds)
	fmt.Fprintf(b, "goroutines (go_goroutines), Go heap and GC cycles, and its stages' panic drops and restarts (metrics endpoint).\n")
	fmt.Fprintf(b, "PipeGuard %s; %s.\n\n", cmp.Or(r.PipeGuardRevision, "(revision unknown)"), r.Iperf3Version)
	t := core.Table{Head: soakHead(r.Ends), Rows: soakRows(r)}
	t.Write(b, "")
	b.WriteString("\n")
	t = core.Table{Head: []string{"t s", "end", "change", "applied"}, Left: map[int]bool{1: true, 2: true, 3: true}}
	for _, e := range r.Events {
		applied := "yes"
		if !e.Applied {
			applied = "NO: " + e.Error
		}
		t.Rows = append(t.Rows, []string{fmt.Sprintf("%.1f", e.AtSeconds), e.End, e.Kind + ": " + e.What, applied})
	}
	t.Write(b, "")
	fmt.Fprintf(b, "\nTCP: %.2f GB A→B and %.2f GB B→A in %.1f s (%.2f Gbit/s together), %d retransmits;\n",
		float64(r.TCP.BytesAToB)/1e9, float64(r.TCP.BytesBToA)/1e9, r.TCP.Seconds,
		core.Ratio(float64(r.TCP.BytesAToB+r.TCP.BytesBToA)*8/1e9, r.TCP.Seconds), r.TCP.Retransmits)
	fmt.Fprintf(b, "ping: %d of %d answered, RTT p50 %.3f ms, p99 %.3f ms.\n", r.Ping.Received, r.Ping.Sent, r.Ping.P50Ms, r.Ping.P99Ms)
	if n := len(r.Samples); n > 1 {
		var gcs uint64
		for i := range r.Samples[n-1].Ends {
			gcs += r.Samples[n-1].Ends[i].GCCycles - r.Samples[0].Ends[i].GCCycles
		}
		if gcs == 0 {
			b.WriteString("No GC cycle ran between the first and last samples: resident memory that grew with the heap is garbage\n" +
				"awaiting one (the queues make the heap goal large), not a leak.\n")
		}
	}
	fmt.Fprintf(b, "Bounds, for each end and both together: last RSS ≤ first × %.1f + %d MiB; last goroutines ≤ first + %d; no panic drops.\n",
		soakRSSFactor, soakRSSSlack>>20, soakGoroutineRise)
	for _, f := range r.Failures {
		fmt.Fprintf(b, "failure: %s\n", f)
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(b, "warning: %s\n", w)
	}
	b.WriteString(r.Line + "\n")
}

// Colours of the soak chart's ends.
var (
	soakColors     = []string{"#6a3d9a", "#c2530a", "#2b8a3e", "#1f5fa8"}
	soakHeapColors = []string{"#b79fd6", "#f2ac74", "#94d3a2", "#8fb6e0"}
)

// Chart draws the soak's series: RSS and goroutines of each end, and
// end A's tunnel throughput, against time; m is the machine it ran on.
func (sr *Report) Chart(m core.Machine) svg.Chart {
	c := svg.Chart{Title: "PipeGuard soak: " + fmtSoakDuration(time.Duration(sr.DurationSeconds*float64(time.Second))) +
		" of TCP both ways and ping, config changes every " + fmtSoakDuration(time.Duration(sr.ChangeEverySeconds*float64(time.Second))),
		XLabel: "seconds since the first sample"}
	// The line, in two: the bounded figures, then the others.
	headline, rest, _ := strings.Cut(sr.Line, "; both")
	if rest != "" {
		rest = "both" + rest
	}
	var changes []string
	for _, e := range sr.Events {
		if s := fmt.Sprintf("%.0f", e.AtSeconds); len(changes) == 0 || changes[len(changes)-1] != s {
			changes = append(changes, s)
		}
	}
	c.Subtitles = append(c.Subtitles,
		fmt.Sprintf("%s, %d cores, %s, %s; PipeGuard %s; SIGHUP reloads and wg set changes at %s s",
			m.CPUModel, m.Cores, m.GoVersion, m.Date,
			cmp.Or(shortRevision(sr.PipeGuardRevision), "(revision unknown)"), strings.Join(changes, ", ")),
		headline, rest)
	_, xstep := svg.NiceScale(sr.DurationSeconds)
	xr := [2]float64{0, sr.DurationSeconds}
	if n := len(sr.Samples); n > 0 {
		xr[1] = max(xr[1], sr.Samples[n-1].AtSeconds)
	}
	rss := svg.Panel{Title: "resident set (VmRSS) and Go heap", YLabel: "MiB", XStep: xstep, XRange: xr}
	gor := svg.Panel{Title: "goroutines (go_goroutines)", YLabel: "goroutines", XStep: xstep, XRange: xr}
	for i, end := range sr.Ends {
		// The ends' lines often coincide: the first wide and solid, the
		// others narrower and dashed on top of it.
		sRSS := svg.Series{Name: "end " + end, Color: soakColors[i%len(soakColors)], Width: 4, Marker: "circle"}
		if i > 0 {
			sRSS.Width, sRSS.Dashed, sRSS.Marker = 2, true, "square"
		}
		sGor := sRSS
		for _, s := range sr.Samples {
			if i < len(s.Ends) {
				sRSS.Points = append(sRSS.Points, svg.Point{X: s.AtSeconds, Y: mib(s.Ends[i].RSSBytes)})
				sGor.Points = append(sGor.Points, svg.Point{X: s.AtSeconds, Y: float64(s.Ends[i].Goroutines)})
			}
		}
		rss.Add(sRSS)
		gor.Add(sGor)
		heap := svg.Series{Name: "heap, end " + end, Color: soakHeapColors[i%len(soakHeapColors)], Width: 2, Dashed: true}
		for _, s := range sr.Samples {
			if i < len(s.Ends) {
				heap.Points = append(heap.Points, svg.Point{X: s.AtSeconds, Y: mib(s.Ends[i].HeapBytes)})
			}
		}
		rss.Add(heap)
	}
	tput := svg.Panel{Title: "tunnel throughput at end A", YLabel: "Gbit/s, sent + received", XStep: xstep, XRange: xr}
	if len(sr.Ends) > 0 {
		s := svg.Series{Name: "end " + sr.Ends[0] + " datagrams", Color: "#555555", Width: 2, Marker: "square"}
		for i := 1; i < len(sr.Samples); i++ {
			s.Points = append(s.Points, svg.Point{X: sr.Samples[i].AtSeconds, Y: soakGbps(sr, i)})
		}
		tput.Add(s)
	}
	c.Panels = append(c.Panels, rss, gor, tput)
	return c
}

// shortRevision keeps a commit hash's first 12 digits and any note after
// it.
func shortRevision(rev string) string {
	hash, rest, _ := strings.Cut(rev, " ")
	if len(hash) > 12 {
		hash = hash[:12]
	}
	return strings.TrimSpace(hash + " " + rest)
}
