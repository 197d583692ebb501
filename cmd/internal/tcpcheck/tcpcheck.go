// Package tcpcheck moves a stream of pseudo-random bytes over one TCP
// connection and checks that it arrived intact, by length and SHA-256 at
// both ends. The demo and the end-to-end tests use it to prove a tunnel
// carries bulk TCP, without iperf3.
package tcpcheck

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"time"
)

// Errors.
var (
	ErrMismatch = errors.New("tcpcheck: received data differs from sent data")
	ErrTimeout  = errors.New("tcpcheck: transfer did not finish in time")
)

// chunk is the write size: large enough that a write is one system call
// per TCP window's worth, small enough to stay in cache.
const chunk = 64 << 10

// Result is one transfer.
type Result struct {
	Bytes    int64
	Duration time.Duration
	Sum      [sha256.Size]byte // of what was sent, equal to what arrived
}

// Mbps is the transfer's goodput in megabits per second.
func (r Result) Mbps() float64 {
	return float64(r.Bytes) * 8 / r.Duration.Seconds() / 1e6
}

// Send writes n bytes of a ChaCha8 stream seeded with seed to w and
// returns their SHA-256.
func Send(w io.Writer, n int64, seed uint64) ([sha256.Size]byte, error) {
	var s [32]byte
	s[0], s[1], s[2], s[3] = byte(seed), byte(seed>>8), byte(seed>>16), byte(seed>>24)
	src := rand.NewChaCha8(s)
	h := sha256.New()
	buf := make([]byte, chunk)
	for n > 0 {
		b := buf[:min(int64(len(buf)), n)]
		src.Read(b)
		h.Write(b)
		if _, err := w.Write(b); err != nil {
			return [sha256.Size]byte{}, err
		}
		n -= int64(len(b))
	}
	return [sha256.Size]byte(h.Sum(nil)), nil
}

// Receive reads r to EOF and returns the byte count and SHA-256.
func Receive(r io.Reader) (int64, [sha256.Size]byte, error) {
	h := sha256.New()
	n, err := io.CopyBuffer(h, r, make([]byte, chunk))
	return n, [sha256.Size]byte(h.Sum(nil)), err
}

// Transfer accepts one connection on ln, dials it with dial, sends n
// bytes, and checks what arrived. It closes ln. The deadline of ctx
// bounds the whole transfer.
func Transfer(ctx context.Context, ln net.Listener, dial func(ctx context.Context) (net.Conn, error), n int64, seed uint64) (Result, error) {
	defer ln.Close()
	type got struct {
		n   int64
		sum [sha256.Size]byte
		err error
	}
	recv := make(chan got, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			recv <- got{err: err}
			return
		}
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		n, sum, err := Receive(c)
		recv <- got{n, sum, err}
	}()
	// Closing the listener unblocks an Accept that will never succeed
	// (the dial failed or went elsewhere, or time ran out).
	stopLn := context.AfterFunc(ctx, func() { ln.Close() })
	defer stopLn()
	start := time.Now()
	c, err := dial(ctx)
	if err != nil {
		ln.Close()
		<-recv
		return Result{}, fmt.Errorf("tcpcheck: dial: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	sum, err := Send(c, n, seed)
	if err == nil {
		err = c.(interface{ CloseWrite() error }).CloseWrite()
	}
	if err != nil {
		c.Close()
		ln.Close()
		<-recv
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("%w: %v", ErrTimeout, ctx.Err())
		}
		return Result{}, fmt.Errorf("tcpcheck: send: %w", err)
	}
	g := <-recv
	c.Close()
	res := Result{Bytes: g.n, Duration: time.Since(start), Sum: sum}
	switch {
	case ctx.Err() != nil:
		return res, fmt.Errorf("%w: %v (%d of %d bytes arrived)", ErrTimeout, ctx.Err(), g.n, n)
	case g.err != nil:
		return res, fmt.Errorf("tcpcheck: receive: %w", g.err)
	case g.n != n || g.sum != sum:
		return res, fmt.Errorf("%w: %d bytes with SHA-256 %x, sent %d with %x", ErrMismatch, g.n, g.sum[:8], n, sum[:8])
	}
	return res, nil
}
