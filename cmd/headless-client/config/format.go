package config

import (
	"fmt"
	"strings"
)

// Format writes c in the file format Parse reads, one key per line, so
// that programs (the demo, tests, the benchmark harness) can write the
// files an admin would. Parse(Format(c)) gives c back, less the
// positions File and Line.
func (c *Config) Format() string {
	var b strings.Builder
	in := &c.Interface
	b.WriteString("[Interface]\n")
	fmt.Fprintf(&b, "PrivateKey = %s\n", in.PrivateKey)
	for _, a := range in.Addresses {
		fmt.Fprintf(&b, "Address = %s\n", a)
	}
	if in.ListenPort != 0 {
		fmt.Fprintf(&b, "ListenPort = %d\n", in.ListenPort)
	}
	if in.MTU != 0 {
		fmt.Fprintf(&b, "MTU = %d\n", in.MTU)
	}
	switch {
	case in.Table == TableOff:
		b.WriteString("Table = off\n")
	case in.Table > 0:
		fmt.Fprintf(&b, "Table = %d\n", in.Table)
	}
	if in.FwMark != 0 {
		fmt.Fprintf(&b, "FwMark = %#x\n", in.FwMark)
	}
	for _, d := range in.DNS {
		fmt.Fprintf(&b, "DNS = %s\n", d)
	}
	for _, d := range in.DNSSearch {
		fmt.Fprintf(&b, "DNS = %s\n", d)
	}
	for i := range c.Peers {
		pe := &c.Peers[i]
		b.WriteString("\n[Peer]\n")
		fmt.Fprintf(&b, "PublicKey = %s\n", pe.PublicKey)
		if !pe.PresharedKey.IsZero() {
			fmt.Fprintf(&b, "PresharedKey = %s\n", pe.PresharedKey)
		}
		if pe.Endpoint != "" {
			fmt.Fprintf(&b, "Endpoint = %s\n", pe.Endpoint)
		}
		for _, a := range pe.AllowedIPs {
			fmt.Fprintf(&b, "AllowedIPs = %s\n", a)
		}
		if pe.PersistentKeepalive != 0 {
			fmt.Fprintf(&b, "PersistentKeepalive = %d\n", int(pe.PersistentKeepalive.Seconds()))
		}
	}
	return b.String()
}
