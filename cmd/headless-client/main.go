// Command headless-client is PipeGuard's WireGuard client for Linux servers
// and laptops: it brings up a tunnel from a wg-quick style config file and
// keeps it up, and offers the key tools of `wg`.
package main

import (
	"fmt"
	"os"

	"github.com/alecthomas/kong"
)

// cli is the whole command line. It stays in this package; commands turn it
// into typed configs for the packages below.
type cli struct {
	LogLevel string `help:"Log level: debug, info, warn, error." default:"info" enum:"debug,info,warn,error" env:"LOG_LEVEL"`

	Genkey genkeyCmd `cmd:"" help:"Print a new base64 private key (like wg genkey)."`
	Pubkey pubkeyCmd `cmd:"" help:"Read a base64 private key on stdin, print its public key (like wg pubkey)."`
}

func main() {
	var c cli
	ctx := kong.Parse(&c,
		kong.Name("headless-client"),
		kong.Description("PipeGuard: a userspace WireGuard tunnel."),
		kong.UsageOnError(),
	)
	log := newLogger(os.Stderr, c.LogLevel)
	if err := ctx.Run(&runEnv{log: log, stdin: os.Stdin, stdout: os.Stdout}); err != nil {
		fmt.Fprintf(os.Stderr, "headless-client: %v\n", err)
		os.Exit(1)
	}
}
