package noise

import (
	"fmt"
	mathrand "math/rand/v2"
	"sync"
	"testing"
)

func TestIndexTableUnique(t *testing.T) {
	var tab IndexTable
	if _, ok := tab.Lookup(1); ok {
		t.Fatal("zero table has an entry")
	}
	h := &Handshake{peer: 7}
	seen := make(map[uint32]bool)
	const n = 20000
	for range n {
		i := tab.NewHandshakeIndex(h)
		if i == 0 || seen[i] {
			t.Fatalf("index %d zero or reused", i)
		}
		seen[i] = true
	}
	if tab.Len() != n {
		t.Fatalf("Len = %d", tab.Len())
	}
	for i := range seen {
		e, ok := tab.Lookup(i)
		if !ok || e.Peer != 7 || e.Handshake != h || e.Keypair != nil {
			t.Fatalf("entry %d = %+v", i, e)
		}
		kp := &Keypair{}
		if !tab.SwapKeypair(i, kp) {
			t.Fatal("swap failed")
		}
		if e, _ := tab.Lookup(i); e.Keypair != kp || e.Peer != 7 {
			t.Fatal("swap lost the entry")
		}
		tab.Delete(i)
		if tab.SwapKeypair(i, kp) {
			t.Fatal("swap of a deleted index succeeded")
		}
	}
	if tab.Len() != 0 {
		t.Fatal("not empty after deleting all")
	}
}

// TestIndexTableConcurrent is for -race: allocation, swap, delete and
// lookup from many goroutines, as the handshake workers and the decrypt
// workers do.
func TestIndexTableConcurrent(t *testing.T) {
	var tab IndexTable
	var wg sync.WaitGroup
	var mu sync.Mutex
	all := make(map[uint32]bool)
	for g := range 8 {
		h := &Handshake{peer: PeerID(g)}
		wg.Go(func() {
			kp := &Keypair{}
			for range 500 {
				i := tab.NewHandshakeIndex(h)
				mu.Lock()
				dup := all[i]
				all[i] = true
				mu.Unlock()
				if dup {
					t.Errorf("index %d handed out twice", i)
				}
				tab.SwapKeypair(i, kp)
				if e, ok := tab.Lookup(i); !ok || e.Peer != h.peer || e.Keypair != kp {
					t.Errorf("lookup of own index %d: %+v", i, e)
				}
				tab.Lookup(i + 1)
			}
		})
	}
	wg.Wait()
	if tab.Len() != 8*500 {
		t.Fatalf("Len = %d", tab.Len())
	}
}

func TestIndexLookupAllocFree(t *testing.T) {
	var tab IndexTable
	i := tab.NewHandshakeIndex(&Handshake{})
	if n := testing.AllocsPerRun(100, func() { tab.Lookup(i); tab.Lookup(i + 1) }); n != 0 {
		t.Fatalf("Lookup allocates %v times", n)
	}
}

// TestIndexTableAgainstMap runs random insertions, swaps, deletions and
// lookups (of present, deleted and never-used indices) against a map,
// through many growths, shrinkings and tombstones, and checks every
// answer and the length.
func TestIndexTableAgainstMap(t *testing.T) {
	var tab IndexTable
	ref := map[uint32]IndexEntry{}
	var keys []uint32 // every index ever handed out, deleted ones too
	hs := []*Handshake{{peer: 1}, {peer: 2}, {peer: 3}}
	kps := []*Keypair{{}, {}}
	rng := mathrand.New(mathrand.NewPCG(1, 2))
	check := func(i uint32) {
		t.Helper()
		got, ok := tab.Lookup(i)
		want, wok := ref[i]
		if ok != wok || got != want {
			t.Fatalf("Lookup(%d) = %+v, %v; want %+v, %v", i, got, ok, want, wok)
		}
	}
	for step := range 200_000 {
		// Phases that mostly insert, then mostly delete, so the table
		// grows and shrinks again.
		insertShare := 6
		if step/20_000%2 == 1 {
			insertShare = 2
		}
		switch r := rng.IntN(10); {
		case r < insertShare:
			h := hs[rng.IntN(len(hs))]
			i := tab.NewHandshakeIndex(h)
			if _, dup := ref[i]; dup || i == 0 {
				t.Fatalf("index %d handed out while in use, or zero", i)
			}
			ref[i] = IndexEntry{Peer: h.peer, Handshake: h}
			keys = append(keys, i)
		case r < 8 && len(keys) > 0:
			i := keys[rng.IntN(len(keys))]
			kp := kps[rng.IntN(len(kps))]
			e, ok := ref[i]
			if got := tab.SwapKeypair(i, kp); got != ok {
				t.Fatalf("SwapKeypair(%d) = %v, want %v", i, got, ok)
			}
			if ok {
				e.Keypair = kp
				ref[i] = e
			}
		case len(keys) > 0:
			i := keys[rng.IntN(len(keys))]
			tab.Delete(i)
			delete(ref, i)
		}
		if len(keys) > 0 {
			check(keys[rng.IntN(len(keys))])
		}
		check(rng.Uint32())
		check(0)
	}
	if tab.Len() != len(ref) {
		t.Fatalf("Len = %d, want %d", tab.Len(), len(ref))
	}
	for _, i := range keys {
		check(i)
	}
}

// TestIndexTableReadersDuringGrowth is for -race: lock-free readers keep
// finding the entries that stay while a writer inserts and deletes
// thousands of others, through every growth and shrinking of the table.
func TestIndexTableReadersDuringGrowth(t *testing.T) {
	var tab IndexTable
	h := &Handshake{peer: 9}
	kp := &Keypair{}
	stay := make([]uint32, 64)
	for j := range stay {
		stay[j] = tab.NewHandshakeIndex(h)
		tab.SwapKeypair(stay[j], kp)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				e, ok := tab.Lookup(stay[n%len(stay)])
				if !ok || e.Peer != 9 || e.Handshake != h || e.Keypair != kp {
					t.Errorf("entry that stays: %+v, %v", e, ok)
					return
				}
			}
		})
	}
	for round := range 4 {
		var churn []uint32
		for range 5000 * (round + 1) {
			churn = append(churn, tab.NewHandshakeIndex(h))
		}
		for _, i := range churn {
			tab.Delete(i)
		}
	}
	close(stop)
	wg.Wait()
	if tab.Len() != len(stay) {
		t.Fatalf("Len = %d, want %d", tab.Len(), len(stay))
	}
}

// BenchmarkIndexLookup looks up receiver indices in tables of 1 to 10^6
// entries, as the decrypt path does per packet: from one goroutine, and
// from every core at once (the decrypt workers). Half the lookups find
// an entry, half miss (a forged or stale index).
func BenchmarkIndexLookup(b *testing.B) {
	for _, n := range []int{1, 1_000, 100_000, 1_000_000} {
		var tab IndexTable
		h := &Handshake{peer: 1}
		idx := make([]uint32, 0, n)
		for range n {
			idx = append(idx, tab.NewHandshakeIndex(h))
		}
		probe := make([]uint32, 1024)
		for i := range probe {
			if i%2 == 0 {
				probe[i] = idx[i*7919%n]
			} else {
				probe[i] = randIndex()
			}
		}
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				tab.Lookup(probe[i&1023])
				i++
			}
		})
		b.Run(fmt.Sprintf("n=%d/parallel", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					tab.Lookup(probe[i&1023])
					i++
				}
			})
		})
	}
}
