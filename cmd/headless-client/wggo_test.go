package main

import (
	"slices"
	"testing"
	"time"
)

// TestWireguardGoArgs: wireguard-go's command line, as pipeguard-go
// takes it, and what it becomes.
func TestWireguardGoArgs(t *testing.T) {
	for _, tc := range []struct {
		args          []string
		out           []string
		version, okay bool
	}{
		{[]string{"wg0"}, []string{"tunnel", "--", "wg0"}, false, true},
		{[]string{"-f", "wg0"}, []string{"tunnel", "--foreground", "--", "wg0"}, false, true},
		{[]string{"--foreground", "wg0"}, []string{"tunnel", "--foreground", "--", "wg0"}, false, true},
		{[]string{"--version"}, nil, true, true},
		{nil, nil, false, false},
		{[]string{"-f"}, nil, false, false},
		{[]string{"--help"}, nil, false, false},
		{[]string{"wg0", "wg1"}, nil, false, false},
		{[]string{"-x", "wg0"}, nil, false, false},
		{[]string{"-f", "wg0", "x"}, nil, false, false},
	} {
		out, version, ok := wireguardGoArgs(tc.args)
		if !slices.Equal(out, tc.out) || version != tc.version || ok != tc.okay {
			t.Errorf("%q: %q, version %v, ok %v; want %q, %v, %v", tc.args, out, version, ok, tc.out, tc.version, tc.okay)
		}
	}
}

// TestTunnelChildArgs: the detached process gets this command in the
// foreground with the same settings, the interface after "--" (a name
// may start with a dash).
func TestTunnelChildArgs(t *testing.T) {
	c := tunnelCmd{Interface: "-wg0", StateDir: "/s", LogDir: "/l", dataplaneFlags: dataplaneFlags{Engine: "sequential", Workers: 3,
		QueueCapacity: 500, QueueManagement: "off", QueueTarget: time.Millisecond, QueueInterval: 20 * time.Millisecond,
		CPUScheduling: "normal"}}
	want := []string{"--log-level", "debug", "tunnel", "--foreground", "--state-dir", "/s", "--engine", "sequential",
		"--workers", "3", "--cpu-scheduling", "normal", "--queue-capacity", "500", "--queue-management", "off", "--queue-target", "1ms",
		"--queue-interval", "20ms", "--log-dir", "/l", "--", "-wg0"}
	if got := c.childArgs("debug"); !slices.Equal(got, want) {
		t.Fatalf("childArgs = %q\nwant %q", got, want)
	}
	c.MetricsAddr, c.PprofAddr = "127.0.0.1:9586", "127.0.0.1:6060"
	want = append(want[:len(want)-2], "--metrics-addr", "127.0.0.1:9586", "--pprof-addr", "127.0.0.1:6060", "--", "-wg0")
	if got := c.childArgs("debug"); !slices.Equal(got, want) {
		t.Fatalf("childArgs with endpoints = %q\nwant %q", got, want)
	}
}
