// Command headless-client is PipeGuard's WireGuard client for Linux servers
// and laptops: it brings up a tunnel from a wg-quick style config file and
// keeps it up, and offers the key tools of `wg`.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/alecthomas/kong"

	"pipeguard/cmd/internal/version"
)

// cli is the whole command line. It stays in this package; commands turn it
// into typed configs for the packages below.
type cli struct {
	LogLevel string           `help:"Log level: debug, info, warn, error." default:"info" enum:"debug,info,warn,error" env:"LOG_LEVEL"`
	Version  kong.VersionFlag `help:"Print the version and exit."`

	Standalone standaloneCmd `cmd:"" help:"Bring up a tunnel from a WireGuard config file and keep it up (SIGHUP reloads, SIGTERM stops)."`
	Demo       demoCmd       `cmd:"" help:"Show a working tunnel: two PipeGuard peers in private network namespaces, with traffic between them (needs root)."`
	Genkey     genkeyCmd     `cmd:"" help:"Print a new base64 private key (like wg genkey)."`
	Pubkey     pubkeyCmd     `cmd:"" help:"Read a base64 private key on stdin, print its public key (like wg pubkey)."`
}

func main() {
	var c cli
	ctx := kong.Parse(&c,
		kong.Name("headless-client"),
		kong.Description("PipeGuard: a userspace WireGuard tunnel."),
		kong.UsageOnError(),
		kong.Vars{"version": version.Line("pipeguard-headless-client")},
	)
	log := newLogger(os.Stderr, c.LogLevel)
	env := &runEnv{log: log, logLevel: c.LogLevel, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
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
