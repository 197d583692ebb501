// Command minimalhup is the earliest a Go program can catch SIGHUP: one
// package, whose init catches it, importing only os/signal. The SIGHUP
// window test measures it beside the client, on the same machine at the
// same time, as the floor the client's window is compared with. Like
// the client given a config it cannot open, it exits 1.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func init() { signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP) }

func main() { os.Exit(1) }
