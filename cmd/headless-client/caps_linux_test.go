package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestHasEffectiveCap(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		status string
		want   bool
		err    bool
	}{
		{"Name:\tx\nCapEff:\t000001ffffffffff\n", true, false}, // root
		{"CapEff:\t0000000000001000\n", true, false},           // only CAP_NET_ADMIN
		{"CapEff:\t0000000000000000\n", false, false},          // an ordinary user
		{"CapEff:\t000001ffffffefff\n", false, false},          // all but bit 12
		{"CapInh:\t0\n", false, true},
		{"CapEff:\tzz\n", false, true},
	} {
		p := filepath.Join(dir, "status")
		os.WriteFile(p, []byte(tc.status), 0o600)
		got, err := hasEffectiveCap(p, capNetAdmin)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%q: %v, %v; want %v, error %v", tc.status, got, err, tc.want, tc.err)
		}
	}
}
