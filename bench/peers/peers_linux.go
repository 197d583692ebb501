package peers

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"pipeguard/bench/core"
	"pipeguard/bench/core/nsenv"
	"pipeguard/noise"
)

// usable checks what the mode needs: root, /dev/net/tun, iproute2 and wg.
func usable() error {
	if err := nsenv.Usable("ip"); err != nil {
		return err
	}
	if _, err := exec.LookPath("wg"); err != nil {
		return fmt.Errorf("%w: no wg (run as root; scripts/setup.sh installs wireguard-tools)", core.ErrNetnsUnavailable)
	}
	return nil
}

// Measure runs the mode as cfg says (see the package comment). It needs
// root; it builds the tunnel programs, and removes everything it made,
// also when ctx ends.
func Measure(ctx context.Context, cfg Config) (_ *Report, err error) {
	cfg = cfg.WithDefaults()
	lab, err := nsenv.Open(ctx, cfg.Out, usable)
	if err != nil {
		return nil, err
	}
	defer nsenv.CloseKeep(&err, lab.Close)
	rep := &Report{WireguardGo: lab.Bins.WGVersion, Revision: lab.Bins.Revision, IdleSeconds: cfg.Idle.Seconds()}
	impls := []string{ImplPipeGuard, ImplWireguardGo}
	prog := cfg.Out.Progress(len(impls) * len(cfg.Peers))
	for _, impl := range impls {
		for _, n := range cfg.Peers {
			what := fmt.Sprintf("%s with %d peer%s", impl, n, core.Plural(n))
			if impl == ImplWireguardGo && n > WireguardGoMaxPeers {
				rep.Rows = append(rep.Rows, Row{Impl: impl, Peers: n, Refused: true})
				prog.Begin(what)
				prog.End(what, "refused (MaxPeers)")
				continue
			}
			prog.Begin(what)
			row, err := measureOne(ctx, lab.Env, lab.Bins, impl, n, cfg.Idle)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			rep.Rows = append(rep.Rows, row)
			prog.End(what, fmt.Sprintf("setconf %.2f s, RSS %.0f MiB", row.SetconfSeconds, float64(row.RSSBytes)/(1<<20)))
		}
	}
	prog.Finish()
	perPeer(rep.Rows)
	return rep, nil
}

// measureOne starts impl empty in namespace A, takes the row's figures
// and stops it.
func measureOne(ctx context.Context, env *nsenv.Env, bins *nsenv.Bins, impl string, n int, idle time.Duration) (Row, error) {
	row := Row{Impl: impl, Peers: n}
	iface := env.TunnelName("a")
	p, err := start(env, bins, impl, iface)
	if err != nil {
		return row, err
	}
	defer p.Stop(5 * time.Second)
	if err := nsenv.WaitUAPI(ctx, p, iface); err != nil {
		return row, err
	}
	keys := randomKeys(n)
	conf := filepath.Join(env.Dir, iface+".conf")
	if err := os.WriteFile(conf, peersConf(keys, false), 0o600); err != nil {
		return row, err
	}
	t0 := time.Now()
	if _, err := nsenv.RunIn(ctx, false, env.A, "wg", "setconf", iface, conf); err != nil {
		return row, fmt.Errorf("%w: wg setconf: %v", core.ErrNetns, err)
	}
	row.SetconfSeconds = time.Since(t0).Seconds()
	t0 = time.Now()
	dump, err := nsenv.RunIn(ctx, false, env.A, "wg", "show", iface, "dump")
	if err != nil {
		return row, fmt.Errorf("%w: wg show dump: %v", core.ErrNetns, err)
	}
	row.DumpSeconds = time.Since(t0).Seconds()
	if got := bytes.Count(dump, []byte("\n")) - 1; got != n {
		return row, fmt.Errorf("%w: wg show dump lists %d peers, want %d", core.ErrNetns, got, n)
	}
	if row.RSSBytes, err = nsenv.ProcRSS(p.Pid()); err != nil {
		return row, err
	}
	if row.Threads, err = threads(p.Pid()); err != nil {
		return row, err
	}
	if row.IdleCPUPercent, err = idleCPU(ctx, p.Pid(), idle); err != nil {
		return row, err
	}
	sock := nsenv.SocketPath(iface)
	var extra noise.PublicKey
	rand.Read(extra[:])
	add := fmt.Sprintf("set=1\npublic_key=%s\nendpoint=198.18.255.255:9\nallowed_ip=10.255.255.1/32\nallowed_ip=fd01::ffff:ffff/128\n\n", hex.EncodeToString(extra[:]))
	if row.AddMillis, err = uapiSet(sock, add); err != nil {
		return row, err
	}
	if row.RemoveMillis, err = uapiSet(sock, fmt.Sprintf("set=1\npublic_key=%s\nremove=true\n\n", hex.EncodeToString(extra[:]))); err != nil {
		return row, err
	}
	if err := os.WriteFile(conf, peersConf(keys, true), 0o600); err != nil {
		return row, err
	}
	if _, err := nsenv.RunIn(ctx, false, env.A, "wg", "addconf", iface, conf); err != nil {
		return row, fmt.Errorf("%w: wg addconf: %v", core.ErrNetns, err)
	}
	if row.KeepaliveCPUPercent, err = idleCPU(ctx, p.Pid(), idle); err != nil {
		return row, err
	}
	return row, nil
}

// start starts impl's empty tunnel on iface in namespace A.
func start(env *nsenv.Env, bins *nsenv.Bins, impl, iface string) (*nsenv.Proc, error) {
	if impl == ImplPipeGuard {
		return env.Start(env.A, impl, nil, bins.Client, "--log-level", "warn", "tunnel", "--foreground", "--state-dir", env.Dir, iface)
	}
	k, err := noise.GeneratePrivateKey()
	if err != nil {
		return nil, err
	}
	base := filepath.Join(env.Dir, iface+"-base.conf")
	if err := os.WriteFile(base, []byte("[Interface]\nPrivateKey = "+k.String()+"\n"), 0o600); err != nil {
		return nil, err
	}
	return env.Start(env.A, impl, nil, bins.WGPeer, "--config", base, "--interface", iface, "--uapi", "--log-level", "error")
}

// randomKeys makes n random public keys. Any 32 bytes do for a peer that
// never answers; the chance of one of the seven low-order keys is nil.
func randomKeys(n int) []noise.PublicKey {
	keys := make([]noise.PublicKey, n)
	for i := range keys {
		rand.Read(keys[i][:])
	}
	return keys
}

// peersConf is a wg config of keys as peers, peer i with 10.x.y.z/32
// and fd01::x:y/128 made of i, and an endpoint in 198.18.0.0/15, which
// the namespace has no route to. With keepalive, it is the change that
// turns a persistent keepalive on for every other peer instead.
func peersConf(keys []noise.PublicKey, keepalive bool) []byte {
	var b bytes.Buffer
	if !keepalive {
		b.WriteString("[Interface]\nPrivateKey = ")
		k, _ := noise.GeneratePrivateKey()
		b.WriteString(k.String())
		b.WriteString("\n")
	}
	for i, k := range keys {
		if keepalive {
			if i%2 == 0 {
				fmt.Fprintf(&b, "[Peer]\nPublicKey = %s\nPersistentKeepalive = %d\n", k, keepaliveSeconds)
			}
			continue
		}
		fmt.Fprintf(&b, "[Peer]\nPublicKey = %s\nAllowedIPs = 10.%d.%d.%d/32, fd01::%x:%x/128\nEndpoint = 198.18.%d.%d:%d\n",
			k, i>>16&255, i>>8&255, i&255, i>>16, i&0xffff, i>>8&255, i&255, 1024+i%60000)
	}
	return b.Bytes()
}

// idleCPU is pid's CPU over window, after a pause for the last change to
// settle, in percent of one core.
func idleCPU(ctx context.Context, pid int, window time.Duration) (float64, error) {
	if err := sleep(ctx, settle); err != nil {
		return 0, err
	}
	c0, err := nsenv.ProcCPU(pid)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := sleep(ctx, window); err != nil {
		return 0, err
	}
	c1, err := nsenv.ProcCPU(pid)
	if err != nil {
		return 0, err
	}
	return 100 * (c1 - c0).Seconds() / time.Since(t0).Seconds(), nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// threads is pid's number of OS threads.
func threads(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			var n int
			if _, err := fmt.Sscan(v, &n); err == nil {
				return n, nil
			}
		}
	}
	return 0, fmt.Errorf("%w: no Threads in /proc/%d/status", core.ErrNetns, pid)
}

// uapiSet sends one set request on the UAPI socket and returns how long
// the answer took, in milliseconds; an errno other than 0 is an error.
func uapiSet(sock, req string) (float64, error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	t0 := time.Now()
	if _, err := c.Write([]byte(req)); err != nil {
		return 0, err
	}
	var answer strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, fmt.Errorf("%w: UAPI answer: %v", core.ErrNetns, err)
		}
		if line == "\n" {
			break
		}
		answer.WriteString(line)
	}
	ms := float64(time.Since(t0).Microseconds()) / 1000
	if answer.String() != "errno=0\n" {
		return 0, fmt.Errorf("%w: UAPI set answered %q", core.ErrNetns, answer.String())
	}
	return ms, nil
}
