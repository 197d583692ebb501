package bench

import (
	"errors"
	"testing"
	"time"

	"pipeguard/bench/loadgen"
)

// TestModeConfigChecks: settings that no mode can run with are refused
// before anything runs.
func TestModeConfigChecks(t *testing.T) {
	for _, bad := range []Config{
		{Mode: ModeSoak, Duration: 500 * time.Millisecond},
		{Mode: ModeSoak, SoakEvery: -time.Second},
		{Mode: ModeNetns, Streams: []int{0}},
		{Mode: ModeNetns, Streams: []int{129}},
	} {
		if _, err := bad.withDefaults(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: err %v, want ErrConfig", bad, err)
		}
	}
}

// TestModeConfigs: each mode gets the duration it was given, or its own
// default, never another mode's; the report records the in-memory
// mode's unless the flood or the soak ran.
func TestModeConfigs(t *testing.T) {
	for _, tc := range []struct {
		cfg             Config
		netns, settings time.Duration
	}{
		{Config{Mode: ModeNetns}, 10 * time.Second, time.Second},
		{Config{Mode: ModeNetns, Quick: true}, 2 * time.Second, 500 * time.Millisecond},
		{Config{Mode: ModeAll, Duration: 3 * time.Second}, 3 * time.Second, 3 * time.Second},
		{Config{Mode: ModeFlood, Quick: true}, 2 * time.Second, 2 * time.Second},
		{Config{Mode: ModeSoak}, 10 * time.Second, 10 * time.Minute},
	} {
		c, err := tc.cfg.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		if got := c.netns().Duration; got != tc.netns {
			t.Errorf("%+v: netns duration %v, want %v", tc.cfg, got, tc.netns)
		}
		if got := c.duration(); got != tc.settings {
			t.Errorf("%+v: the settings' duration %v, want %v", tc.cfg, got, tc.settings)
		}
	}
}

// TestLoadgenLimit: a loadgen cell must end on the session it started on,
// well before Rekey-After-Time, so a longer duration is refused; the
// netns mode has no such limit.
func TestLoadgenLimit(t *testing.T) {
	if _, err := (Config{Mode: "loadgun"}).withDefaults(); err == nil {
		t.Error("mode loadgun accepted")
	}
	for _, mode := range []Mode{ModeLoadgen, ModeAll} {
		if _, err := (Config{Mode: mode, Duration: loadgen.MaxDuration}).withDefaults(); err != nil {
			t.Errorf("%s, %v: %v", mode, loadgen.MaxDuration, err)
		}
		if _, err := (Config{Mode: mode, Duration: loadgen.MaxDuration + time.Second}).withDefaults(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s, %v: %v, want %v", mode, loadgen.MaxDuration+time.Second, err, ErrConfig)
		}
	}
	if _, err := (Config{Mode: ModeNetns, Duration: 5 * time.Minute}).withDefaults(); err != nil {
		t.Errorf("netns, 5m: %v", err)
	}
}
