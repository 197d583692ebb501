package memtun

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"pipeguard/tunio"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newBufs(n int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, tunio.Offset+tunio.InnerMTU+tunio.Tailroom)
	}
	return bufs, make([]int, n)
}

func pkt(i, size int) []byte {
	p := make([]byte, size)
	for j := range p {
		p[j] = byte(i + j)
	}
	return p
}

func TestInjectRead(t *testing.T) {
	tests := []struct {
		name   string
		inject int
		bufs   int
	}{
		{"one", 1, 4},
		{"batch fits", 4, 4},
		{"more than batch", 10, 4},
		{"fills queue", DefaultQueueLen, tunio.DefaultBatchSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tun, err := New(Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer tun.Close()
			var want [][]byte
			for i := range tt.inject {
				p := pkt(i, 20+i%(tunio.InnerMTU-20))
				want = append(want, p)
			}
			if err := tun.InjectBatch(want); err != nil {
				t.Fatal(err)
			}
			bufs, sizes := newBufs(tt.bufs)
			for got := 0; got < tt.inject; {
				n, err := tun.Read(bufs, sizes, tunio.Offset)
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 || n > tt.bufs {
					t.Fatalf("Read returned %d packets", n)
				}
				for i := range n {
					if !bytes.Equal(bufs[i][tunio.Offset:tunio.Offset+sizes[i]], want[got]) {
						t.Fatalf("packet %d differs", got)
					}
					got++
				}
			}
		})
	}
}

func TestWriteOutbound(t *testing.T) {
	tun, _ := New(Config{})
	defer tun.Close()
	bufs, _ := newBufs(3)
	for i := range bufs {
		copy(bufs[i][tunio.Offset:], pkt(i, 100))
		bufs[i] = bufs[i][:tunio.Offset+100+i]
	}
	n, err := tun.Write(bufs, tunio.Offset)
	if n != 3 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	for i := range 3 {
		p := <-tun.Outbound()
		if !bytes.Equal(p.Bytes(), bufs[i][tunio.Offset:]) {
			t.Fatalf("packet %d differs", i)
		}
	}
	if tun.Written() != 3 {
		t.Fatalf("Written = %d", tun.Written())
	}
	big := make([]byte, tunio.Offset+tunio.InnerMTU+1)
	if _, err := tun.Write([][]byte{big}, tunio.Offset); !errors.Is(err, ErrTooBig) {
		t.Fatalf("oversize Write: %v", err)
	}
	if err := tun.Inject(big); !errors.Is(err, ErrTooBig) {
		t.Fatalf("oversize Inject: %v", err)
	}
}

func TestCloseUnblocks(t *testing.T) {
	tun, _ := New(Config{QueueLen: 1})
	bufs, sizes := newBufs(1)
	wbuf := [][]byte{make([]byte, tunio.Offset+100)}
	readErr := make(chan error)
	go func() {
		_, err := tun.Read(bufs, sizes, tunio.Offset)
		readErr <- err
	}()
	// A Write blocks on the full outbound channel, an Inject on the full ring.
	tun.Write(wbuf, tunio.Offset)
	writeErr := make(chan error)
	go func() {
		_, err := tun.Write(wbuf, tunio.Offset)
		writeErr <- err
	}()
	time.Sleep(10 * time.Millisecond)
	tun.Close()
	for _, c := range []chan error{readErr, writeErr} {
		select {
		case err := <-c:
			if !tunio.IsClosed(err) || !errors.Is(err, net.ErrClosed) {
				t.Fatalf("err = %v, want closed", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Close did not unblock")
		}
	}
	if err := tun.Inject([]byte{1}); !tunio.IsClosed(err) {
		t.Fatalf("Inject after Close: %v", err)
	}
	if _, err := tun.Read(bufs, sizes, tunio.Offset); !tunio.IsClosed(err) {
		t.Fatalf("Read after Close: %v", err)
	}
	tun.Close()
}

func TestSourceAndOnWrite(t *testing.T) {
	left := 300
	var bytesOut int
	tun, _ := New(Config{
		Source: func(dst []byte) int {
			if left == 0 {
				return 0
			}
			left--
			return copy(dst, pkt(left, tunio.InnerMTU))
		},
		OnWrite: func(p []byte) { bytesOut += len(p) },
	})
	defer tun.Close()
	if tun.Outbound() != nil {
		t.Fatal("Outbound should be nil with OnWrite")
	}
	bufs, sizes := newBufs(tunio.DefaultBatchSize)
	total := 0
	for total < 300 {
		n, err := tun.Read(bufs, sizes, tunio.Offset)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			bufs[i] = bufs[i][:tunio.Offset+sizes[i]]
		}
		if _, err := tun.Write(bufs[:n], tunio.Offset); err != nil {
			t.Fatal(err)
		}
		total += n
	}
	if total != 300 || bytesOut != 300*tunio.InnerMTU {
		t.Fatalf("total %d, bytes %d", total, bytesOut)
	}
	// Source exhausted: injected packets come next.
	tun.Inject([]byte{0x45})
	bufs[0] = bufs[0][:cap(bufs[0])]
	if n, err := tun.Read(bufs, sizes, tunio.Offset); n != 1 || err != nil || sizes[0] != 1 {
		t.Fatalf("Read after Source = %d, %v", n, err)
	}
}

func TestZeroAlloc(t *testing.T) {
	tun, _ := New(Config{OnWrite: func([]byte) {}})
	defer tun.Close()
	p := pkt(1, tunio.InnerMTU)
	in := make([][]byte, 16)
	for i := range in {
		in[i] = p
	}
	bufs, sizes := newBufs(16)
	wbufs := make([][]byte, 16)
	for i := range wbufs {
		wbufs[i] = bufs[i][:tunio.Offset+tunio.InnerMTU]
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if err := tun.InjectBatch(in); err != nil {
			t.Fatal(err)
		}
		n, err := tun.Read(bufs, sizes, tunio.Offset)
		if err != nil || n != 16 {
			t.Fatal(n, err)
		}
		if _, err := tun.Write(wbufs[:n], tunio.Offset); err != nil {
			t.Fatal(err)
		}
		if err := tun.Inject(p); err != nil {
			t.Fatal(err)
		}
		if _, err := tun.Read(bufs, sizes, tunio.Offset); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
}

// BenchmarkSourceReadWrite is the pattern a pipeline benchmark uses: a
// Source feeding reads, OnWrite counting bytes.
func BenchmarkSourceReadWrite(b *testing.B) {
	p := pkt(0, tunio.InnerMTU)
	tun, _ := New(Config{
		Source:  func(dst []byte) int { return copy(dst, p) },
		OnWrite: func([]byte) {},
	})
	defer tun.Close()
	bufs, sizes := newBufs(tunio.DefaultBatchSize)
	for i := range bufs {
		bufs[i] = bufs[i][:tunio.Offset+tunio.InnerMTU]
	}
	b.SetBytes(int64(len(p)) * tunio.DefaultBatchSize)
	b.ReportAllocs()
	for b.Loop() {
		n, _ := tun.Read(bufs, sizes, tunio.Offset)
		tun.Write(bufs[:n], tunio.Offset)
	}
}

func BenchmarkInjectBatch(b *testing.B) {
	p := pkt(0, tunio.InnerMTU)
	in := make([][]byte, tunio.DefaultBatchSize)
	for i := range in {
		in[i] = p
	}
	tun, _ := New(Config{})
	defer tun.Close()
	bufs, sizes := newBufs(tunio.DefaultBatchSize)
	b.SetBytes(int64(len(p)) * tunio.DefaultBatchSize)
	b.ReportAllocs()
	for b.Loop() {
		tun.InjectBatch(in)
		for got := 0; got < len(in); {
			n, _ := tun.Read(bufs, sizes, tunio.Offset)
			got += n
		}
	}
}
