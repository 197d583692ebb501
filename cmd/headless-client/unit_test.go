package main

import (
	"os"
	"strings"
	"testing"
)

// TestSystemdUnit checks the unit file against what the client expects
// of its deployment: the binary's path and command, reload by SIGHUP,
// restart on failure, and CAP_NET_ADMIN as the only capability.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("pipeguard-headless-client@.service")
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string][]string{}
	section := ""
	for line := range strings.SplitSeq(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("unit line %q is not Key=Value", line)
			}
			settings[section+k] = append(settings[section+k], v)
		}
	}
	for key, want := range map[string]string{
		"[Service]ExecStart":                "/usr/bin/pipeguard-headless-client standalone --config /etc/pipeguard/%i.conf",
		"[Service]ExecReload":               "/bin/kill -HUP $MAINPID",
		"[Service]Restart":                  "on-failure",
		"[Service]CapabilityBoundingSet":    "CAP_NET_ADMIN",
		"[Service]NoNewPrivileges":          "yes",
		"[Service]DeviceAllow":              "/dev/net/tun rw",
		"[Service]StateDirectory":           "pipeguard",
		"[Service]RuntimeDirectory":         "wireguard",
		"[Service]RuntimeDirectoryPreserve": "yes",
		"[Install]WantedBy":                 "multi-user.target",
	} {
		if got := settings[key]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want exactly %q", key, got, want)
		}
	}
	if _, ok := settings["[Service]AmbientCapabilities"]; ok {
		t.Error("AmbientCapabilities set: the service runs as root and needs none")
	}
}
