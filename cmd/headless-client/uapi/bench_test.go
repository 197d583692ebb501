package uapi

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"pipeguard/internal/cputime"
)

// setconfBody is the request `wg setconf` sends for n peers as a gateway
// has them: a key, one /32 and one /128, an endpoint, and a persistent
// keepalive on every other one.
func setconfBody(n int) string {
	r := rand.New(rand.NewPCG(uint64(n), 1))
	var b strings.Builder
	b.WriteString("replace_peers=true\n")
	for i := range n {
		var k [32]byte
		for j := range k {
			k[j] = byte(r.Uint32())
		}
		fmt.Fprintf(&b, "public_key=%s\nreplace_allowed_ips=true\nendpoint=198.18.%d.%d:%d\n", hexOf(k), i>>8&255, i&255, 1024+i%60000)
		if i%2 == 0 {
			b.WriteString("persistent_keepalive_interval=25\n")
		}
		fmt.Fprintf(&b, "allowed_ip=10.%d.%d.%d/32\nallowed_ip=fd01::%x:%x/128\n", i>>16&255, i>>8&255, i&255, i>>16, i&0xffff)
	}
	b.WriteString("\n")
	return b.String()
}

// BenchmarkSetconf is the server's side of `wg setconf` of n peers on an
// empty tunnel: parse and apply. ns/op over n is the cost of one peer,
// flat from 10^3 to 10^5 peers.
func BenchmarkSetconf(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			body := setconfBody(n)
			b.ResetTimer()
			cpu := cputime.Start()
			for range b.N {
				b.StopTimer()
				tun, _ := newTunnel(b)
				b.StartTimer()
				req, err := ParseSet(bufio.NewReader(strings.NewReader(body)))
				if err != nil {
					b.Fatal(err)
				}
				if err := Apply(tun, req); err != nil {
					b.Fatal(err)
				}
			}
			cpu.Report(b)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/peer")
		})
	}
}

// BenchmarkGet is the server's side of `wg show dump` with n peers.
func BenchmarkGet(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			tun, _ := newTunnel(b)
			req, err := ParseSet(bufio.NewReader(strings.NewReader(setconfBody(n))))
			if err != nil {
				b.Fatal(err)
			}
			if err := Apply(tun, req); err != nil {
				b.Fatal(err)
			}
			w := bufio.NewWriter(io.Discard)
			b.ResetTimer()
			cpu := cputime.Start()
			for range b.N {
				if err := WriteGet(w, tun); err != nil {
					b.Fatal(err)
				}
			}
			cpu.Report(b)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/peer")
		})
	}
}

// BenchmarkSetconfSelftest is the server's side of the kernel selftest's
// `wg setconf` of 130,560 allowed IPs on one peer (every a.b.0.0/16 and
// a::b/128), on an empty tunnel.
func BenchmarkSetconfSelftest(b *testing.B) {
	var body strings.Builder
	body.WriteString("replace_peers=true\npublic_key=" + hexOf(key(b).Public()) + "\nreplace_allowed_ips=true\n")
	for a := 1; a <= 255; a++ {
		for c := 0; c <= 255; c++ {
			fmt.Fprintf(&body, "allowed_ip=%d.%d.0.0/16\nallowed_ip=%d::%d/128\n", a, c, a, c)
		}
	}
	body.WriteString("\n")
	b.ResetTimer()
	cpu := cputime.Start()
	for range b.N {
		b.StopTimer()
		tun, _ := newTunnel(b)
		b.StartTimer()
		req, err := ParseSet(bufio.NewReader(strings.NewReader(body.String())))
		if err != nil {
			b.Fatal(err)
		}
		if err := Apply(tun, req); err != nil {
			b.Fatal(err)
		}
	}
	cpu.Report(b)
}
