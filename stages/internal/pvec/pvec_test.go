package pvec

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
)

func check(t *testing.T, v Vec[int], want map[uint32]int, space uint32) {
	t.Helper()
	if v.Len() != len(want) {
		t.Fatalf("Len = %d, want %d", v.Len(), len(want))
	}
	for i := range space {
		x, ok := v.Get(i)
		w, wok := want[i]
		if ok != wok || x != w {
			t.Fatalf("Get(%d) = %d, %v; want %d, %v", i, x, ok, w, wok)
		}
	}
	var last int64 = -1
	n := 0
	for i, x := range v.All() {
		if int64(i) <= last {
			t.Fatalf("All yielded %d after %d", i, last)
		}
		last = int64(i)
		if want[i] != x {
			t.Fatalf("All yielded %d at %d, want %d", x, i, want[i])
		}
		n++
	}
	if n != len(want) {
		t.Fatalf("All yielded %d, want %d", n, len(want))
	}
}

// TestAgainstMap runs random batches against a Go map and checks every
// published vector again at the end: later batches must not change it.
func TestAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const space = 3 * chunkSize
	var v Vec[int]
	want := map[uint32]int{}
	type published struct {
		v    Vec[int]
		want map[uint32]int
	}
	var history []published
	for batch := range 80 {
		tx := v.Txn()
		for range r.IntN(60) + 1 {
			i := uint32(r.IntN(space))
			if r.IntN(3) == 0 {
				tx.Set(i, 0)
				delete(want, i)
			} else {
				tx.Set(i, batch+1)
				want[i] = batch + 1
			}
		}
		v = tx.Vec()
		check(t, v, want, space+chunkSize)
		history = append(history, published{v, maps.Clone(want)})
		tx.Set(0, -1) // must not reach v
	}
	for _, h := range history {
		check(t, h.v, h.want, space+chunkSize)
	}
}

// TestEmptyChunksAreFreed: removing every slot of a chunk frees it, and
// trailing free chunks leave the directory.
func TestEmptyChunksAreFreed(t *testing.T) {
	var v Vec[int]
	tx := v.Txn()
	for i := range uint32(3 * chunkSize) {
		tx.Set(i, 1)
	}
	for i := range uint32(chunkSize) {
		tx.Set(chunkSize+i, 0)
		tx.Set(2*chunkSize+i, 0)
	}
	v = tx.Vec()
	if len(v.dir) != 1 || v.Len() != chunkSize {
		t.Fatalf("directory has %d chunks and %d slots in use, want 1 and %d", len(v.dir), v.Len(), chunkSize)
	}
}

func FuzzAgainstMap(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 255, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		var v Vec[int]
		want := map[uint32]int{}
		tx := v.Txn()
		for j := 0; j+1 < len(ops); j += 2 {
			i := uint32(ops[j]) * 3 // spans three chunks
			switch x := int(ops[j+1]); {
			case x%4 == 0:
				tx.Set(i, 0)
				delete(want, i)
			default:
				tx.Set(i, x)
				want[i] = x
			}
			if ops[j+1]&0x80 != 0 {
				v = tx.Vec()
				check(t, v, want, 4*chunkSize)
				tx = v.Txn()
			}
		}
		check(t, tx.Vec(), want, 4*chunkSize)
	})
}

func TestGetDoesNotAllocate(t *testing.T) {
	var v Vec[*int]
	tx := v.Txn()
	x := 1
	for i := range uint32(1000) {
		tx.Set(i, &x)
	}
	v = tx.Vec()
	if n := testing.AllocsPerRun(100, func() { v.Get(500) }); n != 0 {
		t.Fatalf("Get allocates %v times", n)
	}
}

// BenchmarkGet at 10^3, 10^5 and 10^6 slots: two loads, whatever n.
func BenchmarkGet(b *testing.B) {
	for _, n := range []int{1_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			v := build(n)
			r := rand.New(rand.NewPCG(1, 1))
			idx := make([]uint32, 4096)
			for i := range idx {
				idx[i] = uint32(r.IntN(n)) + 1
			}
			b.ResetTimer()
			for i := range b.N {
				if _, ok := v.Get(idx[i&4095]); !ok {
					b.Fatal("missing")
				}
			}
		})
	}
}

// BenchmarkSetOne is one change published to a vector of n slots: one
// chunk and the directory (n/256 pointers) copied.
func BenchmarkSetOne(b *testing.B) {
	for _, n := range []int{1_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			v := build(n)
			b.ResetTimer()
			for i := range b.N {
				tx := v.Txn()
				tx.Set(uint32(i%n)+1, &n)
				v = tx.Vec()
			}
		})
	}
}

func build(n int) Vec[*int] {
	var v Vec[*int]
	tx := v.Txn()
	x := 1
	for i := range n {
		tx.Set(uint32(i)+1, &x)
	}
	return tx.Vec()
}
