package peers

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"pipeguard/bench/core"
	"pipeguard/noise"
)

// randomKeys makes n random public keys. Any 32 bytes do for a peer that
// never answers; the chance of one of the seven low-order keys is nil.
func randomKeys(n int) []noise.PublicKey {
	keys := make([]noise.PublicKey, n)
	for i := range keys {
		rand.Read(keys[i][:])
	}
	return keys
}

// peersConf is the tunnel's wg config: its private key and port, the
// real peer (key real, inner address inner, at endpoint), then keys as
// peers, peer i with 10.x.y.z/32 and fd01::x:y/128 made of i (x at most
// 15), and an endpoint in 198.18.0.0/15, which the namespace has no
// route to.
func peersConf(key noise.PrivateKey, port uint16, real noise.PublicKey, inner netip.Addr, endpoint netip.AddrPort, keys []noise.PublicKey) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "[Interface]\nPrivateKey = %s\nListenPort = %d\n", key, port)
	fmt.Fprintf(&b, "[Peer]\nPublicKey = %s\nAllowedIPs = %s/32\nEndpoint = %s\n", real, inner, endpoint)
	for i, k := range keys {
		fmt.Fprintf(&b, "[Peer]\nPublicKey = %s\nAllowedIPs = 10.%d.%d.%d/32, fd01::%x:%x/128\nEndpoint = 198.18.%d.%d:%d\n",
			k, i>>16&255, i>>8&255, i&255, i>>16, i&0xffff, i>>8&255, i&255, 1024+i%60000)
	}
	return b.Bytes()
}

// keepaliveConf is the change that turns a persistent keepalive on for
// every other one of keys.
func keepaliveConf(keys []noise.PublicKey) []byte {
	var b bytes.Buffer
	for i, k := range keys {
		if i%2 == 0 {
			fmt.Fprintf(&b, "[Peer]\nPublicKey = %s\nPersistentKeepalive = %d\n", k, keepaliveSeconds)
		}
	}
	return b.Bytes()
}

// peerList is one UAPI set request that adds keys as peers (with nothing
// else: they reach the tunnel first), or removes them.
func peerList(keys []noise.PublicKey, remove bool) string {
	var b strings.Builder
	b.WriteString("set=1\n")
	for _, k := range keys {
		b.WriteString("public_key=" + hexKey(k) + "\n")
		if remove {
			b.WriteString("remove=true\n")
		}
	}
	b.WriteString("\n")
	return b.String()
}

// hexKey is k as the UAPI writes keys.
func hexKey(k noise.PublicKey) string { return hex.EncodeToString(k[:]) }

// metricValue reads the sample of an unlabelled metric from a Prometheus
// text exposition: the line "name value". Comments and other metrics are
// skipped; the metric must be there, once, with a number.
func metricValue(text, name string) (float64, error) {
	var v float64
	found := false
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		series, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || series != name {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil || found {
			return 0, fmt.Errorf("%w: metrics: bad or repeated %s line %q", core.ErrNetns, name, sc.Text())
		}
		v, found = f, true
	}
	if !found {
		return 0, fmt.Errorf("%w: metrics without %s", core.ErrNetns, name)
	}
	return v, nil
}
