package noise

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestGeneratePrivateKeyClamped(t *testing.T) {
	k, err := GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	if k[0]&7 != 0 || k[31]&128 != 0 || k[31]&64 == 0 {
		t.Fatalf("key not clamped: %x", k)
	}
	k2, _ := GeneratePrivateKey()
	if k.Equal(k2) {
		t.Fatal("two generated keys are equal")
	}
	if k.Public().IsZero() {
		t.Fatal("zero public key")
	}
}

// TestClamped: Clamped clears bits 0 to 2 and 255 and sets bit 254, as the
// kernel and wireguard-go do when a key is set, keeps the public key, and
// leaves the zero key ("no key") alone.
func TestClamped(t *testing.T) {
	gen, _ := GeneratePrivateKey()
	all := PrivateKey{}
	for i := range all {
		all[i] = 0xff
	}
	tests := []struct {
		name string
		in   PrivateKey
		want PrivateKey
	}{
		{"zero stays zero", PrivateKey{}, PrivateKey{}},
		{"all ones", all, func() PrivateKey { k := all; k[0], k[31] = 0xf8, 0x7f; return k }()},
		{"one low bit", PrivateKey{0: 1}, PrivateKey{31: 0x40}},
		{"high bit only", PrivateKey{31: 0x80}, PrivateKey{31: 0x40}},
		{"already clamped", gen, gen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.Clamped()
			if got != tt.want {
				t.Fatalf("Clamped(%x) = %x, want %x", tt.in, got, tt.want)
			}
			if !tt.in.IsZero() && got.Public() != tt.in.Public() {
				t.Fatal("clamping changed the public key")
			}
		})
	}
}

// TestPublicKnownAnswer checks Public against RFC 7748 section 6.1.
func TestPublicKnownAnswer(t *testing.T) {
	priv := mustHex32(t, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
	want := mustHex32(t, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
	if got := PrivateKey(priv).Public(); got != PublicKey(want) {
		t.Fatalf("Public = %x, want %x", got, want)
	}
}

func TestSharedSecretRejectsLowOrder(t *testing.T) {
	k, _ := GeneratePrivateKey()
	var zero PublicKey // the point 0 has order 4... and yields 0
	if _, err := sharedSecret(&k, &zero); !errors.Is(err, ErrLowOrderPoint) {
		t.Fatalf("zero point: err = %v", err)
	}
	one := PublicKey{1} // order 1 too
	if _, err := sharedSecret(&k, &one); !errors.Is(err, ErrLowOrderPoint) {
		t.Fatalf("point 1: err = %v", err)
	}
	k2, _ := GeneratePrivateKey()
	pub, pub2 := k.Public(), k2.Public()
	a, err1 := sharedSecret(&k, &pub2)
	b, err2 := sharedSecret(&k2, &pub)
	if err1 != nil || err2 != nil || a != b {
		t.Fatalf("DH disagrees: %v %v", err1, err2)
	}
}

func TestKeyBase64(t *testing.T) {
	var all [KeySize]byte
	for i := range all {
		all[i] = byte(i * 7)
	}
	good := base64.StdEncoding.EncodeToString(all[:])
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"valid", good, true},
		{"zero", strings.Repeat("A", 43) + "=", true},
		{"wg example", "YNqHbfBQKaGvzefSSuIOiI0ZbT7Yx7x6sDhzbDXSMHA=", true},
		{"empty", "", false},
		{"no padding", good[:43], false},
		{"too long", good + "=", false},
		{"short", good[:40] + "===", false},
		{"url alphabet", strings.Repeat("_", 43) + "=", false},
		{"bad char", "!" + good[1:], false},
		{"non-zero trailing bits", good[:42] + "B=", false},
		{"line break", good[:20] + "\n" + good[21:], false},
		{"48 chars", base64.StdEncoding.EncodeToString(make([]byte, 33)), false},
		{"two pad", strings.Repeat("A", 42) + "==", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub, err1 := ParsePublicKey(tt.in)
			priv, err2 := ParsePrivateKey(tt.in)
			psk, err3 := ParsePresharedKey(tt.in)
			for _, err := range []error{err1, err2, err3} {
				if tt.ok && err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if !tt.ok && !errors.Is(err, ErrInvalidKey) {
					t.Fatalf("err = %v, want ErrInvalidKey", err)
				}
			}
			if tt.ok {
				for _, s := range []string{pub.String(), priv.String(), psk.String()} {
					if s != tt.in {
						t.Fatalf("round trip %q -> %q", tt.in, s)
					}
				}
			}
		})
	}
}

func TestKeyIsZeroEqual(t *testing.T) {
	var z PresharedKey
	if !z.IsZero() || !(PublicKey{}).IsZero() || !(PrivateKey{}).IsZero() {
		t.Fatal("zero keys not IsZero")
	}
	k := PresharedKey{31: 1}
	if k.IsZero() || k.Equal(z) || !k.Equal(k) {
		t.Fatal("IsZero/Equal wrong")
	}
}

// TestPublicKeyCheck: CheckPublicKey refuses exactly the keys whose DH is
// all zero (the config parser uses it, so that a reload refuses what
// start-up refuses), the low-order points of Curve25519 (the list
// libsodium and the kernel's selftests use) among them; NewHandshake
// accepts them and marks them low-order.
// lowOrderPoints are the low-order points of Curve25519 as the list
// libsodium and the kernel's selftest (netns.sh) use, in hex.
var lowOrderPoints = []string{
	"0000000000000000000000000000000000000000000000000000000000000000",
	"0100000000000000000000000000000000000000000000000000000000000000",
	"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
	"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
}

func TestPublicKeyCheck(t *testing.T) {
	k, _ := GeneratePrivateKey()
	s, err := NewStatic(k)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range lowOrderPoints {
		p := PublicKey(mustHex32(t, h))
		if err := CheckPublicKey(p); !errors.Is(err, ErrLowOrderPoint) {
			t.Errorf("CheckPublicKey(%s) = %v, want ErrLowOrderPoint", h, err)
		}
		if _, err := sharedSecret(&k, &p); !errors.Is(err, ErrLowOrderPoint) {
			t.Errorf("DH with %s = %v: the list is wrong", h, err)
		}
		if hs, err := NewHandshake(s, p, PresharedKey{}, 0); err != nil || !hs.LowOrder() {
			t.Errorf("NewHandshake(%s): err %v, low order %v; want it accepted and marked", h, err, err == nil && hs.LowOrder())
		}
	}
	for range 100 {
		k2, _ := GeneratePrivateKey()
		if err := CheckPublicKey(k2.Public()); err != nil {
			t.Fatalf("CheckPublicKey of a real public key: %v", err)
		}
	}
}

// TestPublicKeyJSON: the client's JSON log lines
// wrote public keys as arrays of 32 numbers. A public key is now written
// as `wg` prints it, alone, in a slice and in an slog JSON record.
func TestPublicKeyJSON(t *testing.T) {
	k, _ := GeneratePrivateKey()
	pub := k.Public()
	want := `"` + pub.String() + `"`
	if b, err := json.Marshal(pub); err != nil || string(b) != want {
		t.Errorf("json.Marshal = %s, %v; want %s", b, err, want)
	}
	if b, err := json.Marshal([]PublicKey{pub}); err != nil || string(b) != "["+want+"]" {
		t.Errorf("json.Marshal of a slice = %s, %v", b, err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("tunnel up", "public_key", pub)
	if !strings.Contains(buf.String(), `"public_key":`+want) {
		t.Errorf("slog JSON record: %s", buf.String())
	}
}
