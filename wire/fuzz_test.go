package wire

import (
	"bytes"
	"testing"
)

// The parsers are strict, so whatever they accept must marshal back to
// exactly the bytes they read.

func FuzzInitiation(f *testing.F) {
	f.Add(msgOf(1, InitiationSize))
	f.Add(fill(1, InitiationSize))
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Initiation
		if m.Unmarshal(b) != nil {
			return
		}
		var out [InitiationSize]byte
		m.Marshal(&out)
		if !bytes.Equal(out[:], b) {
			t.Fatalf("round trip\n in %x\nout %x", b, out)
		}
	})
}

func FuzzResponse(f *testing.F) {
	f.Add(msgOf(2, ResponseSize))
	f.Add(fill(2, ResponseSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Response
		if m.Unmarshal(b) != nil {
			return
		}
		var out [ResponseSize]byte
		m.Marshal(&out)
		if !bytes.Equal(out[:], b) {
			t.Fatalf("round trip\n in %x\nout %x", b, out)
		}
	})
}

func FuzzCookieReply(f *testing.F) {
	f.Add(msgOf(3, CookieReplySize))
	f.Add(fill(3, CookieReplySize))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m CookieReply
		if m.Unmarshal(b) != nil {
			return
		}
		var out [CookieReplySize]byte
		m.Marshal(&out)
		if !bytes.Equal(out[:], b) {
			t.Fatalf("round trip\n in %x\nout %x", b, out)
		}
	})
}

func FuzzTransportHeader(f *testing.F) {
	f.Add(msgOf(4, MinTransportSize))
	f.Add(fill(4, 100))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseTransportHeader(b)
		if err != nil {
			return
		}
		if len(b) < MinTransportSize || len(b) > MaxMessageSize {
			t.Fatalf("accepted %d bytes", len(b))
		}
		var out [TransportHeaderSize]byte
		h.Marshal(out[:])
		if !bytes.Equal(out[:], b[:TransportHeaderSize]) {
			t.Fatalf("round trip %x -> %x", b[:TransportHeaderSize], out)
		}
	})
}

func FuzzPeekIP(f *testing.F) {
	f.Add(ipv4(20, 5, 20))
	f.Add(ipv4(60, 15, 80))
	f.Add(ipv6(8, 48))
	f.Add([]byte{0x45})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := PeekIP(b)
		if err != nil {
			return
		}
		if h.Len > len(b) {
			t.Fatalf("Len %d beyond %d bytes", h.Len, len(b))
		}
		if (h.Version == 4 && (h.Len < IPv4HeaderMinSize || !h.Src.Is4())) ||
			(h.Version == 6 && (h.Len < IPv6HeaderSize || !h.Src.Is6())) ||
			(h.Version != 4 && h.Version != 6) {
			t.Fatalf("implausible header %+v", h)
		}
	})
}
