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
	numStageKinds
)

// faultInjector makes a stage panic or wedge on purpose, for tests of
// supervision and of the health check. A nil *faultInjector (production)
// costs one comparison per packet.
type faultInjector struct {
	// panics[k] is how many more times a stage of kind k panics when it
	// next handles a packet.
	panics [numStageKinds]atomic.Int64
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

// errInjected is the value injected panics carry.
type errInjected struct{ kind stageKind }

func (f *faultInjector) hit(k stageKind) {
	if f == nil {
		return
	}
	if ch := f.stalls[k].Load(); ch != nil {
		<-*ch
	}
	if f.panics[k].Load() > 0 && f.panics[k].Add(-1) >= 0 {
		panic(errInjected{k})
	}
}
