package bench

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// netnsUsable checks what the mode needs: root, iproute2, iperf3, ping and
// /dev/net/tun.
func netnsUsable() error { return nsUsable("ip", "iperf3", "ping") }

// nsUsable checks that the harness runs as root, /dev/net/tun exists and
// the tools are on the PATH.
func nsUsable(tools ...string) error {
	var why []string
	if os.Geteuid() != 0 {
		why = append(why, "not root")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			why = append(why, "no "+tool)
		}
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		why = append(why, "no /dev/net/tun")
	}
	if len(why) > 0 {
		return fmt.Errorf("%w: %s (run as root; scripts/setup.sh installs the tools)", ErrNetnsUnavailable, strings.Join(why, ", "))
	}
	return nil
}

// tunnelBins are the tunnel programs, built once for the run.
type tunnelBins struct {
	dir, client, wgpeer string
	wgVersion           string // golang.zx2c4.com/wireguard in wgpeer
	revision            string // the PipeGuard commit built, from the client's build info
}

// buildTunnels builds cmd/headless-client and cmd/wgpeer (as the
// end-to-end tests do: no -race, CGO_ENABLED=0) into a new directory. It
// runs the go command in the working directory, which must be inside the
// PipeGuard module.
func buildTunnels(ctx context.Context) (*tunnelBins, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go") // sudo's PATH often lacks Go
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", buildPrefix, os.Getpid()))
	if err != nil {
		return nil, err
	}
	b := &tunnelBins{dir: dir, client: filepath.Join(dir, "headless-client"), wgpeer: filepath.Join(dir, "wgpeer")}
	for _, p := range [][2]string{{"pipeguard/cmd/headless-client", b.client}, {"pipeguard/cmd/wgpeer", b.wgpeer}} {
		cmd := exec.CommandContext(ctx, goBin, "build", "-buildvcs=auto", "-o", p[1], p[0])
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("%w: go build %s (run from the PipeGuard module): %v\n%s", ErrNetns, p[0], err, out)
		}
	}
	b.wgVersion, b.revision = "unknown", "unknown"
	if info, err := buildinfo.ReadFile(b.client); err == nil {
		var rev, modified string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			b.revision = rev
			if modified == "true" {
				b.revision += " (with uncommitted changes)"
			}
		}
	}
	if info, err := buildinfo.ReadFile(b.wgpeer); err == nil {
		for _, d := range info.Deps {
			if d.Path == "golang.zx2c4.com/wireguard" {
				b.wgVersion = d.Version
				if d.Replace != nil {
					b.wgVersion += " => " + d.Replace.Path + " " + d.Replace.Version
				}
			}
		}
	}
	return b, nil
}

func iperf3Version() string {
	out, err := exec.Command("iperf3", "--version").Output()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}
