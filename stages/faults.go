package stages

import "sync/atomic"

// stageKind names a kind of stage for fault injection.
type stageKind int

const (
	stageUDPRecv stageKind = iota
	stageDecrypt
	stageAccept // the ordered checks of one inbound packet, in tunwrite
	stageTUNWrite
	stageTUNRead
	stageRoute // routing one outbound packet, in tunread
	stageEncrypt
	stageUDPSend
	numStageKinds
)

// faultInjector makes a stage panic on purpose, for tests of supervision.
// A nil *faultInjector (production) costs one comparison per packet.
type faultInjector struct {
	// panics[k] is how many more times a stage of kind k panics when it
	// next handles a packet.
	panics [numStageKinds]atomic.Int64
}

// errInjected is the value injected panics carry.
type errInjected struct{ kind stageKind }

func (f *faultInjector) hit(k stageKind) {
	if f == nil {
		return
	}
	if f.panics[k].Load() > 0 && f.panics[k].Add(-1) >= 0 {
		panic(errInjected{k})
	}
}
