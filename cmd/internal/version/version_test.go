package version

import (
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	info := func(main string, settings ...debug.BuildSetting) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Main: debug.Module{Path: "pipeguard", Version: main}, Settings: settings}, true
		}
	}
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "b5f5ad5c0ffee0123456789abcdef0123456789a"}
	modified := debug.BuildSetting{Key: "vcs.modified", Value: "true"}
	for _, tc := range []struct {
		name    string
		stamped string
		info    func() (*debug.BuildInfo, bool)
		want    string
	}{
		{"stamped wins", "0.0.0~git74.gb5f5ad5", info("v1.2.3", rev), "0.0.0~git74.gb5f5ad5"},
		{"module version", "", info("v1.2.3", rev), "1.2.3"},
		{"pseudo-version", "", info("v0.0.0-20260102030405-b5f5ad5c0ffe"), "0.0.0-20260102030405-b5f5ad5c0ffe"},
		{"revision", "", info("(devel)", rev), "devel+b5f5ad5c0ffe"},
		{"dirty revision", "", info("(devel)", rev, modified), "devel+b5f5ad5c0ffe.dirty"},
		{"no vcs", "", info("(devel)"), "devel"},
		{"no build info", "", func() (*debug.BuildInfo, bool) { return nil, false }, "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := resolve(tc.stamped, tc.info); got != tc.want {
				t.Errorf("resolve = %q, want %q", got, tc.want)
			}
		})
	}
}
