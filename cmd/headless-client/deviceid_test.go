package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pipeguard/cmd/headless-client/config"
	"pipeguard/noise"
)

func TestDeviceID(t *testing.T) {
	dir := t.TempDir()
	path := deviceIDFile(dir)

	// The environment wins and writes nothing.
	id, from, err := deviceID("host-42", dir)
	if err != nil || id != "host-42" || from != "PIPEGUARD_ID" {
		t.Fatalf("env: %q %q %v", id, from, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("env id wrote the file: %v", err)
	}

	// First start: a new id, in a 0600 file in a 0700 directory.
	first, from, err := deviceID("", dir)
	if err != nil || !strings.HasSuffix(from, "(new)") || len(first) != 26 {
		t.Fatalf("new: %q %q %v", first, from, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("id file: %v %v", fi.Mode(), err)
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("id directory mode %v", di.Mode())
	}
	// Later starts read the same id.
	again, from, err := deviceID("", dir)
	if err != nil || again != first || from != path {
		t.Fatalf("again: %q (first %q) %q %v", again, first, from, err)
	}
	// Another machine's id differs.
	other, _, _ := deviceID("", t.TempDir())
	if other == first {
		t.Fatal("two new ids are equal")
	}
}

// TestLookupDeviceIDWritesNothing: a start finds its id first and writes
// a new one only once nothing can refuse it any more (save); a refused
// start and --check leave no file.
func TestLookupDeviceIDWritesNothing(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	p, err := lookupDeviceID("", state)
	if err != nil || len(p.id) != 26 || p.stateDir != state {
		t.Fatalf("lookup: %+v %v", p, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("lookup created %v", ents)
	}
	if err := p.save(); err != nil {
		t.Fatal(err)
	}
	if got, _, err := deviceID("", state); err != nil || got != p.id {
		t.Errorf("saved %q, read back %q (%v)", p.id, got, err)
	}
	// Two starts that both found no id: the second keeps the first's.
	path2 := filepath.Join(dir, "other")
	p1, _ := lookupDeviceID("", path2)
	p2, _ := lookupDeviceID("", path2)
	if err := p1.save(); err != nil {
		t.Fatal(err)
	}
	if err := p2.save(); err != nil || p2.id != p1.id {
		t.Errorf("second save: %q (%v), want the first's %q", p2.id, err, p1.id)
	}
	// Under a file, no id can be made: refused at lookup.
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o600)
	if _, err := lookupDeviceID("", filepath.Join(dir, "file")); !errors.Is(err, errDeviceID) {
		t.Errorf("uncreatable: %v", err)
	}
}

func TestDeviceIDRejectsBadValues(t *testing.T) {
	for _, bad := range []string{"has space", "tab\there", strings.Repeat("x", maxDeviceID+1), "ünïcode"} {
		if _, _, err := deviceID(bad, "/nonexistent"); !errors.Is(err, errDeviceID) {
			t.Errorf("env %q: %v, want errDeviceID", bad, err)
		}
	}
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "config"), 0o700)
	os.WriteFile(deviceIDFile(dir), []byte("\n\n"), 0o600)
	if _, _, err := deviceID("", dir); !errors.Is(err, errDeviceID) {
		t.Errorf("empty file: %v, want errDeviceID", err)
	}
}

func TestInterfaceChanges(t *testing.T) {
	base := standaloneTestInterface(t)
	changed := base
	changed.ListenPort, changed.MTU = 1, 1000
	changed.PrivateKey[0]++
	got := interfaceChanges(&base, &changed)
	if strings.Join(got, ",") != "MTU" {
		t.Errorf("changes %v, want MTU alone (a reload applies the key and the port)", got)
	}
	if got := interfaceChanges(&base, &base); len(got) != 0 {
		t.Errorf("no change reported as %v", got)
	}
}

func standaloneTestInterface(t *testing.T) config.Interface {
	t.Helper()
	k, err := noise.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return config.Interface{PrivateKey: k, ListenPort: 51820, MTU: 1280}
}
