package pmap

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"maps"
	"math/rand/v2"
	"testing"
)

func intHash(seed maphash.Seed) func(int) uint64 {
	return func(k int) uint64 { return maphash.Comparable(seed, k) }
}

// check compares m with want: Len, Get of every key and of absent keys,
// and All, which must yield each key once.
func check(t *testing.T, m Map[int, int], want map[int]int, keyspace int) {
	t.Helper()
	if m.Len() != len(want) {
		t.Fatalf("Len = %d, want %d", m.Len(), len(want))
	}
	for k := range keyspace {
		v, ok := m.Get(k)
		w, wok := want[k]
		if ok != wok || v != w {
			t.Fatalf("Get(%d) = %d, %v; want %d, %v", k, v, ok, w, wok)
		}
	}
	seen := map[int]int{}
	for k, v := range m.All() {
		if _, dup := seen[k]; dup {
			t.Fatalf("All yielded %d twice", k)
		}
		seen[k] = v
	}
	if !maps.Equal(seen, want) {
		t.Fatalf("All yielded %d keys, want %d", len(seen), len(want))
	}
}

// TestAgainstMap runs random batches of sets and deletes against a Go
// map, with good hashes and with hashes that collide in few or all bits,
// and checks after each batch that the new map is right and that the
// maps published before it did not change.
func TestAgainstMap(t *testing.T) {
	seed := maphash.MakeSeed()
	hashes := []struct {
		name string
		hash func(int) uint64
	}{
		{"maphash", intHash(seed)},
		{"top-bits-only", func(k int) uint64 { return uint64(k%7) << 61 }},
		{"all-equal", func(int) uint64 { return 42 }},
		{"low-bits", func(k int) uint64 { return uint64(k % 300) }},
	}
	for _, hc := range hashes {
		t.Run(hc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			const keyspace = 400
			m := New[int, int](hc.hash)
			want := map[int]int{}
			type published struct {
				m    Map[int, int]
				want map[int]int
			}
			var history []published
			for batch := range 60 {
				tx := m.Txn()
				for range r.IntN(40) + 1 {
					k := r.IntN(keyspace)
					if r.IntN(3) == 0 {
						_, had := want[k]
						if tx.Delete(k) != had {
							t.Fatalf("Delete(%d) reported %v, want %v", k, !had, had)
						}
						delete(want, k)
					} else {
						tx.Set(k, batch*1000+k)
						want[k] = batch*1000 + k
					}
					if tx.Len() != len(want) {
						t.Fatalf("Txn.Len = %d, want %d", tx.Len(), len(want))
					}
				}
				m = tx.Map()
				check(t, m, want, keyspace)
				history = append(history, published{m, maps.Clone(want)})
				// Changing on after Map must not change what Map returned.
				tx.Set(-1, -1)
			}
			for _, h := range history {
				check(t, h.m, h.want, keyspace)
			}
		})
	}
}

// TestTxnCopiesEachNodeOnce: a batch that changes many keys under one
// node copies that node once, then changes the copy in place.
func TestTxnCopiesEachNodeOnce(t *testing.T) {
	m := New[int, int](intHash(maphash.MakeSeed()))
	tx := m.Txn()
	for k := range 1000 {
		tx.Set(k, k)
	}
	m = tx.Map()
	tx = m.Txn()
	tx.Set(0, 1)
	root := tx.m.root
	if root == m.root {
		t.Fatal("the first change did not copy the published root")
	}
	for k := range 1000 {
		tx.Set(k, -k)
	}
	if tx.m.root != root {
		t.Fatal("a later change in the same batch copied the root again")
	}
}

func FuzzAgainstMap(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, ops []byte) {
		// Two bytes an operation: the key, then the kind (and the batch
		// boundary). A weak hash makes collisions and deep paths likely.
		m := New[int, int](func(k int) uint64 { return uint64(k%13)<<60 | uint64(k%5) })
		want := map[int]int{}
		tx := m.Txn()
		for i := 0; i+1 < len(ops); i += 2 {
			k, op := int(ops[i]), ops[i+1]
			switch op % 3 {
			case 0:
				tx.Delete(k)
				delete(want, k)
			default:
				tx.Set(k, int(op))
				want[k] = int(op)
			}
			if op&0x80 != 0 {
				m = tx.Map()
				check(t, m, want, 256)
				tx = m.Txn()
			}
		}
		check(t, tx.Map(), want, 256)
	})
}

func TestGetDoesNotAllocate(t *testing.T) {
	m := New[[32]byte, int](bytesHash(maphash.MakeSeed()))
	tx := m.Txn()
	var k [32]byte
	for i := range 1000 {
		binary.LittleEndian.PutUint64(k[:], uint64(i))
		tx.Set(k, i)
	}
	m = tx.Map()
	if n := testing.AllocsPerRun(100, func() { m.Get(k) }); n != 0 {
		t.Fatalf("Get allocates %v times", n)
	}
}

func bytesHash(seed maphash.Seed) func([32]byte) uint64 {
	return func(k [32]byte) uint64 { return maphash.Bytes(seed, k[:]) }
}

// BenchmarkGet looks up random present keys of 32 bytes (as public keys
// are) at 10^3, 10^5 and 10^6 entries: the cost grows with the depth,
// log64(n), not with n.
func BenchmarkGet(b *testing.B) {
	for _, n := range []int{1_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			m, keys := build(n)
			b.ResetTimer()
			for i := range b.N {
				if _, ok := m.Get(keys[i%len(keys)]); !ok {
					b.Fatal("missing")
				}
			}
		})
	}
}

// BenchmarkSetOne is one change to a map of n keys, published: the path
// it copies is O(depth), whatever n.
func BenchmarkSetOne(b *testing.B) {
	for _, n := range []int{1_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			m, keys := build(n)
			b.ResetTimer()
			for i := range b.N {
				tx := m.Txn()
				tx.Set(keys[i%len(keys)], i)
				m = tx.Map()
			}
		})
	}
}

// BenchmarkSetBatch builds a map of n keys in one batch; ns/op divided
// by n is the cost of one key, which stays flat as n grows.
func BenchmarkSetBatch(b *testing.B) {
	for _, n := range []int{1_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for range b.N {
				build(n)
			}
		})
	}
}

func build(n int) (Map[[32]byte, int], [][32]byte) {
	r := rand.New(rand.NewPCG(uint64(n), 7))
	keys := make([][32]byte, n)
	tx := New[[32]byte, int](bytesHash(maphash.MakeSeed())).Txn()
	for i := range keys {
		for j := 0; j < 32; j += 8 {
			binary.LittleEndian.PutUint64(keys[i][j:], r.Uint64())
		}
		tx.Set(keys[i], i)
	}
	return tx.Map(), keys
}
