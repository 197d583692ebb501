package bench

import (
	"errors"
	"testing"
	"time"
)

// TestModeConfigChecks: settings that no mode can run with are refused
// before anything runs.
func TestModeConfigChecks(t *testing.T) {
	for _, bad := range []Config{
		{Mode: ModeSoak, Duration: 500 * time.Millisecond},
		{Mode: ModeSoak, SoakEvery: -time.Second},
	} {
		if _, err := bad.withDefaults(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: err %v, want ErrConfig", bad, err)
		}
	}
}
