package e2e

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pipeguard/cmd/headless-client/uapi"
	"pipeguard/cmd/internal/selfcopy"
	"pipeguard/noise"
)

// serviceUID stands for the pipeguard user, whom the units run the
// tunnel as: a uid no account uses.
const serviceUID = 64000

// The helper modes of this test binary, chosen by environment in
// TestMain: the impostor a compromised service user would run, and the
// old takeover replayed as root in a private mount namespace.
const (
	impostorEnv = "PIPEGUARD_E2E_IMPOSTOR"     // the socket path to take over
	takeoverEnv = "PIPEGUARD_E2E_TAKEOVER_DIR" // the service user's directory to mount on /run/wireguard
)

// helperMain runs the helper mode the environment asks for, if any, and
// reports whether it did (and with which exit code).
func helperMain() (int, bool) {
	if path := os.Getenv(impostorEnv); path != "" {
		return impostorMain(path), true
	}
	if dir := os.Getenv(takeoverEnv); dir != "" {
		return takeoverMain(dir), true
	}
	return 0, false
}

// impostorMain is what the review's listener did, as the service user:
// remove the socket at path, listen there itself, and print the first
// request a client sends (root's wg set: the private key among it),
// answering errno=0 as a tunnel would. It exits 3 if it cannot take the
// path.
func impostorMain(path string) int {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Println("refused:", err)
		return 3
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		fmt.Println("refused:", err)
		return 3
	}
	defer ln.Close()
	fmt.Println("listening")
	// wg first connects only to see that the interface exists, and
	// closes; the request comes on a later connection.
	ln.SetDeadline(time.Now().Add(60 * time.Second))
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Println("accept:", err)
			return 4
		}
		if serveImpostor(c) {
			return 0
		}
	}
}

// serveImpostor prints the request on c, if one comes, and answers it.
func serveImpostor(c net.Conn) bool {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	got := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return false
		}
		if line = strings.TrimSuffix(line, "\n"); line == "" {
			break
		}
		fmt.Println("got:", line)
		got = true
	}
	io.WriteString(c, "errno=0\n\n")
	return got
}

// takeoverMain replays the takeover under the layout the units had: in
// this process's private mount namespace, /run/wireguard is dir, a
// directory of the service user. Root's tunnel socket is there (a root
// listener stands for it), the impostor replaces it as the service user,
// and root's wg set talks to the impostor. It prints what wg and the
// impostor said.
func takeoverMain(dir string) int {
	iface, impostor, keyFile := os.Getenv("PIPEGUARD_E2E_IFACE"), os.Getenv("PIPEGUARD_E2E_IMPOSTOR_BIN"), os.Getenv("PIPEGUARD_E2E_KEYFILE")
	uid, _ := strconv.Atoi(os.Getenv("PIPEGUARD_E2E_UID"))
	if err := unix.Mount(dir, "/run/wireguard", "", unix.MS_BIND, ""); err != nil {
		fmt.Println("mount:", err)
		return 2
	}
	path := uapi.SocketPath(iface)
	old := unix.Umask(0o177)
	root, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		fmt.Println("root's socket:", err)
		return 2
	}
	defer root.Close()
	imp, lines, err := startImpostor(impostor, path, uid)
	if err != nil {
		fmt.Println("impostor:", err)
		return 2
	}
	if first := <-lines; first != "listening" {
		fmt.Println("impostor:", first)
		imp.Wait()
		return 0
	}
	out, err := exec.Command("wg", "set", iface, "private-key", keyFile, "listen-port", "51820").CombinedOutput()
	fmt.Printf("wg set: %v %q\n", err, out)
	for l := range lines {
		fmt.Println("impostor:", l)
	}
	imp.Wait()
	return 0
}

// startImpostor runs the impostor (this test binary, at bin) as uid,
// with no groups, against path; its output lines come on the channel,
// which closes when it exits.
func startImpostor(bin, path string, uid int) (*exec.Cmd, <-chan string, error) {
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), impostorEnv+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		s := bufio.NewScanner(out)
		for s.Scan() {
			lines <- s.Text()
		}
	}()
	return cmd, lines, nil
}

// impostorBinary copies this test binary where uid can run it: the build
// directory is root's alone.
func impostorBinary(t *testing.T) string {
	t.Helper()
	return selfcopy.ForOthers(t, "impostor")
}

// runImpostor runs the impostor as uid against path and returns its exit
// code and output. It must not get as far as listening.
func runImpostor(t *testing.T, bin, path string, uid int) (int, string) {
	t.Helper()
	cmd, lines, err := startImpostor(bin, path, uid)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for l := range lines {
		out = append(out, l)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), strings.Join(out, "\n")
}

// keyFile writes a new private key for wg set and returns the file and
// the key's hex, as the UAPI protocol carries it.
func keyFile(t *testing.T) (path, hexKey string, k noise.PrivateKey) {
	t.Helper()
	k, err := noise.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "new.key")
	if err := os.WriteFile(path, []byte(k.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, hex.EncodeToString(k[:]), k
}

// TestSocketTakeover replays the review's takeover of /run/wireguard:
// root runs a tunnel; as the service user, a listener replaces its
// socket; root's `wg set IF private-key … listen-port 51820` then hands
// the key to the listener.
//
//   - Under the old layout (/run/wireguard the service user's, as
//     RuntimeDirectory= made it; here in a private mount namespace) the
//     takeover works, which shows that the impostor below is a real one;
//     and PipeGuard, run as root, now refuses to start there, with one
//     line, tunnel and standalone alike.
//   - Under the new one (root's /run/wireguard, 0755) the service user
//     cannot remove or replace the socket of root's tunnel, and root's wg
//     set reaches the tunnel.
func TestSocketTakeover(t *testing.T) {
	b := binaries(t)
	t.Parallel()
	for _, tool := range []string{"unshare", "wg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed: %v", tool, err)
		}
	}
	impostor := impostorBinary(t)
	key, keyHex, k := keyFile(t)
	a, _ := newNodes(t)

	// The old layout: a directory of the service user's stands for
	// /run/wireguard.
	shared := filepath.Join(filepath.Dir(impostor), "run-wireguard")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(shared, serviceUID, serviceUID); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	replay := exec.Command(self)
	replay.Env = append(os.Environ(), takeoverEnv+"="+shared, "PIPEGUARD_E2E_IFACE="+a.iface,
		"PIPEGUARD_E2E_IMPOSTOR_BIN="+impostor, "PIPEGUARD_E2E_KEYFILE="+key, "PIPEGUARD_E2E_UID="+strconv.Itoa(serviceUID))
	replay.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := replay.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "wg set: <nil>") || !strings.Contains(string(out), "impostor: got: private_key="+keyHex) {
		t.Fatalf("the old takeover did not replay (wg set should succeed and hand the impostor the key): %v\n%s", err, out)
	}
	t.Logf("old layout: root's wg set handed the service user's impostor the private key (as the review found)")

	// PipeGuard as root under the old layout: refused before anything is
	// made, with one line.
	a.writeConfig(t)
	for _, cmd := range [][]string{
		{"tunnel", "--foreground", "--state-dir", t.TempDir(), a.iface},
		{"standalone", "--config", a.conf, "--interface", a.iface, "--state-dir", t.TempDir()},
	} {
		p := start(t, a.ns, "root client under the old layout", "unshare", []string{"PIPEGUARD_ID=e2e-takeover"},
			append([]string{"--mount", "--propagation", "private", "--",
				"sh", "-c", `mount --bind "$0" /run/wireguard && exec "$@"`, shared, b.client}, cmd...)...)
		select {
		case err := <-p.exit:
			p.exit <- err
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("%s: exit %v, want 1", cmd[0], err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s under the old layout did not exit\n%s", cmd[0], p.out)
		}
		msg := strings.TrimSpace(p.out.String())
		if strings.Contains(msg, "\n") || !strings.Contains(msg, "/run/wireguard") || !strings.Contains(msg, "belongs to uid 64000") {
			t.Errorf("%s: want one line naming /run/wireguard and its owner, got:\n%s", cmd[0], msg)
		}
		if out, err := a.ns.Run("ip", "link", "show", a.iface); err == nil {
			t.Errorf("%s made interface %s:\n%s", cmd[0], a.iface, out)
		}
	}

	// The new layout: root's /run/wireguard.
	var st syscall.Stat_t
	if err := syscall.Stat("/run/wireguard", &st); err != nil || st.Uid != 0 || st.Mode&0o022 != 0 {
		t.Fatalf("/run/wireguard: uid %d mode %04o (%v): this machine's should be root's, 0755", st.Uid, st.Mode&0o7777, err)
	}
	startEmptyTunnel(t, b, a)
	path := uapi.SocketPath(a.iface)
	code, said := runImpostor(t, impostor, path, serviceUID)
	if code != 3 || !strings.Contains(said, "permission denied") {
		t.Errorf("the impostor: exit %d, %q; want 3, permission denied", code, said)
	}
	wg(t, "set", a.iface, "private-key", key, "listen-port", "51820")
	if got := strings.TrimSpace(wg(t, "show", a.iface, "private-key")); got != k.String() {
		t.Errorf("root's wg set did not reach the tunnel: private key %q", got)
	}
	if err := syscall.Stat(path, &st); err != nil || st.Uid != 0 || st.Mode&0o777 != 0o600 {
		t.Errorf("%s: uid %d mode %04o (%v), want root's 0600", path, st.Uid, st.Mode&0o7777, err)
	}
}
