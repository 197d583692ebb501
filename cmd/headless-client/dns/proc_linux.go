package dns

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// procStart returns the start time of process pid (clock ticks after
// boot, field 22 of /proc/PID/stat), which tells a live process from a
// later one that reused its pid.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return statStart(string(b))
}

// statStart parses the start time out of a /proc/PID/stat line.
func statStart(stat string) (uint64, error) {
	// The command name (field 2) is in parentheses and may hold spaces
	// and parentheses itself: the fields after it follow the last ')'.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("dns: malformed /proc stat")
	}
	f := strings.Fields(stat[i+1:])
	const startField = 22 - 3 // fields after ')' begin with field 3
	if len(f) <= startField {
		return 0, errors.New("dns: short /proc stat")
	}
	return strconv.ParseUint(f[startField], 10, 64)
}
