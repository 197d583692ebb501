package noise

import (
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
// lookup from many goroutines, as the handshake actor and the decrypt
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
