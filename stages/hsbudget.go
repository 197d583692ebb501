package stages

import (
	"fmt"
	"time"

	"pipeguard/noise"
)

// HandshakeBudget bounds the Curve25519 work the handshake workers do
// for the messages they receive, over all sources together, in X25519
// operations: a received initiation takes noise.DHPerInitiation of them
// before it is worked on, a received response noise.DHPerResponse. A
// message that finds the budget spent is dropped, and the tunnel is under
// load (cookies required) until it refills.
//
// The zero value stands for the calibrated budget (CalibrateHandshakeBudget).
type HandshakeBudget struct {
	PerSecond float64 // X25519 operations a second
	Burst     float64 // X25519 operations at once
}

// The calibrated budget's figures.
const (
	// HandshakeCPUShare is the share of the tunnel's cores (GOMAXPROCS)
	// that received handshakes may keep busy with Curve25519 work: half a
	// core of two. It is what lets a gateway take a burst of a thousand
	// peers reconnecting at once within a second (about 0.3 s of X25519
	// work on this project's cores), while a flood that completes the
	// cookie exchange from many addresses leaves the data path the rest
	// (a flood without cookies costs no Curve25519 work at all).
	HandshakeCPUShare = 0.25
	// HandshakeBurstTime is how much of the rate may be spent at once:
	// half a second's worth, so that the burst above needs no refill.
	HandshakeBurstTime = 500 * time.Millisecond
	// dhSamples is how many X25519 operations the calibration times: a
	// few milliseconds when a tunnel is made.
	dhSamples = 32
	// dhCostMin and dhCostMax bound what a calibration may conclude, so
	// that a clock that misbehaves once cannot make the budget absurd:
	// the fastest cores take about 25 µs, the slowest in use about 1 ms.
	dhCostMin = 5 * time.Microsecond
	dhCostMax = 5 * time.Millisecond
)

// CalibrateHandshakeBudget returns the budget for procs cores on this
// machine: HandshakeCPUShare of them at the measured cost of one X25519
// operation (noise.MeasureDH), and that cost.
func CalibrateHandshakeBudget(procs int) (HandshakeBudget, time.Duration) {
	cost := min(max(noise.MeasureDH(dhSamples), dhCostMin), dhCostMax)
	return BudgetFor(cost, procs), cost
}

// BudgetFor is the budget for procs cores where one X25519 operation
// costs cost.
func BudgetFor(cost time.Duration, procs int) HandshakeBudget {
	rate := HandshakeCPUShare * float64(max(procs, 1)) / cost.Seconds()
	return HandshakeBudget{PerSecond: rate, Burst: rate * HandshakeBurstTime.Seconds()}
}

// Initiations is how many received initiations a second the budget pays
// for.
func (b HandshakeBudget) Initiations() float64 { return b.PerSecond / noise.DHPerInitiation }

// check refuses a budget that could never pay for an initiation.
func (b HandshakeBudget) check() error {
	if !(b.PerSecond > 0) || !(b.Burst >= noise.DHPerInitiation) {
		return fmt.Errorf("%w: handshake budget %v/s, burst %v: both must pay for an initiation (%d X25519 operations)",
			ErrConfig, b.PerSecond, b.Burst, noise.DHPerInitiation)
	}
	return nil
}

// HandshakeBudget returns the budget the tunnel's handshake workers
// work under: the configured one, or the one calibrated when the tunnel
// was made.
func (t *Tunnel) HandshakeBudget() HandshakeBudget { return t.cfg.HandshakeBudget }
