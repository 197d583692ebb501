package resolvedtest

import (
	"strings"
	"testing"
)

// TestFakeRecordsAndRefuses: the fake records a call with resolved's
// signature, and refuses one with another signature or an unknown
// method, as resolved would, so tests of the client can fail.
func TestFakeRecordsAndRefuses(t *testing.T) {
	f := Start(t)
	conn, err := f.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	o := conn.Object("org.freedesktop.resolve1", "/org/freedesktop/resolve1")
	const m = "org.freedesktop.resolve1.Manager."
	if err := o.Call(m+"SetLinkDNS", 0, int32(3), []DNSServer{{2, []byte{10, 0, 0, 1}}}).Err; err != nil {
		t.Fatalf("a correct call: %v", err)
	}
	// (ay) instead of (iay), uint32 instead of int32, a wrong name.
	type onlyBytes struct{ Address []byte }
	for what, err := range map[string]error{
		"a(ay)":        o.Call(m+"SetLinkDNS", 0, int32(3), []onlyBytes{{[]byte{10, 0, 0, 1}}}).Err,
		"u for i":      o.Call(m+"RevertLink", 0, uint32(3)).Err,
		"SetLinkDNSes": o.Call(m+"SetLinkDNSes", 0, int32(3)).Err,
	} {
		if err == nil {
			t.Errorf("%s: accepted", what)
		}
	}
	if got := strings.Join(f.Calls(), "\n"); got != "SetLinkDNS ia(iay) 3 [(2 10.0.0.1)]" {
		t.Errorf("calls: %q", got)
	}
}
