package nsenv

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"pipeguard/bench/core"
)

// Usable checks that the harness runs as root, /dev/net/tun exists and
// the tools are on the PATH.
func Usable(tools ...string) error {
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
		return fmt.Errorf("%w: %s (run as root; scripts/setup.sh installs the tools)", core.ErrNetnsUnavailable, strings.Join(why, ", "))
	}
	return nil
}

// Bins are the tunnel programs, built once for the run.
type Bins struct {
	Dir, Client, WGPeer string
	WGVersion           string // golang.zx2c4.com/wireguard in wgpeer
	Revision            string // the PipeGuard commit built, from the client's build info
}

// BuildTunnels builds cmd/headless-client and cmd/wgpeer (as the
// end-to-end tests do: no -race, CGO_ENABLED=0) into a new directory. It
// runs the go command in the working directory, which must be inside the
// PipeGuard module.
func BuildTunnels(ctx context.Context) (*Bins, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go") // sudo's PATH often lacks Go
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", BuildPrefix, os.Getpid()))
	if err != nil {
		return nil, err
	}
	b := &Bins{Dir: dir, Client: filepath.Join(dir, "headless-client"), WGPeer: filepath.Join(dir, "wgpeer")}
	for _, p := range [][2]string{{"pipeguard/cmd/headless-client", b.Client}, {"pipeguard/cmd/wgpeer", b.WGPeer}} {
		cmd := exec.CommandContext(ctx, goBin, "build", "-buildvcs=auto", "-o", p[1], p[0])
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("%w: go build %s (run from the PipeGuard module): %v\n%s", core.ErrNetns, p[0], err, out)
		}
	}
	b.WGVersion, b.Revision = "unknown", "unknown"
	if info, err := buildinfo.ReadFile(b.Client); err == nil {
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
			b.Revision = rev
			if modified == "true" {
				b.Revision += " (with uncommitted changes)"
			}
		}
	}
	if info, err := buildinfo.ReadFile(b.WGPeer); err == nil {
		for _, d := range info.Deps {
			if d.Path == "golang.zx2c4.com/wireguard" {
				b.WGVersion = d.Version
				if d.Replace != nil {
					b.WGVersion += " => " + d.Replace.Path + " " + d.Replace.Version
				}
			}
		}
	}
	return b, nil
}

// Iperf3Version is iperf3's banner, "iperf 3.12".
func Iperf3Version() string {
	out, err := exec.Command("iperf3", "--version").Output()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}
