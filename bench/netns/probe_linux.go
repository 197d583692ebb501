package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/nsenv"
)

// echoServer answers probe requests in a namespace: it sends every
// datagram it receives back to its sender. close stops it and waits.
type echoServer struct {
	conn *net.UDPConn
	done chan struct{} // closed when the serving goroutine has returned
}

// startEcho starts an echo server on addr in namespace ns.
func startEcho(ns string, addr netip.AddrPort) (*echoServer, error) {
	var conn *net.UDPConn
	err := nsenv.InNetns(ns, func() (err error) {
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: probe echo server: %v", core.ErrNetns, err)
	}
	e := &echoServer{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return // closed
			}
			_, _ = conn.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	return e, nil
}

func (e *echoServer) close() {
	e.conn.Close()
	<-e.done
}

// runProbe sends a probe series from namespace ns to the echo server at
// to: after delay, a request every probeInterval for length, then waits
// probeLate for the last answers. Ending ctx ends the series early and
// returns what it measured.
func runProbe(ctx context.Context, ns string, to netip.AddrPort, delay, length time.Duration) (probeResult, error) {
	var conn *net.UDPConn
	err := nsenv.InNetns(ns, func() (err error) {
		conn, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
		return err
	})
	if err != nil {
		return probeResult{}, fmt.Errorf("%w: probe: %v", core.ErrNetns, err)
	}
	defer conn.Close()
	epoch := time.Now()
	clock := func() int64 { return int64(time.Since(epoch)) }
	var mu sync.Mutex // guards tally
	var tally probeTally
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, 2048)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // e.g. ECONNREFUSED from an ICMP error: the next one may arrive
			}
			if seq, sent, ok := probeAnswer(buf[:n]); ok {
				now := clock()
				mu.Lock()
				tally.answer(seq, sent, now)
				mu.Unlock()
			}
		}
	}()
	defer func() {
		conn.Close()
		<-readerDone
	}()

	select {
	case <-ctx.Done():
		return probeResult{}, nil
	case <-time.After(delay):
	}
	req := make([]byte, probePayload)
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	end := time.After(length)
series:
	for {
		mu.Lock()
		seq := tally.request()
		mu.Unlock()
		probeRequest(req, seq, clock())
		_, _ = conn.Write(req) // a send that fails is a request unanswered
		select {
		case <-ctx.Done():
			break series
		case <-end:
			break series
		case <-tick.C:
		}
	}
	select {
	case <-ctx.Done():
	case <-time.After(probeLate):
	}
	conn.Close()
	<-readerDone
	mu.Lock()
	defer mu.Unlock()
	return tally.r, nil
}
