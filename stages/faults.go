package stages

import (
	"sync"
	"sync/atomic"
)

// stageKind names a kind of stage for fault injection.
type stageKind int

const (
	stageUDPRecv stageKind = iota
	stageDecrypt
	stageRouteIn
	stageTUNWrite
	stageTUNRead
	stageRouteOut
	stageEncrypt
	stageUDPSend
	stageDispatchIn
	numStageKinds
)

// faultInjector makes a stage panic or wedge on purpose, for tests of
// supervision and of the health check. A nil *faultInjector (production)
// costs one comparison per packet.
type faultInjector struct {
	// panics[k] is how many more times a stage of kind k panics when it
	// next handles a packet.
	panics [numStageKinds]atomic.Int64
	// skips[k] is how many more packets a stage of kind k handles before
	// an armed panic fires: a test that wants the panic in the middle of
	// a run of packets rather than at its start sets it first.
	skips [numStageKinds]atomic.Int64

	// race, if set, runs at each racePoint, on the goroutine that reaches
	// it: a test does there what another goroutine might do at that
	// moment, to force an interleaving without sleeps. Atomic, so a test
	// may set it while the tunnel runs.
	race atomic.Pointer[func(racePoint)]

	// stalls[k], when set, wedges a stage of kind k when it next handles
	// a packet: it waits until the channel is closed.
	stalls [numStageKinds]atomic.Pointer[chan struct{}]
}

// stall wedges stages of kind k until the returned function is called.
func (f *faultInjector) stall(k stageKind) (release func()) {
	ch := make(chan struct{})
	f.stalls[k].Store(&ch)
	var once sync.Once
	return func() {
		once.Do(func() {
			f.stalls[k].Store(nil)
			close(ch)
		})
	}
}

// racePoint names a moment between two steps of the control plane where
// a concurrent peer change may fall.
type racePoint int

const (
	// raceResponseDerived: a handshake response was consumed; its keypair
	// is in the index table, its peer not yet looked up.
	raceResponseDerived racePoint = iota
	// raceBeforeInstall: a handshake worker found the peer of a valid
	// initiation or response and is about to install its keys.
	raceBeforeInstall
	// raceBeforeInitiation: the timer actor is about to create an
	// initiation for a peer.
	raceBeforeInitiation
	// raceTimersAsleep: the timer actor has done what was due and is
	// about to wait for its next deadline or a wake-up.
	raceTimersAsleep
)

// errInjected is the value injected panics carry.
type errInjected struct{ kind stageKind }

func (f *faultInjector) hit(k stageKind) {
	if f == nil {
		return
	}
	if ch := f.stalls[k].Load(); ch != nil {
		<-*ch
	}
	if f.panics[k].Load() > 0 {
		if f.skips[k].Load() > 0 && f.skips[k].Add(-1) >= 0 {
			return
		}
		if f.panics[k].Add(-1) >= 0 {
			panic(errInjected{k})
		}
	}
}

// interleave runs the test's hook at point p, if there is one.
func (f *faultInjector) interleave(p racePoint) {
	if f == nil {
		return
	}
	if hook := f.race.Load(); hook != nil {
		(*hook)(p)
	}
}
