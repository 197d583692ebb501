package main

import "strings"

// wireguardGoName is the name under which the binary takes wireguard-go's
// command line; `make install` and the package link it to the binary, so
// that WG_QUICK_USERSPACE_IMPLEMENTATION=pipeguard-go wg-quick up wg0
// works.
const wireguardGoName = "pipeguard-go"

// wireguardGoUsage is wireguard-go's usage line, under our name.
const wireguardGoUsage = "Usage: " + wireguardGoName + " [-f/--foreground] INTERFACE-NAME"

// wireguardGoArgs turns wireguard-go's command line into this program's:
// `[-f|--foreground] IFACE` becomes `tunnel [--foreground] IFACE` (and,
// as there, WG_PROCESS_FOREGROUND=1 also keeps it in the foreground);
// `--version` asks for the version. ok is false for anything else.
func wireguardGoArgs(args []string) (out []string, version, ok bool) {
	switch {
	case len(args) == 1 && args[0] == "--version":
		return nil, true, true
	case len(args) == 1 && !strings.HasPrefix(args[0], "-"):
		return []string{"tunnel", "--", args[0]}, false, true
	case len(args) == 2 && (args[0] == "-f" || args[0] == "--foreground"):
		return []string{"tunnel", "--foreground", "--", args[1]}, false, true
	}
	return nil, false, false
}
