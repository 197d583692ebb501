package netns_test

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"pipeguard/cmd/internal/netnstest"
)

// TestDoComesHome checks that the thread Do ran fn on is, once Do has
// returned, back in the process's own namespace, and alive: had it been
// left to the runtime to end, the main thread (which the runtime never
// ends) would stay in the namespace for good.
func TestDoComesHome(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t)
	home, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		var tid int
		var inside string
		err := ns.Do(func() (err error) {
			tid = unix.Gettid()
			inside, err = os.Readlink("/proc/thread-self/ns/net")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if inside == home {
			t.Fatalf("fn ran in the process's own namespace %s", home)
		}
		after, err := os.Readlink(fmt.Sprintf("/proc/self/task/%d/ns/net", tid))
		if err != nil || after != home {
			t.Fatalf("thread %d after Do: namespace %q (%v), want back in %s", tid, after, err, home)
		}
	}
}
