package peers

import (
	"bytes"
	"slices"
	"testing"

	"pipeguard/bench/core"
	"pipeguard/bench/core/svg"
	"pipeguard/bench/core/svg/svgtest"
)

// TestChart: RSS and setconf time against peers on log axes, a line per
// implementation; a refused row is no point.
func TestChart(t *testing.T) {
	r := &Report{Revision: "abc", WireguardGo: "v1", Rows: []Row{
		{Impl: ImplPipeGuard, Peers: 1, RSSBytes: 20 << 20, SetconfSeconds: 0.01},
		{Impl: ImplPipeGuard, Peers: 100_000, RSSBytes: 120 << 20, SetconfSeconds: 1.2},
		{Impl: ImplWireguardGo, Peers: 1, RSSBytes: 10 << 20, SetconfSeconds: 0.01},
		{Impl: ImplWireguardGo, Peers: 10_000, RSSBytes: 300 << 20, SetconfSeconds: 2.2},
		{Impl: ImplWireguardGo, Peers: 100_000, Refused: true},
	}}
	c := r.Chart(core.Machine{CPUModel: "cpu", Cores: 2})
	if len(c.Panels) != 2 || !c.Panels[0].LogX || !c.Panels[0].LogY {
		t.Fatalf("panels: %+v", c.Panels)
	}
	for _, p := range c.Panels {
		if len(p.Series) != 2 || len(p.Series[0].Points) != 2 || len(p.Series[1].Points) != 2 {
			t.Errorf("panel %s: %+v", p.Title, p.Series)
		}
	}
	var b bytes.Buffer
	if err := svg.Write(&b, c); err != nil {
		t.Fatal(err)
	}
	d := svgtest.Parse(t, b.Bytes())
	for _, want := range []string{"resident memory", "wg setconf", "100k", "1k"} {
		if !slices.Contains(d.Texts, want) {
			t.Errorf("chart lacks %q: %q", want, d.Texts)
		}
	}
	if _, ok := d.Series["wireguard-go"]; !ok {
		t.Errorf("series %v", d.Series)
	}
}
