package noise

import (
	"encoding/hex"
	"testing"
	"time"

	"golang.org/x/crypto/blake2s"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tai64n"
)

func mustHex32(t testing.TB, s string) [32]byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		t.Fatalf("bad hex %q", s)
	}
	return [32]byte(b)
}

// TestKDFMatchesWireGuardGo checks our HKDF against wireguard-go's, an
// independent implementation, over inputs of several lengths.
func TestKDFMatchesWireGuardGo(t *testing.T) {
	key := blake2s.Sum256([]byte("chaining key"))
	for _, n := range []int{0, 1, 32, 64, 65, 200} {
		input := make([]byte, n)
		for i := range input {
			input[i] = byte(i)
		}
		var a0, a1, a2, b0, b1, b2 [32]byte
		kdf1(&a0, key[:], input)
		device.KDF1(&b0, key[:], input)
		if a0 != b0 {
			t.Fatalf("kdf1 len %d differs", n)
		}
		kdf2(&a0, &a1, key[:], input)
		device.KDF2(&b0, &b1, key[:], input)
		if a0 != b0 || a1 != b1 {
			t.Fatalf("kdf2 len %d differs", n)
		}
		kdf3(&a0, &a1, &a2, key[:], input)
		device.KDF3(&b0, &b1, &b2, key[:], input)
		if a0 != b0 || a1 != b1 || a2 != b2 {
			t.Fatalf("kdf3 len %d differs", n)
		}
	}
}

// TestInitialHashes pins C0 and H0, which every WireGuard implementation
// shares.
func TestInitialHashes(t *testing.T) {
	c0 := mustHex32(t, "60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36")
	h0 := mustHex32(t, "2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3")
	if initialChainKey != c0 {
		t.Errorf("C0 = %x", initialChainKey)
	}
	if initialHash != h0 {
		t.Errorf("H0 = %x", initialHash)
	}
}

func TestTimestampOrdering(t *testing.T) {
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		a, b  time.Time
		after bool
	}{
		{base.Add(time.Second), base, true},
		{base, base.Add(time.Second), false},
		{base, base, false},
		{base.Add(20 * time.Millisecond), base, true},  // beyond the whitening
		{base.Add(10 * time.Millisecond), base, false}, // hidden by it
		{base.Add(time.Second), base.Add(999 * time.Millisecond), true},
		{time.Unix(1<<33, 0), base, true}, // far future: still ordered
	}
	for i, tt := range tests {
		if got := Stamp(tt.a).After(Stamp(tt.b)); got != tt.after {
			t.Errorf("%d: Stamp(%v).After(Stamp(%v)) = %v", i, tt.a, tt.b, got)
		}
	}
	if !Stamp(base).After(Timestamp{}) {
		t.Error("real timestamp not after zero")
	}
	if got := Stamp(base).Time(); !got.Equal(base) {
		t.Errorf("Time() = %v, want %v", got, base)
	}
}

// TestTimestampLayout checks the TAI64N encoding byte by byte, and that a
// label of ours orders correctly against wireguard-go's for the same time.
func TestTimestampLayout(t *testing.T) {
	ts := Stamp(time.Unix(0, 0x12345678))
	want := "400000000000000a" + "12000000"
	if got := hex.EncodeToString(ts[:]); got != want {
		t.Fatalf("Stamp = %s, want %s", got, want)
	}
	before := Stamp(time.Now().Add(-time.Second))
	theirs := tai64n.Now()
	after := Stamp(time.Now().Add(time.Second))
	if !tai64n.Timestamp(after).After(theirs) || !theirs.After(tai64n.Timestamp(before)) {
		t.Fatal("our labels do not order with wireguard-go's")
	}
}
