package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// errDeviceID is wrapped by every device id failure.
var errDeviceID = errors.New("headless-client: device id")

// maxDeviceID bounds an id read from the environment or the file: an id
// is a name for logs and management, not a document.
const maxDeviceID = 128

// deviceIDFile is where the id lives under the state directory.
func deviceIDFile(stateDir string) string {
	return filepath.Join(stateDir, "config", "pipeguard-id")
}

// deviceID returns the device id: env (PIPEGUARD_ID) if set, else the
// file's content, else a new random id written to the file (mode 0600,
// directory 0700) so it stays the same across restarts. It reports where
// the id came from, for the start-up log.
func deviceID(env, path string) (id, source string, err error) {
	if env != "" {
		if err := checkDeviceID(env); err != nil {
			return "", "", fmt.Errorf("%w: PIPEGUARD_ID: %v", errDeviceID, err)
		}
		return env, "PIPEGUARD_ID", nil
	}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		if err := checkDeviceID(id); err != nil {
			return "", "", fmt.Errorf("%w: %s: %v", errDeviceID, path, err)
		}
		return id, path, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", "", fmt.Errorf("%w: %v", errDeviceID, err)
	}
	id = rand.Text() // 26 base32 characters, 130 bits: unique without coordination
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", "", fmt.Errorf("%w: %v", errDeviceID, err)
	}
	// O_EXCL: if another instance wrote one meanwhile, keep theirs.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return deviceID("", path)
	}
	if err != nil {
		return "", "", fmt.Errorf("%w: %v", errDeviceID, err)
	}
	_, werr := f.WriteString(id + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return "", "", fmt.Errorf("%w: %v", errDeviceID, werr)
	}
	return id, path + " (new)", nil
}

// checkDeviceID accepts 1 to maxDeviceID printable ASCII characters
// without spaces, so an id is safe in logs and file names.
func checkDeviceID(id string) error {
	if id == "" || len(id) > maxDeviceID {
		return fmt.Errorf("must have 1 to %d characters", maxDeviceID)
	}
	for _, c := range []byte(id) {
		if c <= ' ' || c > '~' {
			return errors.New("must be printable ASCII without spaces")
		}
	}
	return nil
}
