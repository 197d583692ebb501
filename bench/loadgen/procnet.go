package loadgen

import (
	"bytes"
	"fmt"

	"pipeguard/bench/core"
)

// Parsers of the /proc/net files the loadgen mode reads many times a
// second: they work on the bytes in place and allocate nothing on success.

// netDevCounters are one interface's counters from /proc/net/dev.
type netDevCounters struct {
	rxBytes, rxPackets, rxDropped uint64
	txBytes, txPackets, txDropped uint64
}

// parseNetDev finds iface's line in a /proc/net/dev and reads its
// counters: "iface: rx bytes packets errs drop fifo frame compressed
// multicast, tx bytes packets errs drop fifo colls carrier compressed".
func parseNetDev(b []byte, iface string) (netDevCounters, error) {
	for line := range bytes.Lines(b) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		name, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok || string(bytes.TrimSpace(name)) != iface {
			continue
		}
		var f [16]uint64
		n := 0
		for field := range bytes.FieldsSeq(rest) {
			if n == len(f) {
				break
			}
			v, ok := parseDec(field)
			if !ok {
				return netDevCounters{}, fmt.Errorf("%w: /proc/net/dev line %q", core.ErrNetns, line)
			}
			f[n] = v
			n++
		}
		if n < len(f) {
			return netDevCounters{}, fmt.Errorf("%w: /proc/net/dev line %q", core.ErrNetns, line)
		}
		return netDevCounters{rxBytes: f[0], rxPackets: f[1], rxDropped: f[3], txBytes: f[8], txPackets: f[9], txDropped: f[11]}, nil
	}
	return netDevCounters{}, fmt.Errorf("%w: no interface %s in /proc/net/dev", core.ErrNetns, iface)
}

// parseSnmpUDP reads the counter name of the "Udp:" lines of a
// /proc/net/snmp: a line of names, then one of values.
func parseSnmpUDP(b []byte, name string) (uint64, error) {
	var names []byte
	for line := range bytes.Lines(b) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		rest, ok := bytes.CutPrefix(line, []byte("Udp:"))
		if !ok {
			continue
		}
		if names == nil {
			names = rest
			continue
		}
		col := -1
		i := 0
		for n := range bytes.FieldsSeq(names) {
			if string(n) == name {
				col = i
				break
			}
			i++
		}
		if col < 0 {
			break
		}
		i = 0
		for v := range bytes.FieldsSeq(rest) {
			if i == col {
				u, ok := parseDec(v)
				if !ok {
					return 0, fmt.Errorf("%w: /proc/net/snmp Udp %s %q", core.ErrNetns, name, v)
				}
				return u, nil
			}
			i++
		}
		break
	}
	return 0, fmt.Errorf("%w: no Udp %s in /proc/net/snmp", core.ErrNetns, name)
}

// parseDec reads a decimal unsigned number that fits 64 bits.
func parseDec(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}
