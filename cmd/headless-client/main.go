// Command headless-client is PipeGuard's WireGuard client for Linux servers
// and laptops: it brings up a tunnel from a wg-quick style config file and
// keeps it up, and offers the key tools of `wg`.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/alecthomas/kong"

	"pipeguard/cmd/headless-client/lifecycle"
	"pipeguard/cmd/internal/version"
)

// cli is the whole command line. It stays in this package; commands turn it
// into typed configs for the packages below.
type cli struct {
	LogLevel string           `help:"Log level: debug, info, warn, error." default:"info" enum:"debug,info,warn,error" env:"LOG_LEVEL"`
	Version  kong.VersionFlag `help:"Print the version and exit."`

	Standalone standaloneCmd `cmd:"" help:"Bring up a tunnel from a WireGuard config file and keep it up (SIGHUP reloads, SIGTERM stops)."`
	Tunnel     tunnelCmd     `cmd:"" help:"Create an empty tunnel (no key, no peers, no addresses, link down) with its UAPI socket, to be configured by wg, wg-quick or a controller; as wireguard-go, and as pipeguard-go IFACE."`
	Cleanup    cleanupCmd    `cmd:"" help:"Restore normal routing after a full tunnel's client died (crashed, killed, or stopped by itself) with no restart to follow: remove the policy rules and unreachable routes it left, which drop the tunnel's traffic meanwhile, and undo its DNS settings."`
	Demo       demoCmd       `cmd:"" help:"Show a working tunnel: two PipeGuard peers in private network namespaces, with traffic between them (needs root)."`
	Genkey     genkeyCmd     `cmd:"" help:"Print a new base64 private key (like wg genkey)."`
	Pubkey     pubkeyCmd     `cmd:"" help:"Read a base64 private key on stdin, print its public key (like wg pubkey)."`
}

func main() {
	// First of all, before anything that takes time: a SIGHUP or SIGTERM
	// that finds the client starting must not kill it (see Catch).
	signals := lifecycle.Catch()
	args := os.Args[1:]
	if filepath.Base(os.Args[0]) == wireguardGoName {
		// Multi-call: run as pipeguard-go, the command line is
		// wireguard-go's.
		a, printVersion, ok := wireguardGoArgs(args)
		switch {
		case printVersion:
			fmt.Println(version.Line(wireguardGoName))
			return
		case !ok:
			fmt.Fprintln(os.Stderr, wireguardGoUsage)
			os.Exit(1)
		}
		args = a
	}
	var c cli
	parser := kong.Must(&c,
		kong.Name("headless-client"),
		kong.Description("PipeGuard: a userspace WireGuard tunnel."),
		kong.UsageOnError(),
		kong.Vars{"version": version.Line("pipeguard-headless-client"), "state_dir_help": stateDirHelp,
			"help_queue_capacity": helpQueueCapacity, "help_queue_management": helpQueueManagement,
			"help_queue_target": helpQueueTarget, "help_queue_interval": helpQueueInterval,
			"help_cpu_scheduling": helpCPUScheduling},
	)
	ctx, err := parser.Parse(args)
	parser.FatalIfErrorf(err)
	if !serving(ctx.Command()) {
		signals.Release()
	}
	log := newLogger(os.Stderr, c.LogLevel)
	env := &runEnv{log: log, logLevel: c.LogLevel, signals: signals, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	if err := ctx.Run(env); err != nil {
		// One line that names the problem; most errors already say which
		// part of the program they come from.
		msg := err.Error()
		if !strings.HasPrefix(msg, "headless-client:") {
			msg = "headless-client: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(1)
	}
}

// serving reports whether a command (as kong names it) runs until it is
// stopped, and so keeps the signals caught; the others get their
// default actions back.
func serving(command string) bool {
	name, _, _ := strings.Cut(command, " ")
	return name == "standalone" || name == "tunnel" || name == "demo"
}
