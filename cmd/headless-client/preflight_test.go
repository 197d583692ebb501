package main

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestCanCreate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{filepath.Join(dir, "new"), true},
		{filepath.Join(dir, "a", "b", "c", "new"), true},
		{file, true},
		{filepath.Join(file, "under-a-file"), false},
	} {
		if err := canCreate(tc.path); (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok %v", tc.path, err, tc.ok)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("canCreate created something: %v", ents)
	}
}

func TestPortInUse(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udp := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	tcp := uint16(ln.Addr().(*net.TCPAddr).Port)
	if !portInUse("udp", udp) || !portInUse("tcp", tcp) {
		t.Errorf("held ports not seen: udp %d %v, tcp %d %v", udp, portInUse("udp", udp), tcp, portInUse("tcp", tcp))
	}
	pc.Close()
	ln.Close()
	if portInUse("udp", udp) || portInUse("tcp", tcp) {
		t.Errorf("closed ports still seen")
	}
	if err := checkPorts(0, "127.0.0.1:0", "[::1]:0", ""); err != nil {
		t.Errorf("free loopback endpoints: %v", err)
	}
	if err := checkPorts(0, "192.0.2.1:9586"); err == nil {
		t.Errorf("an address not of this host was accepted")
	}
	if err := checkPorts(0, "no-port"); err == nil {
		t.Errorf("an address without a port was accepted")
	}
}
