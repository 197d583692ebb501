package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"pipeguard/cmd/headless-client/safedir"
)

// errDeviceID is wrapped by every device id failure.
var errDeviceID = errors.New("headless-client: device id")

// maxDeviceID bounds an id read from the environment or the file: an id
// is a name for logs and management, not a document.
const maxDeviceID = 128

// The id lives in <state>/config/pipeguard-id.
const (
	deviceIDDir  = "config"
	deviceIDName = "pipeguard-id"
)

// maxDeviceIDFile bounds what is read of the file: an id, a newline and
// some blanks.
const maxDeviceIDFile = 4 * maxDeviceID

// deviceIDFile is where the id lives under the state directory.
func deviceIDFile(stateDir string) string {
	return filepath.Join(stateDir, deviceIDDir, deviceIDName)
}

// deviceID looks the device id up and saves a new one at once (see
// lookupDeviceID), for a command that has nothing left to refuse.
func deviceID(env, stateDir string) (id, source string, err error) {
	p, err := lookupDeviceID(env, stateDir)
	if err == nil {
		err = p.save()
	}
	return p.id, p.source, err
}

// deviceIDPlan is the device id a start will use, found without writing
// anything.
type deviceIDPlan struct {
	id, source string
	stateDir   string // where a new id goes; "" when there is nothing to write
}

// lookupDeviceID returns the device id: env (PIPEGUARD_ID) if set, else
// the file's content, else a new random id, which save writes to the
// file (mode 0600, directory 0700) so it stays the same across restarts.
// The file is read only from trusted directories (package safedir), never
// through a link: a root process must not log, as its id, a file another
// user pointed it at. It writes nothing itself: for a new id it only
// checks that the file can be made, and the start saves it once nothing
// can refuse the start any more, so a refused start (and --check) creates
// no file. The plan says where the id came from, for the start-up log.
func lookupDeviceID(env, stateDir string) (deviceIDPlan, error) {
	if env != "" {
		if err := checkDeviceID(env); err != nil {
			return deviceIDPlan{}, fmt.Errorf("%w: PIPEGUARD_ID: %v", errDeviceID, err)
		}
		return deviceIDPlan{id: env, source: "PIPEGUARD_ID"}, nil
	}
	path := deviceIDFile(stateDir)
	b, err := readDeviceID(stateDir)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		if err := checkDeviceID(id); err != nil {
			return deviceIDPlan{}, fmt.Errorf("%w: %s: %v", errDeviceID, path, err)
		}
		return deviceIDPlan{id: id, source: path}, nil
	case !errors.Is(err, os.ErrNotExist):
		return deviceIDPlan{}, fmt.Errorf("%w: %w", errDeviceID, err)
	}
	if err := safedir.Check(filepath.Dir(path)); err != nil {
		return deviceIDPlan{}, fmt.Errorf("%w: %w", errDeviceID, err)
	}
	if err := canCreate(path); err != nil {
		return deviceIDPlan{}, fmt.Errorf("%w: cannot create %s: %v", errDeviceID, path, err)
	}
	// 26 base32 characters, 130 bits: unique without coordination.
	return deviceIDPlan{id: rand.Text(), source: path + " (new)", stateDir: stateDir}, nil
}

// readDeviceID reads the id file; a missing file or directory is
// os.ErrNotExist.
func readDeviceID(stateDir string) ([]byte, error) {
	d, err := safedir.Open(stateDir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	c, err := d.Sub(deviceIDDir, 0)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ReadFile(deviceIDName, maxDeviceIDFile)
}

// save writes a new id to its file; for an id that was found, it does
// nothing.
func (p *deviceIDPlan) save() error {
	if p.stateDir == "" {
		return nil
	}
	d, err := safedir.MkdirAll(p.stateDir, 0o700)
	if err != nil {
		return fmt.Errorf("%w: %v", errDeviceID, err)
	}
	defer d.Close()
	c, err := d.Sub(deviceIDDir, 0o700)
	if err != nil {
		return fmt.Errorf("%w: %v", errDeviceID, err)
	}
	defer c.Close()
	// O_EXCL: if another instance wrote one meanwhile, keep theirs.
	f, err := c.OpenFile(deviceIDName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		theirs, err := lookupDeviceID("", p.stateDir)
		if err != nil {
			return err
		}
		*p = theirs
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %v", errDeviceID, err)
	}
	_, werr := f.WriteString(p.id + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		c.Remove(deviceIDName)
		return fmt.Errorf("%w: %v", errDeviceID, werr)
	}
	p.stateDir = ""
	return nil
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
