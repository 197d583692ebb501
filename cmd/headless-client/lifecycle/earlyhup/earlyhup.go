// Package earlyhup catches SIGHUP while the program initialises, before
// main can: Go's default action for SIGHUP ends the process, and a
// reload sent right after start (`systemctl reload`, or a script's
// `kill -HUP`) killed the client while its packages were still being
// initialised.
//
// Go initialises packages in dependency order, and among the packages
// ready to go next, in the order of their import paths; this package
// imports only os/signal and syscall, so it is initialised as soon as
// those are and no ready package sorts before it. Its init is the one
// mutable package state of the client, on purpose: catching a signal is
// process-wide, and it must happen before any code of ours runs.
// lifecycle.Catch takes the channel over.
package earlyhup

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// hup receives the SIGHUPs that arrive from initialisation on; its one
// slot keeps the first until Take hands the channel over.
var hup = make(chan os.Signal, 1)

func init() { signal.Notify(hup, syscall.SIGHUP) }

// take hands hup over once.
var take sync.Once

// Take returns the channel that has received SIGHUP since initialisation,
// a pending one in it, the first time it is called, and nil after that:
// the caller owns it then, and stops it with signal.Stop when it no
// longer wants SIGHUP caught.
func Take() chan os.Signal {
	var ch chan os.Signal
	take.Do(func() { ch = hup })
	return ch
}
