package core

import (
	"cmp"

	"pipeguard/bench/core/svg"
	"pipeguard/stages"
)

// Kind is one implementation under test: PipeGuard with an engine,
// or wireguard-go (Engine ""). Unmanaged is PipeGuard with its queue
// management off (--queue-management off): the old behaviour, measured
// beside the default to show what managing the queues costs and buys.
type Kind struct {
	Impl, Engine string
	Unmanaged    bool
}

// String names the tunnel: "pipeguard pipeline", "pipeguard pipeline
// (queue management off)", "wireguard-go".
func (k Kind) String() string {
	s := k.Impl
	if k.Engine != "" {
		s += " " + k.Engine
	}
	if k.Unmanaged {
		s += " (queue management off)"
	}
	return s
}

// Kinds lists the tunnels a namespace mode measures: PipeGuard with
// each of engines, then wireguard-go.
func Kinds(engines []stages.Engine) []Kind { return KindsManaged(engines, true, false) }

// KindsManaged is Kinds with PipeGuard's queue management on (managed),
// off (unmanaged), or each engine both ways, managed first.
func KindsManaged(engines []stages.Engine, managed, unmanaged bool) []Kind {
	var out []Kind
	for _, e := range engines {
		if managed {
			out = append(out, Kind{Impl: ImplPipeGuard, Engine: string(e)})
		}
		if unmanaged {
			out = append(out, Kind{Impl: ImplPipeGuard, Engine: string(e), Unmanaged: true})
		}
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
// of the namespace modes: its name, its colour, the pipeline engine's
// line thicker, with round markers, and an engine with its queue
// management off dashed in its engine's colour.
func KindSeries(k Kind) svg.Series {
	name := k.Impl
	if k.Impl == ImplPipeGuard {
		name = "PipeGuard " + k.Engine
	}
	if k.Unmanaged {
		name += " (queue management off)"
	}
	colour := Kind{Impl: k.Impl, Engine: k.Engine}
	s := svg.Series{Name: name, Color: cmp.Or(kindColors[colour], "#888888"), Width: 2, Marker: "square", Dashed: k.Unmanaged}
	if k.Engine == "pipeline" {
		s.Width, s.Marker = 3, "circle"
	}
	return s
}
