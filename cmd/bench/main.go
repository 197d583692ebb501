// Command bench measures PipeGuard's dataplane: the pipeline engine
// against the sequential baseline and the AEAD's limit, with whole tunnels
// in memory (the default mode), against wireguard-go over real TUN devices
// between network namespaces (--mode netns, root), and one tunnel end
// under a load the harness generates itself (--mode loadgen, root). It is
// a thin shell over package bench: flags in, bench.Run, exit status.
// SIGINT and SIGTERM cancel the run, which then removes what it made
// (namespaces, processes, files) before it exits.
//
//	go run ./cmd/bench --quick
//	sudo go run ./cmd/bench --mode netns --quick
//	sudo go run ./cmd/bench --mode loadgen --quick
//	sudo go run ./cmd/bench --mode soak --duration 60s
//	go run ./cmd/bench --mode flood --quick
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"pipeguard/bench"
	"pipeguard/stages"
)

// cli is the command line. Zero values take package bench's defaults, which
// --quick makes smaller.
type cli struct {
	Mode     string        `help:"What to measure: mem (in-memory tunnels, no root), netns (PipeGuard and wireguard-go on real TUN devices in network namespaces, iperf3 and ping; root), loadgen (one tunnel under load, the harness its peer; root), all (netns, loadgen, then mem), soak (two PipeGuard ends in network namespaces for --duration with TCP, ping and config changes, RSS and goroutines watched; root), flood (in memory: bulk data under a handshake flood at 10x this machine's X25519 rate), peers (PipeGuard and wireguard-go configured with --peers peers each in a network namespace: wg setconf and dump time, RSS, goroutines, idle CPU, a real peer's throughput and RTT, a burst of --burst handshakes; root)." default:"mem" enum:"mem,netns,loadgen,all,soak,flood,peers"`
	Quick    bool          `help:"A small sweep (two sizes, one peer, GOMAXPROCS 1 and all cores) that still covers both engines, every direction and the ratios; in netns mode, 2-second iperf3 runs and a 1-second idle ping."`
	Duration time.Duration `help:"Measured time per measurement: in memory, default 1s (500ms with --quick); in netns mode, each iperf3 run, whole seconds, default 10s (2s with --quick); in loadgen mode, each tunnel and direction, default 10s (2s with --quick); in soak mode, the traffic watched, default 10m (20s with --quick); in flood mode, each phase, default 3s (2s with --quick); in peers mode, each idle CPU window, default 10s (2s with --quick)."`
	Repeat   int           `help:"Run the sweep N times and report medians." default:"1" placeholder:"N"`

	JSON       string `name:"json" help:"Write every figure, and the machine, to FILE as JSON." placeholder:"FILE" type:"path"`
	SVG        string `name:"svg" help:"Write a chart of throughput against cores to FILE (SVG); peers mode: RSS and setconf time against peers." placeholder:"FILE" type:"path"`
	CPUProfile string `name:"cpuprofile" help:"Write a CPU profile of every measured interval to FILE." placeholder:"FILE" type:"path"`
	MemProfile string `name:"memprofile" help:"Write the allocation profile at the end to FILE." placeholder:"FILE" type:"path"`
	NoStageCPU bool   `name:"no-stage-cpu" help:"Skip the profiled pipeline measurement behind the CPU-per-stage table."`

	Directions []string `help:"Directions to sweep: inbound, outbound, both." sep:"," placeholder:"DIR"`
	Engines    []string `help:"Engines to sweep: sequential, pipeline." sep:"," placeholder:"ENGINE"`
	Sizes      []int    `help:"Inner packet sizes in bytes (default 64,512,1280)." sep:"," placeholder:"BYTES"`
	Peers      []int    `help:"Numbers of peers (default 1,4; peers mode 1,1000,10000,100000, with --quick 1,100,1000)." sep:"," placeholder:"N"`
	Procs      []int    `help:"GOMAXPROCS values (default 1 to the number of CPUs)." sep:"," placeholder:"N"`
	Workers    []int    `help:"Pipeline crypto workers per direction; 0 means GOMAXPROCS (default 1, GOMAXPROCS and twice that)." sep:"," placeholder:"N"`
	Streams    []int    `help:"Netns mode: iperf3 parallel TCP streams, each run both ways (default 1,4)." sep:"," placeholder:"N"`

	QueueManagement string `name:"queue-management" help:"Netns and loadgen modes: measure PipeGuard with queue management on, off (--queue-management off), or both, each engine both ways, in one run." default:"both" enum:"on,off,both"`

	CongestionControl string `name:"congestion-control" help:"Netns mode: the TCP congestion control of iperf3's streams, set in both namespaces (default cubic, Linux's default; bbr, reno or what else the kernel offers)." placeholder:"ALGO"`

	ChangeEvery time.Duration `name:"change-every" help:"Soak mode: a SIGHUP reload and a wg set peer change at each end this often (default 1m; at least once in a shorter soak)."`
	Burst       int           `help:"Peers mode: peers of the handshake burst, which start a handshake within one second (default 1000; 100 with --quick)." placeholder:"K"`
}

func main() {
	cfg, err := parse(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	cfg.CommandLine = os.Args
	cfg.Progress, cfg.ProgressTTY = os.Stderr, bench.IsTerminal(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := bench.Run(ctx, cfg, os.Stdout); err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "bench:") {
			msg = "bench: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		if errors.Is(err, context.Canceled) {
			os.Exit(130)
		}
		os.Exit(1)
	}
}

// parse reads the command line into a bench.Config.
func parse(args []string) (bench.Config, error) {
	var c cli
	p, err := kong.New(&c, kong.Name("bench"),
		kong.Description("Measure PipeGuard: pipeline against sequential, against the ChaCha20-Poly1305 limit (in memory) and against wireguard-go (netns mode)."),
		kong.UsageOnError())
	if err != nil {
		return bench.Config{}, err
	}
	if _, err := p.Parse(args); err != nil {
		return bench.Config{}, err
	}
	cfg := bench.Config{
		Mode: bench.Mode(c.Mode), Quick: c.Quick, Duration: c.Duration, Repeat: c.Repeat,
		Sizes: c.Sizes, Peers: c.Peers, Procs: c.Procs, Workers: c.Workers, Streams: c.Streams,
		NoStageCPU: c.NoStageCPU, CPUProfile: c.CPUProfile, MemProfile: c.MemProfile,
		JSONPath: c.JSON, SVGPath: c.SVG, SoakEvery: c.ChangeEvery,
		QueueManagement: c.QueueManagement, CongestionControl: c.CongestionControl, Burst: c.Burst,
	}
	for _, d := range c.Directions {
		cfg.Directions = append(cfg.Directions, bench.Direction(d))
	}
	for _, e := range c.Engines {
		cfg.Engines = append(cfg.Engines, stages.Engine(e))
	}
	return cfg, nil
}
