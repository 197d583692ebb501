package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"pipeguard/cmd/internal/version"
)

// TestMain lets tests run the real binary: a child started with
// PIPEGUARD_RUN_MAIN=1 is main itself, with exit codes and all.
func TestMain(m *testing.M) {
	if os.Getenv("PIPEGUARD_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runMain runs the binary with args and stdin, returning stdout, stderr and
// the exit code.
func runMain(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "PIPEGUARD_RUN_MAIN=1")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// wgTool runs Debian's `wg` with stdin. In CI it must exist (setup
// installs wireguard-tools); elsewhere the test skips without it.
func wgTool(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("wg")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("wg (wireguard-tools) is not installed; scripts/setup.sh installs it")
		}
		t.Skip("wg (wireguard-tools) not installed")
	}
	cmd := exec.Command(path, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("wg %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

func TestKeysAgreeWithWG(t *testing.T) {
	for range 5 {
		// Our private key, both public keys.
		priv, _, code := runMain(t, "", "genkey")
		if code != 0 {
			t.Fatalf("genkey exit %d", code)
		}
		priv = strings.TrimSpace(priv)
		ours, _, code := runMain(t, priv+"\n", "pubkey")
		if code != 0 {
			t.Fatalf("pubkey exit %d", code)
		}
		if theirs := wgTool(t, priv+"\n", "pubkey"); strings.TrimSpace(ours) != theirs {
			t.Fatalf("pubkey of our key %s: ours %q, wg %q", priv, ours, theirs)
		}
		// wg's private key, both public keys.
		wgPriv := wgTool(t, "", "genkey")
		ours, _, code = runMain(t, wgPriv+"\n", "pubkey")
		if code != 0 {
			t.Fatalf("pubkey exit %d", code)
		}
		if theirs := wgTool(t, wgPriv+"\n", "pubkey"); strings.TrimSpace(ours) != theirs {
			t.Fatalf("pubkey of wg key %s: ours %q, wg %q", wgPriv, ours, theirs)
		}
	}
}

func TestPubkeyRejectsMalformedInput(t *testing.T) {
	for name, in := range map[string]string{
		"empty":         "",
		"not base64":    "this is not a key at all, not even close!!!!\n",
		"short":         "AAAA\n",
		"31 bytes":      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n",
		"trailing junk": "2KWSSiqwaJ4QI9CTCCnk1s5sKk8jRdc5xaIedvbTonY= extra\n",
		"two keys":      "2KWSSiqwaJ4QI9CTCCnk1s5sKk8jRdc5xaIedvbTonY=\n2KWSSiqwaJ4QI9CTCCnk1s5sKk8jRdc5xaIedvbTonY=\n",
	} {
		t.Run(name, func(t *testing.T) {
			out, errOut, code := runMain(t, in, "pubkey")
			if code != 1 {
				t.Fatalf("exit code %d, want 1 (stdout %q)", code, out)
			}
			if out != "" {
				t.Errorf("printed %q on stdout for bad input", out)
			}
			if !strings.Contains(errOut, "private key") {
				t.Errorf("stderr %q does not say what is wrong", errOut)
			}
		})
	}
}

func TestPubkeyAcceptsWGFormats(t *testing.T) {
	// wg prints keys with a newline; files often have CRLF or none.
	const priv = "2KWSSiqwaJ4QI9CTCCnk1s5sKk8jRdc5xaIedvbTonY="
	var outs []string
	for _, in := range []string{priv, priv + "\n", priv + "\r\n", "  " + priv + "  \n"} {
		out, errOut, code := runMain(t, in, "pubkey")
		if code != 0 {
			t.Fatalf("input %q: exit %d: %s", in, code, errOut)
		}
		outs = append(outs, out)
	}
	for _, o := range outs[1:] {
		if o != outs[0] {
			t.Fatalf("outputs differ: %q", outs)
		}
	}
}

// TestVersionFlag: --version prints the name and the version the build
// recorded, and exits 0 without running a command.
func TestVersionFlag(t *testing.T) {
	out, errOut, code := runMain(t, "", "--version")
	if code != 0 || errOut != "" {
		t.Fatalf("--version: exit %d, stderr %q", code, errOut)
	}
	if want := version.Line("pipeguard-headless-client") + "\n"; out != want {
		t.Errorf("--version printed %q, want %q", out, want)
	}
}
