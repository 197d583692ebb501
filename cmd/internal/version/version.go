// Package version tells which PipeGuard this binary is: the version the
// build stamped into it (the Makefile passes scripts/version.sh's output,
// a Debian version derived from git describe, with -ldflags -X), or, for
// a plain `go build` or `go install`, what the Go toolchain recorded in
// the build info (the module version, or the VCS revision).
package version

import (
	"runtime/debug"
	"strings"
)

// stamped is set at link time:
//
//	go build -ldflags "-X pipeguard/cmd/internal/version.stamped=1.2.3"
//
// It is the one package-level variable the linker can set; nothing
// writes it at run time.
var stamped string

// String returns the version: the stamped one, else the build info's.
func String() string {
	return resolve(stamped, debug.ReadBuildInfo)
}

// Line is what `NAME --version` prints: the name and the version.
func Line(name string) string { return name + " " + String() }

// resolve picks the version from what was stamped and the build info;
// apart from String for tests.
func resolve(stamped string, info func() (*debug.BuildInfo, bool)) string {
	if stamped != "" {
		return stamped
	}
	bi, ok := info()
	if !ok {
		return "unknown"
	}
	// `go install pipeguard/...@v1.2.3` records the module version; a
	// build inside the repository records "(devel)".
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return strings.TrimPrefix(v, "v")
	}
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		// Built with -buildvcs=false (or outside git) and not by make.
		return "devel"
	}
	v := "devel+" + rev[:min(len(rev), 12)]
	if dirty {
		v += ".dirty"
	}
	return v
}
