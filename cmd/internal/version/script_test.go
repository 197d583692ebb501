package version

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// debianNative is a Debian version without epoch or revision (Debian
// policy 5.6.12): a digit first, then alphanumerics and . + ~.
var debianNative = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)

// TestVersionScript runs scripts/version.sh on a scratch repository
// through a release's life, and checks each version is a valid Debian
// version that sorts after the one before.
func TestVersionScript(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	script, err := filepath.Abs("../../../scripts/version.sh")
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = repo
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	commit := func() {
		t.Helper()
		f := filepath.Join(repo, "f")
		b, _ := os.ReadFile(f)
		if err := os.WriteFile(f, append(b, 'x'), 0o644); err != nil {
			t.Fatal(err)
		}
		git("add", "f")
		git("commit", "-q", "-m", "c")
	}
	version := func() string {
		t.Helper()
		out, err := exec.Command(script, repo).Output()
		if err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		return strings.TrimSpace(string(out))
	}
	hash := func() string {
		out, err := exec.Command("git", "-C", repo, "rev-parse", "--short=7", "HEAD").Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}

	git("init", "-q")
	var prev string
	check := func(want string) {
		t.Helper()
		got := version()
		if got != want {
			t.Errorf("version = %q, want %q", got, want)
		}
		if !debianNative.MatchString(got) {
			t.Errorf("version %q is not a valid Debian native version", got)
		}
		if prev != "" && dpkgAvailable() {
			if err := exec.Command("dpkg", "--compare-versions", got, "gt", prev).Run(); err != nil {
				t.Errorf("dpkg: %q does not sort after %q", got, prev)
			}
		}
		prev = got
	}
	commit()
	check("0.0.0~git1.g" + hash())
	commit()
	check("0.0.0~git2.g" + hash())
	git("tag", "v0.1.0-rc1")
	check("0.1.0~rc1")
	commit()
	check("0.1.0~rc1+1.g" + hash())
	git("tag", "v0.1.0")
	check("0.1.0")
	commit()
	commit()
	check("0.1.0+2.g" + hash())
	if err := os.WriteFile(filepath.Join(repo, "f"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	check("0.1.0+2.g" + hash() + ".dirty")
}

func dpkgAvailable() bool {
	_, err := exec.LookPath("dpkg")
	return err == nil
}
