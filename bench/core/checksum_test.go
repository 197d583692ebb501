package core

import "testing"

// TestOnesSum: RFC 1071's example, an odd length, a carry that wraps
// twice, and a sum carried on from an earlier part.
func TestOnesSum(t *testing.T) {
	for _, c := range []struct {
		sum  uint16
		b    []byte
		want uint16
	}{
		{0, []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, 0xddf2},
		{0, []byte{0x12, 0x34, 0x56}, 0x6834},
		{0, []byte{0xff, 0xff, 0xff, 0xff, 0x00, 0x01}, 0x0001},
		{0xddf0, []byte{0x00, 0x02}, 0xddf2},
		{0, nil, 0},
	} {
		if got := OnesSum(c.sum, c.b); got != c.want {
			t.Errorf("OnesSum(%#x, % x) = %#x, want %#x", c.sum, c.b, got, c.want)
		}
	}
}
