package uapi

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzParseSet feeds arbitrary set bodies to the parser: it must never
// panic, must fail with one of the package's errors (or EOF for a cut
// request), and what it accepts must be applicable to a real tunnel
// without panicking.
func FuzzParseSet(f *testing.F) {
	f.Add([]byte("listen_port=1\n\n"))
	f.Add([]byte("replace_peers=true\npublic_key=" + hexOf([32]byte{1}) + "\nallowed_ip=10.0.0.0/8\nallowed_ip=-::/0\nremove=true\n\n"))
	f.Add([]byte("public_key=" + hexOf([32]byte{2}) + "\nendpoint=[::1]:1\npreshared_key=" + hexOf([32]byte{}) + "\n\n"))
	tun, _ := newTunnel(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ParseSet(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			if !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrInvalid) && !errors.Is(err, io.EOF) {
				t.Fatalf("error %v is none of the package's", err)
			}
			return
		}
		if bytes.Count(data, []byte("public_key=")) < len(req.Peers) {
			t.Fatalf("%d peers from fewer public_key lines", len(req.Peers))
		}
		_ = Apply(tun, req)
	})
}
