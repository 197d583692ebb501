package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// capNetAdmin is CAP_NET_ADMIN's bit in the capability sets.
const capNetAdmin = 12

// errNoNetAdmin is the refusal when the process cannot configure
// networks; the text says how to grant it.
var errNoNetAdmin = errors.New("headless-client: missing CAP_NET_ADMIN (needed to create the TUN device and its routes)")

// checkNetAdmin reports errNoNetAdmin (with the binary's path in the
// hint) unless CAP_NET_ADMIN is in the effective set.
func checkNetAdmin() error {
	have, err := hasEffectiveCap("/proc/self/status", capNetAdmin)
	if err != nil {
		return fmt.Errorf("headless-client: cannot tell the process's capabilities: %w", err)
	}
	if !have {
		exe, _ := os.Executable()
		return fmt.Errorf("%w: run as root, or grant it with: sudo setcap cap_net_admin+eip %s", errNoNetAdmin, exe)
	}
	return nil
}

// hasEffectiveCap reads the CapEff line of a /proc status file.
func hasEffectiveCap(statusPath string, bit uint) (bool, error) {
	f, err := os.Open(statusPath)
	if err != nil {
		return false, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return false, fmt.Errorf("CapEff %q: %w", v, err)
			}
			return caps&(1<<bit) != 0, nil
		}
	}
	if err := s.Err(); err != nil {
		return false, err
	}
	return false, errors.New("no CapEff line in " + statusPath)
}
