package core

import (
	"testing"

	"pipeguard/stages"
)

func TestKindsAndSeries(t *testing.T) {
	engines := []stages.Engine{stages.EngineSequential, stages.EnginePipeline}
	both := KindsManaged(engines, true, true)
	want := []string{
		"pipeguard sequential", "pipeguard sequential (queue management off)",
		"pipeguard pipeline", "pipeguard pipeline (queue management off)",
		"wireguard-go",
	}
	if len(both) != len(want) {
		t.Fatalf("kinds %v", both)
	}
	for i, k := range both {
		if k.String() != want[i] {
			t.Errorf("kind %d is %q, want %q", i, k, want[i])
		}
	}
	if got := Kinds(engines); len(got) != 3 || got[0].Unmanaged || got[1].Unmanaged {
		t.Errorf("Kinds: %v", got)
	}
	for _, tc := range []struct {
		k      Kind
		name   string
		dashed bool
	}{
		{Kind{Impl: ImplPipeGuard, Engine: "pipeline"}, "PipeGuard pipeline", false},
		{Kind{Impl: ImplPipeGuard, Engine: "pipeline", Unmanaged: true}, "PipeGuard pipeline (queue management off)", true},
		{Kind{Impl: ImplWireguardGo}, "wireguard-go", false},
	} {
		s := KindSeries(tc.k)
		if s.Name != tc.name || s.Dashed != tc.dashed {
			t.Errorf("%v: series %q dashed %v", tc.k, s.Name, s.Dashed)
		}
	}
	on := KindSeries(Kind{Impl: ImplPipeGuard, Engine: "sequential"})
	off := KindSeries(Kind{Impl: ImplPipeGuard, Engine: "sequential", Unmanaged: true})
	if on.Color != off.Color || on.Color == "#888888" {
		t.Errorf("colours on %s, off %s: want the engine's both ways", on.Color, off.Color)
	}
}
