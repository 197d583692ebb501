//go:build !linux

package leakcap

import "errors"

// Capture is Linux only: packet sockets are.
type Capture struct{}

// Result is a capture's count.
type Result struct {
	Sent, Leaked int
	Examples     []Packet
	Dropped      uint32
}

// ErrUnsupported: captures need Linux.
var ErrUnsupported = errors.New("leakcap: captures need Linux (AF_PACKET)")

// ErrDropped means the capture lost frames.
var ErrDropped = errors.New("leakcap: the capture dropped frames")

// Open is unsupported outside Linux.
func Open(string, Filter) (*Capture, error) { return nil, ErrUnsupported }

// Count is empty outside Linux.
func (c *Capture) Count() Result { return Result{} }

// Close is unsupported outside Linux.
func (c *Capture) Close() (Result, error) { return Result{}, ErrUnsupported }
