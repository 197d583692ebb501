package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"pipeguard/cmd/headless-client/config"
	"pipeguard/cmd/headless-client/uapi"
	"pipeguard/cmd/internal/netns"
	"pipeguard/noise"
)

// The demo's addresses. They exist only inside the two namespaces the
// demo creates, so they cannot clash with, or reach, the host's network.
var (
	demoOuter = [2]netip.Prefix{netip.MustParsePrefix("10.250.0.1/24"), netip.MustParsePrefix("10.250.0.2/24")}
	demoInner = [2][]netip.Prefix{
		{netip.MustParsePrefix("10.251.0.1/24"), netip.MustParsePrefix("fd51::1/64")},
		{netip.MustParsePrefix("10.251.0.2/24"), netip.MustParsePrefix("fd51::2/64")},
	}
)

const (
	demoPort    = 51820
	demoTCPPort = 5201
	// demoReady bounds the wait for a tunnel to open its UAPI socket.
	demoReady = 10 * time.Second
)

// demoEnd is one side of the demo.
type demoEnd struct {
	label string // "A" or "B"
	ns    *netns.NS
	iface string
	conf  string
	log   string // its stderr, kept in a file
	cmd   *exec.Cmd
	exit  chan error
}

func (c *demoCmd) Run(env *runEnv) error {
	if os.Geteuid() != 0 {
		return errors.New("headless-client: the demo needs root (it creates network namespaces and TUN devices): run `sudo make demo`")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	out := env.stdout
	dir, err := os.MkdirTemp("", "pipeguard-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fmt.Fprintf(out, "PipeGuard demo: two tunnel endpoints, each in a private network namespace.\n\n")
	ends, cleanup, err := demoSetup(dir, c.Engine, env.logLevel, out)
	defer func() {
		fmt.Fprintf(out, "\nCleaning up:\n")
		cleanup()
	}()
	if err != nil {
		return err
	}
	if err := demoTraffic(ctx, ends, c.Bytes, out); err != nil {
		if errors.Is(err, errDemoInterrupted) {
			return err
		}
		for _, e := range ends {
			printTail(out, e)
		}
		return err
	}
	if wg, err := exec.LookPath("wg"); err == nil {
		show, _ := exec.Command(wg, "show", ends[0].iface).CombinedOutput()
		fmt.Fprintf(out, "\n`wg show %s` (Debian's wg, over PipeGuard's UAPI socket):\n%s", ends[0].iface, indent(string(show)))
	}
	fmt.Fprintf(out, "\nThe tunnel works.\n")
	return nil
}

// demoSetup creates the namespaces, the veth pair, keys and configs, and
// starts one tunnel in each namespace. cleanup undoes whatever part of
// that was done, also after an error, and reports each step.
func demoSetup(dir, engine, logLevel string, out io.Writer) ([2]*demoEnd, func(), error) {
	var ends [2]*demoEnd
	var undo []func()
	cleanup := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	pid := os.Getpid()
	for i, label := range []string{"a", "b"} {
		name := fmt.Sprintf("pgdemo-%d-%s", pid, label)
		ns, err := netns.Create(name)
		if err != nil {
			return ends, cleanup, err
		}
		undo = append(undo, func() {
			if err := ns.Delete(); err != nil {
				fmt.Fprintf(out, "  deleting namespace %s: %v\n", ns.Name, err)
				return
			}
			fmt.Fprintf(out, "  deleted namespace %s (and its veth end)\n", ns.Name)
		})
		ends[i] = &demoEnd{label: strings.ToUpper(label), ns: ns, iface: fmt.Sprintf("pgd%d%s", pid, label),
			conf: filepath.Join(dir, label+".conf"), log: filepath.Join(dir, label+".log")}
	}
	vethA, vethB := fmt.Sprintf("vd%da", pid), fmt.Sprintf("vd%db", pid)
	if err := netns.Link(ends[0].ns, ends[1].ns, vethA, vethB, demoOuter[0], demoOuter[1]); err != nil {
		return ends, cleanup, err
	}
	fmt.Fprintf(out, "Created namespaces %s and %s, joined by a veth pair (%s ↔ %s).\n",
		ends[0].ns.Name, ends[1].ns.Name, demoOuter[0].Addr(), demoOuter[1].Addr())

	if err := demoConfigs(ends, out); err != nil {
		return ends, cleanup, err
	}
	exe, err := os.Executable()
	if err != nil {
		return ends, cleanup, err
	}
	for _, e := range ends {
		if err := e.start(exe, engine, logLevel, dir); err != nil {
			return ends, cleanup, err
		}
		undo = append(undo, func() { e.stop(out) })
		fmt.Fprintf(out, "Started tunnel %s: %s standalone --config %s --interface %s --engine %s (in %s)\n",
			e.label, filepath.Base(exe), e.conf, e.iface, engine, e.ns.Name)
	}
	for _, e := range ends {
		if err := e.waitReady(); err != nil {
			return ends, cleanup, err
		}
	}
	return ends, cleanup, nil
}

// demoConfigs writes a key pair and a config file (mode 0600) per end,
// each naming the other as its peer.
func demoConfigs(ends [2]*demoEnd, out io.Writer) error {
	var keys [2]noise.PrivateKey
	for i := range keys {
		k, err := noise.GeneratePrivateKey()
		if err != nil {
			return err
		}
		keys[i] = k
	}
	for i, e := range ends {
		o := 1 - i
		cfg := config.Config{
			Interface: config.Interface{PrivateKey: keys[i], Addresses: demoInner[i], ListenPort: demoPort, MTU: config.DefaultMTU},
			Peers: []config.Peer{{
				PublicKey:  keys[o].Public(),
				Endpoint:   netip.AddrPortFrom(demoOuter[o].Addr(), demoPort).String(),
				AllowedIPs: []netip.Prefix{netip.PrefixFrom(demoInner[o][0].Addr(), 32), netip.PrefixFrom(demoInner[o][1].Addr(), 128)},
			}},
		}
		if err := os.WriteFile(e.conf, []byte(cfg.Format()), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(out, "Wrote %s: tunnel %s is %s and %s, public key %s.\n", e.conf, e.label, demoInner[i][0], demoInner[i][1], keys[i].Public())
	}
	return nil
}

// start runs the client in the end's namespace, in its own process group
// so a Ctrl-C reaches only the demo, which then stops the tunnels in
// order.
func (e *demoEnd) start(exe, engine, logLevel, stateDir string) error {
	logf, err := os.Create(e.log)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	e.cmd = e.ns.Command(context.Background(), exe, "--log-level", logLevel, "standalone",
		"--config", e.conf, "--interface", e.iface, "--engine", engine, "--state-dir", stateDir)
	e.cmd.Env = append(os.Environ(), "PIPEGUARD_ID=demo-"+strings.ToLower(e.label))
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := e.cmd.Start(); err != nil {
		return err
	}
	e.exit = make(chan error, 1)
	go func() { e.exit <- e.cmd.Wait() }()
	return nil
}

// waitReady waits for the tunnel's UAPI socket, the last thing it opens.
func (e *demoEnd) waitReady() error {
	deadline := time.Now().Add(demoReady)
	for time.Now().Before(deadline) {
		select {
		case err := <-e.exit:
			e.exit <- err
			return fmt.Errorf("headless-client: demo tunnel %s exited at start (%v); its log is below", e.label, err)
		case <-time.After(20 * time.Millisecond):
		}
		if c, err := net.Dial("unix", uapi.SocketPath(e.iface)); err == nil {
			c.Close()
			return nil
		}
	}
	return fmt.Errorf("headless-client: demo tunnel %s did not come up within %v", e.label, demoReady)
}

// stop sends SIGTERM and waits for an orderly exit, as systemd would.
func (e *demoEnd) stop(out io.Writer) {
	e.cmd.Process.Signal(syscall.SIGTERM)
	start := time.Now()
	select {
	case err := <-e.exit:
		e.exit <- err
		took := time.Since(start).Round(time.Millisecond)
		left := "its interface and UAPI socket are gone"
		if _, serr := os.Stat(uapi.SocketPath(e.iface)); serr == nil {
			left = "but its UAPI socket " + uapi.SocketPath(e.iface) + " is still there"
		} else if _, lerr := e.ns.Run("ip", "link", "show", e.iface); lerr == nil {
			left = "but its interface " + e.iface + " is still there"
		}
		fmt.Fprintf(out, "  stopped tunnel %s with SIGTERM in %v (exit: %v); %s\n", e.label, took, exitText(err), left)
	case <-time.After(3 * time.Second):
		e.cmd.Process.Kill()
		fmt.Fprintf(out, "  tunnel %s ignored SIGTERM for 3 s; killed it\n", e.label)
	}
}

func exitText(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}

// printTail prints the end of an end's log, after a failure.
func printTail(out io.Writer, e *demoEnd) {
	b, _ := os.ReadFile(e.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	fmt.Fprintf(out, "\nLast lines of tunnel %s's log:\n%s", e.label, indent(strings.Join(lines[max(0, len(lines)-15):], "\n")+"\n"))
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ") + "\n"
}
