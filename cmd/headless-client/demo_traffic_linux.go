package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"pipeguard/cmd/internal/tcpcheck"
)

// errDemoInterrupted ends the demo on Ctrl-C (or SIGTERM), after cleanup.
var errDemoInterrupted = errors.New("headless-client: demo interrupted; everything it set up was removed")

// demoTraffic pings each way over IPv4 and IPv6 and sends TCP each way,
// checking what arrives, and prints what it saw.
func demoTraffic(ctx context.Context, ends [2]*demoEnd, n int64, out io.Writer) error {
	fmt.Fprintf(out, "\nTraffic through the tunnel:\n")
	for i, e := range ends {
		for fam := range 2 {
			dst := demoInner[1-i][fam].Addr()
			// -w: IPv6 on a new link may need a moment (the kernel
			// finishes its setup asynchronously after link up).
			res, err := e.ns.Command(ctx, "ping", "-c", "3", "-i", "0.2", "-w", "5", dst.String()).CombinedOutput()
			if ctx.Err() != nil {
				return errDemoInterrupted
			}
			if err != nil {
				return fmt.Errorf("headless-client: ping %s → %s failed: %v\n%s", e.label, dst, err, res)
			}
			fmt.Fprintf(out, "  ping %s → %-10s %s\n", e.label, dst, pingSummary(string(res)))
		}
	}
	for i, e := range ends {
		to := ends[1-i]
		dst := netip.AddrPortFrom(demoInner[1-i][0].Addr(), demoTCPPort)
		res, err := demoTCP(ctx, e, to, dst, n)
		if ctx.Err() != nil {
			return errDemoInterrupted
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  TCP  %s → %s: %d MB in %v (%.0f Mbit/s), SHA-256 %x… matches at both ends\n",
			e.label, to.label, res.Bytes/1e6, res.Duration.Round(time.Millisecond), res.Mbps(), res.Sum[:6])
	}
	return nil
}

// demoTCP listens in to's namespace and dials from from's, in this
// process: each socket is made on a thread that joined its namespace.
func demoTCP(ctx context.Context, from, to *demoEnd, dst netip.AddrPort, n int64) (tcpcheck.Result, error) {
	var ln net.Listener
	err := to.ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", dst.String())
		return err
	})
	if err != nil {
		return tcpcheck.Result{}, fmt.Errorf("headless-client: listening in %s: %w", to.ns.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	dial := func(ctx context.Context) (c net.Conn, err error) {
		err = from.ns.Do(func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, "tcp", dst.String())
			return err
		})
		return c, err
	}
	return tcpcheck.Transfer(ctx, ln, dial, n, uint64(time.Now().UnixNano()))
}

// pingSummary is ping's statistics lines in one.
func pingSummary(out string) string {
	var parts []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "packets transmitted") || strings.HasPrefix(line, "rtt") {
			parts = append(parts, strings.TrimSpace(line))
		}
	}
	return strings.Join(parts, "; ")
}
