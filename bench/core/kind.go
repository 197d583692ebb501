package core

import (
	"cmp"

	"pipeguard/bench/core/svg"
	"pipeguard/stages"
)

// Kind is one implementation under test: PipeGuard with an engine,
// or wireguard-go (Engine "").
type Kind struct {
	Impl, Engine string
}

// String names the tunnel: "pipeguard pipeline", "wireguard-go".
func (k Kind) String() string {
	if k.Engine == "" {
		return k.Impl
	}
	return k.Impl + " " + k.Engine
}

// Kinds lists the tunnels a namespace mode measures: PipeGuard with
// each of engines, then wireguard-go.
func Kinds(engines []stages.Engine) []Kind {
	var out []Kind
	for _, e := range engines {
		out = append(out, Kind{Impl: ImplPipeGuard, Engine: string(e)})
	}
	return append(out, Kind{Impl: ImplWireguardGo})
}

// Colours of the namespace modes' lines, the same in every panel: PipeGuard
// in purple (the pipeline strong, the sequential engine light), and
// wireguard-go in near-black; in-memory lines use blue, orange and green.
var kindColors = map[Kind]string{
	{Impl: ImplPipeGuard, Engine: string(stages.EnginePipeline)}:   "#6a3d9a",
	{Impl: ImplPipeGuard, Engine: string(stages.EngineSequential)}: "#b79fd6",
	{Impl: ImplWireguardGo}: "#222222",
}

// KindSeries is an empty line for tunnel k, drawn alike in every panel
// of the namespace modes: its name, its colour, and the pipeline engine's
// line thicker, with round markers.
func KindSeries(k Kind) svg.Series {
	name := k.Impl
	if k.Impl == ImplPipeGuard {
		name = "PipeGuard " + k.Engine
	}
	s := svg.Series{Name: name, Color: cmp.Or(kindColors[k], "#888888"), Width: 2, Marker: "square"}
	if k.Engine == "pipeline" {
		s.Width, s.Marker = 3, "circle"
	}
	return s
}
