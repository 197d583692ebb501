package tcpcheck

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

func TestSendReceiveAgree(t *testing.T) {
	var buf bytes.Buffer
	sum, err := Send(&buf, 3*chunk+17, 42)
	if err != nil {
		t.Fatal(err)
	}
	n, got, err := Receive(&buf)
	if err != nil || n != 3*chunk+17 || got != sum {
		t.Fatalf("n %d err %v, sums equal %v", n, err, got == sum)
	}
	var other bytes.Buffer
	if s2, _ := Send(&other, 3*chunk+17, 43); s2 == sum {
		t.Fatal("different seeds gave the same stream")
	}
}

func TestTransferLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}
	res, err := Transfer(ctx, ln, dial, 1<<20, 1)
	if err != nil || res.Bytes != 1<<20 {
		t.Fatalf("%+v %v", res, err)
	}
}

// corrupting flips one byte of what passes through it, so Transfer must
// notice.
type corrupting struct {
	net.Conn
	done bool
}

func (c *corrupting) Write(b []byte) (int, error) {
	if !c.done && len(b) > 100 {
		b = bytes.Clone(b)
		b[100] ^= 1
		c.done = true
	}
	return c.Conn.Write(b)
}

func (c *corrupting) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }

func TestTransferDetectsCorruption(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dial := func(ctx context.Context) (net.Conn, error) {
		c, err := net.Dial("tcp", ln.Addr().String())
		return &corrupting{Conn: c}, err
	}
	if _, err := Transfer(context.Background(), ln, dial, 1<<16, 1); !errors.Is(err, ErrMismatch) {
		t.Fatalf("error %v, want ErrMismatch", err)
	}
}

func TestTransferTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The sender reaches a listener that accepts and never reads, so it
	// blocks once the socket buffers fill, until the deadline.
	stall, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stall.Close()
	go func() {
		if c, err := stall.Accept(); err == nil {
			defer c.Close()
			time.Sleep(2 * time.Second)
		}
	}()
	dial := func(ctx context.Context) (net.Conn, error) { return net.Dial("tcp", stall.Addr().String()) }
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := Transfer(ctx, ln, dial, 256<<20, 1); !errors.Is(err, ErrTimeout) {
		t.Fatalf("error %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Transfer took %v past a 300 ms deadline", d)
	}
}
