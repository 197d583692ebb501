package config

import (
	"errors"
	"testing"
)

// FuzzParse feeds arbitrary files to Parse: it must never panic, what it
// accepts must survive Format and Parse again unchanged, and what it
// refuses it must refuse without quoting anything as long as a key
// (only a duplicate peer's error names its public key, which is no
// secret).
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("[Interface]\nPrivateKey = " + kPriv + "\n[Peer]\nPublicKey = " + kPeer + "\nEndpoint=[::1]:1\nAllowedIPs=0.0.0.0/0,::/0\n"))
	f.Add([]byte("[interface]\r\nprivatekey=" + kPriv + "#c\r\nDNS=a.b.,1.1.1.1\r\n"))
	f.Add([]byte("[Peer]\n["))
	f.Add([]byte("[Interface]\nPrivateKey = " + kPriv + "\nTable = off\nFwMark = 0x1f\n"))
	f.Add([]byte("[Interface]\nPrivateKey = " + kPriv + "\ntable=51820\nfwmark=off\n"))
	f.Add([]byte("[Interface]\nPrivateKey: " + kPriv + "\n"))
	f.Add([]byte("[Interface]\nPrivateKey = " + kPriv + "\n[Peer]\nPresharedKey " + kPSK + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz", data)
		if err != nil {
			if !errors.Is(err, ErrDuplicate) && mayHoldKey(err.Error()) {
				t.Fatalf("the error quotes something as long as a key: %v", err)
			}
			return
		}
		d, err := Parse("fuzz2", []byte(c.Format()))
		if err != nil {
			t.Fatalf("Format output does not parse: %v\n%s", err, c.Format())
		}
		if !sameConfig(c, d) {
			t.Fatalf("round trip differs:\n%s", c.Format())
		}
	})
}
