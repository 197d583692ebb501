package main

import (
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"pipeguard/cmd/headless-client/cpusched"
	"pipeguard/stages"
	"pipeguard/tunio"
)

// The dataplane's queue settings, as both commands take them: the
// capacity of the queues between stages, and queue management (on by
// default: in each direction one queue where packets may wait, flow-fair
// and kept near a target delay; docs/ARCHITECTURE.md, "The queues").

// minQueueCapacity keeps room for one whole TUN batch in a queue: with
// segmentation offload one read splits a 64 KB packet into as many as 53
// packets of the 1280-byte MTU, and fewer slots would lose it.
const minQueueCapacity = 64

// errQueueCapacity refuses a queue too small for an offloaded TUN read.
var errQueueCapacity = fmt.Errorf("headless-client: --queue-capacity must be 0 or at least %d", minQueueCapacity)

// Help texts shared by both commands.
const (
	helpQueueCapacity   = "Capacity of each queue between pipeline stages, in packets (at least 64: a segmentation-offloaded TUN read needs up to a batch of slots); 0: 256 with queue management, 1000 without."
	helpQueueManagement = "Queue management: on keeps a packet's wait in the tunnel's own queues near --queue-target under load, flows served fairly, by dropping or ECN-marking the packets of flows that fill them; off lets the queues fill, as before (more throughput for a bulk transfer, more delay for everything behind it)."
	helpQueueTarget     = "Queue management: the delay a queue may keep standing; 0: the default (500us)."
	helpQueueInterval   = "Queue management: how long the delay must stand above the target before the first drop, about the round trip of the flows through the tunnel; 0: the default (10ms)."
	helpCPUScheduling   = "realtime: the tunnel's threads take SCHED_RR at the lowest real-time priority, so that a packet does not wait for the CPU behind the programs whose traffic it carries (needs root or CAP_SYS_NICE, or a unit with CPUSchedulingPolicy=rr; without, the tunnel runs as normal and says so); normal: the fair class, as any program."
)

// dataplaneFlags are the flags both commands take for the dataplane and
// the endpoints that watch it.
type dataplaneFlags struct {
	Engine          string        `help:"Dataplane engine: pipeline or sequential." default:"pipeline" enum:"pipeline,sequential"`
	Workers         int           `help:"Encrypt and decrypt workers each (pipeline engine); 0: one per CPU." default:"0"`
	QueueCapacity   int           `help:"${help_queue_capacity}" default:"0" env:"PIPEGUARD_QUEUE_CAPACITY"`
	QueueManagement string        `help:"${help_queue_management}" default:"on" enum:"on,off" env:"PIPEGUARD_QUEUE_MANAGEMENT"`
	QueueTarget     time.Duration `help:"${help_queue_target}" default:"0s" env:"PIPEGUARD_QUEUE_TARGET"`
	QueueInterval   time.Duration `help:"${help_queue_interval}" default:"0s" env:"PIPEGUARD_QUEUE_INTERVAL"`
	CPUScheduling   string        `help:"${help_cpu_scheduling}" default:"realtime" enum:"realtime,normal" env:"PIPEGUARD_CPU_SCHEDULING"`
	MetricsAddr     string        `help:"Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9586); empty: off." env:"PIPEGUARD_METRICS_ADDR"`
	PprofAddr       string        `help:"Serve Go's pprof endpoints at http://ADDR/debug/pprof/ (e.g. 127.0.0.1:6060); empty: off. Keep it on loopback." env:"PIPEGUARD_PPROF_ADDR"`
}

// schedule applies --cpu-scheduling to the whole process (package
// cpusched says why). A process that may not take real-time scheduling
// runs in the fair class and says so, with the fix: refusing to start
// would cost more than the latency.
func (d *dataplaneFlags) schedule(log *slog.Logger) {
	if d.CPUScheduling != "realtime" {
		log.Info("CPU scheduling: the fair class, as asked", "cpu_scheduling", d.CPUScheduling)
		return
	}
	already, err := cpusched.Realtime()
	switch {
	case err != nil:
		log.Warn("CPU scheduling: the fair class; under load packets wait for the CPU behind other programs",
			"err", err, "fix", "run as root or with CAP_SYS_NICE, or give the unit CPUSchedulingPolicy=rr and CPUSchedulingPriority=1 (the packaged units do); --cpu-scheduling normal says this is meant")
	case already:
		log.Info("CPU scheduling: real-time, as started (SCHED_RR or SCHED_FIFO)")
	default:
		log.Info("CPU scheduling: real-time", "policy", "SCHED_RR", "priority", cpusched.Priority)
	}
}

// queues is the command's queue settings.
func (d *dataplaneFlags) queues() queueFlags {
	return queueFlags{d.QueueCapacity, d.QueueManagement, d.QueueTarget, d.QueueInterval}
}

// queueFlags are the queue settings both commands take.
type queueFlags struct {
	capacity         int
	management       string // "on" or "off"
	target, interval time.Duration
}

// check refuses settings the tunnel would refuse, before anything is made.
func (q queueFlags) check() error {
	if q.capacity != 0 && q.capacity < minQueueCapacity {
		return errQueueCapacity
	}
	return nil
}

// apply puts the settings into sc.
func (q queueFlags) apply(sc *stages.Config) {
	sc.QueueCapacity = q.capacity
	sc.NoQueueManagement = q.management == "off"
	sc.QueueTarget, sc.QueueInterval = q.target, q.interval
}

// offReceiveBuffer is the socket receive buffer without queue
// management: the size it had before, which the readers then need, since
// they work on their batches themselves and fall behind the socket (with
// 4 MiB, TCP retransmitted some 23,000 segments in 8 s through four
// streams in the netns lab).
const offReceiveBuffer = 8 << 20

// udpOptions is the tunnel's UDP socket options for the settings.
func (q queueFlags) udpOptions() tunio.UDPOptions {
	if q.management == "off" {
		return tunio.UDPOptions{ReceiveBuffer: offReceiveBuffer, SendBuffer: offReceiveBuffer}
	}
	return tunio.UDPOptions{}
}

// args is the settings as command-line flags, for a child process.
func (q queueFlags) args() []string {
	return []string{"--queue-capacity", strconv.Itoa(q.capacity), "--queue-management", q.management,
		"--queue-target", q.target.String(), "--queue-interval", q.interval.String()}
}
