package stages

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"pipeguard/stages/fq"
	"pipeguard/stages/spsc"
	"pipeguard/supervisor"
	"pipeguard/tunio"
)

// service is what a supervisor runs.
type service = supervisor.Service

// stageEntry is one stage (or pool of identical workers) as Stats and the
// supervisor see it.
type stageEntry struct {
	name      string
	instances []*stageCounters
	services  []service
	inputs    []input // the queues it reads
	restarts  atomic.Uint64
}

// tunnelCounters lists the engine's stages in data-flow order.
type tunnelCounters struct {
	stages []*stageEntry
	// spread is the pipeline's spread decision (spread.go): supervised
	// like a stage, but it carries no packets and has no counters.
	spread service
}

func (tc *tunnelCounters) add(name string, n int) *stageEntry {
	e := &stageEntry{name: name}
	for range n {
		e.instances = append(e.instances, new(stageCounters))
	}
	tc.stages = append(tc.stages, e)
	return e
}

// packets is the packets the stage has handed on so far, summed over
// its instances (the inline path's too), as far as they are published.
func (e *stageEntry) packets() uint64 {
	var n uint64
	for _, c := range e.instances {
		n += c.packets.Load()
	}
	return n
}

// addInline adds a counter instance for the steps of this stage that an
// edge stage does inline (inline.go); it is not one of the stage's
// instances.
func (e *stageEntry) addInline() *stageCounters {
	c := new(stageCounters)
	e.instances = append(e.instances, c)
	return c
}

// input is one of a stage's input queues as readers outside the stage
// see it: Stats reads its depth, the health check its depth and how far
// the stage has consumed it.
type input struct {
	depth func() (depth, capacity int)
	// consumed counts the values the stage has finished with, as far as
	// it has published them; it only grows.
	consumed func() uint64
}

func queueOf[T any](q *spsc.Queue[T]) input {
	return input{depth: func() (int, int) { return q.Len(), q.Cap() }, consumed: q.Released}
}

// managedOf is a managed queue as an input of the stage that takes from
// it.
func managedOf[T any](q *fq.Queue[T]) input {
	return input{depth: func() (int, int) { return q.Len(), q.Cap() }, consumed: q.Consumed}
}

// chanOf is a Go channel read by the stage instances whose counters are
// cs: every value one takes ends counted (passed, dropped or a
// keepalive) and published at once, so the counters tell how far they
// have consumed.
func chanOf[T any](ch chan T, cs ...*stageCounters) input {
	consumed := func() uint64 {
		var n uint64
		for _, c := range cs {
			n += c.handled()
		}
		return n
	}
	return input{depth: func() (int, int) { return len(ch), cap(ch) }, consumed: consumed}
}

// labelled runs svc with a pprof label naming its stage, so a CPU profile
// of the tunnel splits by stage.
type labelled struct {
	stage string
	svc   service
}

func (l labelled) Serve(ctx context.Context) error {
	var err error
	pprof.Do(ctx, pprof.Labels("stage", l.stage), func(ctx context.Context) {
		err = l.svc.Serve(ctx)
	})
	return err
}

// wireEngine makes the queues and stages of the configured engine. Every
// queue is made here, with its capacity from the config, and outlives any
// restart of the stages that use it.
func (t *Tunnel) wireEngine() *tunnelCounters {
	tc := &tunnelCounters{}
	logFor := func(name string) *slog.Logger { return t.log.With("stage", name) }
	q := t.cfg.QueueCapacity
	n := t.cfg.Workers

	t.inline.managed = !t.cfg.NoQueueManagement
	_, t.inline.drainIn = t.udp.(tunio.TryReader)
	_, t.inline.drainOut = t.tun.(tunio.ReadPoller)
	if t.cfg.Engine == EngineSequential {
		in := tc.add("inbound", 1)
		in.services = []service{newSeqInbound(t, in.instances[0], logFor("inbound"))}
		in.inputs = []input{managedOf(t.aqm.in)}
		out := tc.add("outbound", 1)
		out.services = []service{newSeqOutbound(t, out.instances[0], logFor("outbound"))}
		out.inputs = []input{managedOf(t.aqm.out)}
	} else {
		decIn, decOut := make([]*spsc.Queue[inItem], n), make([]*spsc.Queue[inItem], n)
		encIn, encOut := make([]*spsc.Queue[outItem], n), make([]*spsc.Queue[outItem], n)
		for i := range n {
			decIn[i], decOut[i] = spsc.New[inItem](q), spsc.New[inItem](q)
			encIn[i], encOut[i] = spsc.New[outItem](q), spsc.New[outItem](q)
		}
		toTUN := spsc.New[tunPacket](q)

		t.inline.max.Store(defaultInlineMax)

		recv := tc.add("udprecv", 1)
		disp := tc.add("dispatch-in", 1)
		disp.inputs = []input{managedOf(t.aqm.in)}
		dec := tc.add("decrypt", n)
		for i := range n {
			dec.services = append(dec.services, &decryptWorker{t: t, in: decIn[i], out: decOut[i], c: dec.instances[i], log: logFor("decrypt")})
			dec.inputs = append(dec.inputs, queueOf(decIn[i]))
		}
		rin := tc.add("route-in", 1)
		rin.services = []service{newRouteIn(t, decOut, toTUN, rin.instances[0], logFor("route-in"))}
		for i := range n {
			rin.inputs = append(rin.inputs, queueOf(decOut[i]))
		}
		write := tc.add("tunwrite", 1)
		write.services = []service{newTUNWrite(t, t.tun, toTUN, write.instances[0], logFor("tunwrite"))}
		write.inputs = []input{queueOf(toTUN)}
		recv.services = []service{newUDPRecv(t, t.udp, t.aqm.in, t.handshakes, recv.instances[0], dec.addInline(), rin.addInline(), write.addInline(), logFor("udprecv"))}
		disp.services = []service{newDispatchIn(t, t.aqm.in, decIn, disp.instances[0], dec.addInline(), rin.addInline(), write.addInline(), logFor("dispatch-in"))}

		read := tc.add("tunread", 1)
		rout := tc.add("route-out", 1)
		rout.inputs = []input{managedOf(t.aqm.out)}
		enc := tc.add("encrypt", n)
		for i := range n {
			enc.services = append(enc.services, &encryptWorker{t: t, in: encIn[i], out: encOut[i], c: enc.instances[i], log: logFor("encrypt")})
			enc.inputs = append(enc.inputs, queueOf(encIn[i]))
		}
		send := tc.add("udpsend", 1)
		send.services = []service{newUDPSend(t, encOut, send.instances[0], logFor("udpsend"))}
		for i := range n {
			send.inputs = append(send.inputs, queueOf(encOut[i]))
		}
		rout.services = []service{newRouteOut(t, t.aqm.out, encIn, rout.instances[0], enc.addInline(), send.addInline(), logFor("route-out"))}
		read.services = []service{newTUNRead(t, t.tun, t.aqm.out, read.instances[0], rout.addInline(), enc.addInline(), send.addInline(), logFor("tunread"))}
		// Delivered packets, not packets read: a trial of the pools
		// would otherwise count the queues filling as throughput.
		tc.spread = &spreader{t: t, open: openPressure, log: logFor("spread"),
			packets: func() uint64 { return write.packets() + send.packets() }}
	}

	hw := t.cfg.HandshakeWorkers
	t.hsPool = newHandshakePool(t.cfg.HandshakeBudget, hw)
	e := tc.add("handshake", hw)
	for i := range hw {
		e.services = append(e.services, &handshakeWorker{t: t, pool: t.hsPool, helper: i > 0, in: t.handshakes,
			c: e.instances[i], log: logFor("handshake")})
	}
	e.inputs = []input{chanOf(t.handshakes, e.instances...)}
	e = tc.add("timers", 1)
	e.services = []service{newTimerActor(t, e.instances[0], logFor("timers"))}
	return tc
}

// Stats returns a snapshot of every stage's counters, in data-flow order.
// It takes no lock that the data path takes.
func (t *Tunnel) Stats() []StageStats {
	out := make([]StageStats, 0, len(t.counters.stages))
	for _, e := range t.counters.stages {
		s := StageStats{Name: e.name, Instances: len(e.services), Restarts: e.restarts.Load(), Drops: map[DropReason]uint64{}}
		for _, c := range e.instances {
			s.Packets += c.packets.Load()
			s.Bytes += c.bytes.Load()
			s.Keepalives += c.keepalives.Load()
			for r := DropMalformed; r < numDropReasons; r++ {
				if v := c.drops[r].Load(); v > 0 {
					s.Drops[r] += v
				}
			}
		}
		for _, in := range e.inputs {
			d, c := in.depth()
			s.QueueDepth += d
			s.QueueCap += c
		}
		out = append(out, s)
	}
	return out
}

// Supervision settings of the tunnel's stages.
const (
	// stageFailureThreshold and stageFailureDecay: a stage may fail about
	// five times in quick succession (a burst of poisonous input, say)
	// before the tunnel gives up; failures half-decay in 30 s, so a rare
	// failure never adds up to an escalation over months.
	stageFailureThreshold = 5
	stageFailureDecay     = 30 * time.Second
	// stageStopTimeout leaves room within the 2 s an admin expects a
	// SIGTERM to take.
	stageStopTimeout = 1500 * time.Millisecond
)

// buildSupervisor puts every stage instance under one supervisor. It runs
// on the real clock even when the tunnel's protocol clock is fake: restart
// backoff is about the machine, not the protocol. On escalation it closes
// the edges at once, so that stages blocked in system calls return within
// the stop timeout.
func (t *Tunnel) buildSupervisor(closeEdges func()) *supervisor.Supervisor {
	byChild := map[string]*stageEntry{}
	sup := supervisor.New("tunnel", supervisor.Config{
		Log:              t.log,
		FailureThreshold: stageFailureThreshold,
		FailureDecay:     stageFailureDecay,
		StopTimeout:      stageStopTimeout,
		EventHook: func(e supervisor.Event) {
			switch e.Kind {
			case supervisor.EventRestart:
				if se := byChild[e.Child]; se != nil {
					se.restarts.Add(1)
				}
			case supervisor.EventEscalate, supervisor.EventTerminate:
				closeEdges()
			}
		},
	})
	for _, e := range t.counters.stages {
		for i, svc := range e.services {
			name := e.name
			if len(e.services) > 1 {
				name = fmt.Sprintf("%s-%d", e.name, i)
			}
			byChild[name] = e
			sup.Add(name, labelled{stage: e.name, svc: svc})
		}
	}
	if t.counters.spread != nil {
		sup.Add("spread", labelled{stage: "spread", svc: t.counters.spread})
	}
	return sup
}
