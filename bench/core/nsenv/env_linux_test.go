package nsenv_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"pipeguard/bench/core/nsenv"
	"pipeguard/bench/core/nsenv/nsenvtest"
)

// TestSetCongestionControl: the algorithm set is the one both namespaces
// have afterwards, whatever the machine's default; one the kernel does
// not offer is refused with the ones it does.
func TestSetCongestionControl(t *testing.T) {
	nsenvtest.Require(t, nsenv.Usable("ip"))
	env, err := nsenv.NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	for _, algo := range []string{"reno", "cubic"} {
		if err := env.SetCongestionControl(algo); err != nil {
			t.Fatalf("%s: %v", algo, err)
		}
		for _, ns := range []string{env.A, env.B} {
			var got []byte
			if err := nsenv.InNetns(ns, func() (err error) {
				got, err = os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if s := strings.TrimSpace(string(got)); s != algo {
				t.Errorf("%s has %q after setting %q", ns, s, algo)
			}
		}
	}
	err = env.SetCongestionControl("no-such-algorithm")
	if err == nil || !strings.Contains(err.Error(), "the kernel offers: ") || !strings.Contains(err.Error(), "cubic") {
		t.Errorf("an algorithm the kernel lacks: %v", err)
	}
}

// TestRunInInterruptEarly: a ping series ended a moment after it was
// started, before `ip netns exec` has run ping, still ends with ping's
// summary: the interrupt waits until ping is running.
func TestRunInInterruptEarly(t *testing.T) {
	nsenvtest.Require(t, nsenv.Usable("ip", "ping"))
	env, err := nsenv.NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		out, err := nsenv.RunIn(ctx, true, env.A, "ping", "-c", "100", "-i", "0.01", "-W", "1", nsenv.OuterB)
		cancel()
		r, perr := nsenv.ParsePing(out)
		if perr != nil || r.Received == 0 {
			t.Fatalf("ping interrupted at once: %+v, %v (ping: %v)\n%s", r, perr, err, out)
		}
	}
}
