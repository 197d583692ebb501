package stages

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"pipeguard/noise"
)

// exchange sends one packet each way between a and b and checks both
// arrive, which also completes a handshake if none was done yet.
func exchange(t *testing.T, a, b *end, seq uint32) {
	t.Helper()
	p := ipv4(a.addr, b.addr, 200, seq)
	if err := a.dev.Inject(p); err != nil {
		t.Fatal(err)
	}
	if got := b.recv(t, 5*time.Second); !bytes.Equal(got, p) {
		t.Fatalf("A→B packet %d differs", seq)
	}
	q := ipv4(b.addr, a.addr, 300, seq)
	if err := b.dev.Inject(q); err != nil {
		t.Fatal(err)
	}
	if got := a.recv(t, 5*time.Second); !bytes.Equal(got, q) {
		t.Fatalf("B→A packet %d differs", seq)
	}
}

// currentKeypair is the session keypair a's only peer sends with.
func currentKeypair(t *testing.T, e *end) *noise.Keypair {
	t.Helper()
	p := firstPeer(e.tun)
	if p == nil {
		t.Fatal("no peers")
	}
	return p.session.Current()
}

func TestPeersReportsTrafficAndHandshake(t *testing.T) {
	a, b := newPair(t, pairOpts{engine: EnginePipeline, workers: 2})
	before := time.Now()
	exchange(t, a, b, 1)
	peers := a.tun.Peers()
	if len(peers) != 1 {
		t.Fatalf("%d peers, want 1", len(peers))
	}
	st := peers[0]
	if st.PublicKey != b.key.Public() {
		t.Errorf("public key %s, want %s", st.PublicKey, b.key.Public())
	}
	if want := netip.MustParseAddrPort("192.0.2.2:51820"); st.Endpoint != want {
		t.Errorf("endpoint %v, want %v", st.Endpoint, want)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")}; !slices.Equal(st.AllowedIPs, want) {
		t.Errorf("allowed IPs %v, want %v", st.AllowedIPs, want)
	}
	if st.LastHandshake.Before(before.Add(-time.Second)) || st.LastHandshake.After(time.Now()) {
		t.Errorf("last handshake %v, want between %v and now", st.LastHandshake, before)
	}
	// One handshake, counted on both sides (initiator and responder).
	pa, _ := a.tun.Peer(b.key.Public())
	pb, _ := b.tun.Peer(a.key.Public())
	if ha, hb := pa.Handshakes, pb.Handshakes; ha != 1 || hb != 1 {
		t.Errorf("handshakes counted %d and %d, want 1 each", ha, hb)
	}
	// 200 inner bytes padded to 208 plus 32 of header and tag; the
	// receive side counts at least the 300-byte packet the same way.
	if st.TxBytes < 240 || st.RxBytes < 332 {
		t.Errorf("tx %d rx %d bytes, want at least 240 and 332", st.TxBytes, st.RxBytes)
	}
	if !st.PresharedKey.IsZero() || st.PersistentKeepalive != 0 {
		t.Errorf("psk %v keepalive %v, want none", st.PresharedKey, st.PersistentKeepalive)
	}
	if got, ok := a.tun.Peer(b.key.Public()); !ok || got.PublicKey != st.PublicKey {
		t.Errorf("Peer(%s) = %v, %v", b.key.Public(), got.PublicKey, ok)
	}
	if _, ok := a.tun.Peer(mustKey(t).Public()); ok {
		t.Error("Peer of an unknown key reported ok")
	}
	if !a.tun.PrivateKey().Equal(a.key) {
		t.Error("PrivateKey differs from the configured key")
	}
}

func TestUpdatePeerKeepsSession(t *testing.T) {
	for _, engine := range engines {
		t.Run(string(engine), func(t *testing.T) {
			a, b := newPair(t, pairOpts{engine: engine, workers: 2})
			exchange(t, a, b, 1)
			kp := currentKeypair(t, a)
			if kp == nil {
				t.Fatal("no session after the exchange")
			}
			psk := noise.PresharedKey{1, 2, 3}
			ka := 25 * time.Second
			ep := netip.MustParseAddrPort("192.0.2.2:51820") // same address, set explicitly
			err := a.tun.UpdatePeer(b.key.Public(), PeerUpdate{
				PresharedKey:        &psk,
				Endpoint:            &ep,
				PersistentKeepalive: &ka,
				AddAllowedIPs:       []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16"), netip.MustParsePrefix("fd00::/64")},
			})
			if err != nil {
				t.Fatal(err)
			}
			exchange(t, a, b, 2)
			if got := currentKeypair(t, a); got != kp {
				t.Fatal("the update replaced the session keypair")
			}
			st, _ := a.tun.Peer(b.key.Public())
			if !st.PresharedKey.Equal(psk) || st.PersistentKeepalive != ka {
				t.Errorf("psk %v keepalive %v, want %v and %v", st.PresharedKey, st.PersistentKeepalive, psk, ka)
			}
			want := []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32"), netip.MustParsePrefix("10.9.0.0/16"), netip.MustParsePrefix("fd00::/64")}
			if !samePrefixes(st.AllowedIPs, want) {
				t.Errorf("allowed IPs %v, want %v", st.AllowedIPs, want)
			}
		})
	}
}

func TestUpdatePeerAllowedIPs(t *testing.T) {
	a, b := newPair(t, pairOpts{engine: EngineSequential})
	other := mustKey(t).Public()
	if err := a.tun.AddPeer(PeerConfig{PublicKey: other, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.5.0.0/24")}}); err != nil {
		t.Fatal(err)
	}
	pk := b.key.Public()
	pfx := netip.MustParsePrefix
	for _, tc := range []struct {
		name string
		u    PeerUpdate
		want []netip.Prefix
	}{
		{"add", PeerUpdate{AddAllowedIPs: []netip.Prefix{pfx("10.1.0.0/16")}}, []netip.Prefix{pfx("10.0.0.2/32"), pfx("10.1.0.0/16")}},
		{"add unmasked", PeerUpdate{AddAllowedIPs: []netip.Prefix{pfx("10.2.3.4/16")}}, []netip.Prefix{pfx("10.0.0.2/32"), pfx("10.1.0.0/16"), pfx("10.2.0.0/16")}},
		{"remove one", PeerUpdate{RemoveAllowedIPs: []netip.Prefix{pfx("10.1.0.0/16")}}, []netip.Prefix{pfx("10.0.0.2/32"), pfx("10.2.0.0/16")}},
		{"remove another peer's", PeerUpdate{RemoveAllowedIPs: []netip.Prefix{pfx("10.5.0.0/24")}}, []netip.Prefix{pfx("10.0.0.2/32"), pfx("10.2.0.0/16")}},
		{"replace", PeerUpdate{ReplaceAllowedIPs: true, AddAllowedIPs: []netip.Prefix{pfx("fd00::2/128")}}, []netip.Prefix{pfx("fd00::2/128")}},
		{"replace with nothing", PeerUpdate{ReplaceAllowedIPs: true}, nil},
		{"take from another peer", PeerUpdate{AddAllowedIPs: []netip.Prefix{pfx("10.5.0.0/24")}}, []netip.Prefix{pfx("10.5.0.0/24")}},
	} {
		if err := a.tun.UpdatePeer(pk, tc.u); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		st, _ := a.tun.Peer(pk)
		if !samePrefixes(st.AllowedIPs, tc.want) {
			t.Fatalf("%s: allowed IPs %v, want %v", tc.name, st.AllowedIPs, tc.want)
		}
	}
	if st, _ := a.tun.Peer(other); len(st.AllowedIPs) != 0 {
		t.Errorf("the other peer kept %v after its prefix was taken", st.AllowedIPs)
	}
	if err := a.tun.UpdatePeer(mustKey(t).Public(), PeerUpdate{}); !errors.Is(err, ErrNoPeer) {
		t.Errorf("update of unknown peer: %v, want ErrNoPeer", err)
	}
}

func TestSyncPeers(t *testing.T) {
	a, b := newPair(t, pairOpts{engine: EnginePipeline, workers: 2})
	exchange(t, a, b, 1)
	kp := currentKeypair(t, a)
	bCfg := PeerConfig{
		PublicKey:  b.key.Public(),
		Endpoint:   netip.MustParseAddrPort("192.0.2.2:51820"),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")},
	}
	gone := mustKey(t).Public()
	if err := a.tun.AddPeer(PeerConfig{PublicKey: gone}); err != nil {
		t.Fatal(err)
	}
	fresh := PeerConfig{PublicKey: mustKey(t).Public(), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.7.0.0/24")}}
	prev := []PeerConfig{bCfg, {PublicKey: gone}}

	// b unchanged (written unmasked-equal), gone removed, fresh added.
	res, err := a.tun.SyncPeers(prev, []PeerConfig{bCfg, fresh})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Added, []noise.PublicKey{fresh.PublicKey}) || !slices.Equal(res.Removed, []noise.PublicKey{gone}) || len(res.Updated) != 0 {
		t.Fatalf("result %+v: want fresh added, gone removed, nothing updated", res)
	}
	if currentKeypair(t, a) != kp {
		t.Fatal("sync replaced the unchanged peer's session")
	}
	exchange(t, a, b, 2)

	// Now b changes: a keepalive and one more prefix, in place.
	b2 := bCfg
	b2.PersistentKeepalive = 10 * time.Second
	b2.AllowedIPs = append(slices.Clone(bCfg.AllowedIPs), netip.MustParsePrefix("10.8.0.0/24"))
	res, err = a.tun.SyncPeers([]PeerConfig{bCfg, fresh}, []PeerConfig{b2, fresh})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Updated, []noise.PublicKey{b2.PublicKey}) || len(res.Added)+len(res.Removed) != 0 {
		t.Fatalf("result %+v: want b updated only", res)
	}
	if currentKeypair(t, a) != kp {
		t.Fatal("updating the peer replaced its session")
	}
	exchange(t, a, b, 3)
	if got := len(a.tun.Peers()); got != 2 {
		t.Fatalf("%d peers after sync, want 2", got)
	}
	if _, err := a.tun.SyncPeers(nil, []PeerConfig{fresh, fresh}); !errors.Is(err, ErrConfig) {
		t.Errorf("duplicate peer: %v, want ErrConfig", err)
	}
}

func TestPeerDiff(t *testing.T) {
	ep1 := netip.MustParseAddrPort("192.0.2.1:1")
	ep2 := netip.MustParseAddrPort("192.0.2.2:2")
	roamed := netip.MustParseAddrPort("198.51.100.7:9")
	ips := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}
	for _, tc := range []struct {
		name        string
		cur         PeerStatus
		want        PeerConfig
		changed     bool
		endpointSet bool
	}{
		{"equal", PeerStatus{Endpoint: ep1, AllowedIPs: ips}, PeerConfig{Endpoint: ep1, AllowedIPs: ips}, false, false},
		// The file wins, as with wg syncconf: a roamed (or wg set)
		// endpoint goes back to the file's.
		{"roamed", PeerStatus{Endpoint: roamed, AllowedIPs: ips}, PeerConfig{Endpoint: ep1, AllowedIPs: ips}, true, true},
		{"file endpoint changed", PeerStatus{Endpoint: ep1, AllowedIPs: ips}, PeerConfig{Endpoint: ep2, AllowedIPs: ips}, true, true},
		{"no endpoint in the file", PeerStatus{Endpoint: roamed, AllowedIPs: ips}, PeerConfig{AllowedIPs: ips}, false, false},
		{"unmasked prefix equal", PeerStatus{Endpoint: ep1, AllowedIPs: ips}, PeerConfig{Endpoint: ep1, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.9/24")}}, false, false},
		{"prefix added", PeerStatus{Endpoint: ep1, AllowedIPs: ips}, PeerConfig{Endpoint: ep1, AllowedIPs: append(slices.Clone(ips), netip.MustParsePrefix("fd00::/8"))}, true, false},
		{"psk", PeerStatus{Endpoint: ep1, AllowedIPs: ips}, PeerConfig{Endpoint: ep1, AllowedIPs: ips, PresharedKey: noise.PresharedKey{9}}, true, false},
		{"keepalive", PeerStatus{Endpoint: ep1, AllowedIPs: ips}, PeerConfig{Endpoint: ep1, AllowedIPs: ips, PersistentKeepalive: time.Second}, true, false},
	} {
		u, changed := peerDiff(tc.cur, tc.want)
		if changed != tc.changed || (u.Endpoint != nil) != tc.endpointSet {
			t.Errorf("%s: changed %v endpoint set %v, want %v and %v", tc.name, changed, u.Endpoint != nil, tc.changed, tc.endpointSet)
		}
	}
}

// TestSyncPeersFileWins: after `wg set` changed a
// peer's endpoint and AllowedIPs, a reload of the unchanged file set the
// AllowedIPs back but kept the wg-set endpoint, a mix nobody chose, and
// traffic broke. Now the file wins whole, as with wg syncconf, the
// session survives, and the peer is reported as restored.
func TestSyncPeersFileWins(t *testing.T) {
	a, b := newPair(t, pairOpts{engine: EnginePipeline, workers: 2})
	exchange(t, a, b, 1)
	kp := currentKeypair(t, a)
	file := []PeerConfig{{
		PublicKey:  b.key.Public(),
		Endpoint:   netip.MustParseAddrPort("192.0.2.2:51820"),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")},
	}}
	// wg set peer B endpoint … allowed-ips …
	elsewhere := netip.MustParseAddrPort("198.51.100.9:4000")
	if err := a.tun.UpdatePeer(b.key.Public(), PeerUpdate{Endpoint: &elsewhere,
		AddAllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.5.0.0/16")}}); err != nil {
		t.Fatal(err)
	}
	res, err := a.tun.SyncPeers(file, file)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Restored, []noise.PublicKey{b.key.Public()}) || len(res.Added)+len(res.Updated)+len(res.Removed) != 0 {
		t.Fatalf("result %+v: want b restored, nothing else", res)
	}
	st, _ := a.tun.Peer(b.key.Public())
	if st.Endpoint != file[0].Endpoint || !samePrefixes(st.AllowedIPs, file[0].AllowedIPs) {
		t.Fatalf("after the reload: endpoint %v, allowed %v; want the file's %v, %v", st.Endpoint, st.AllowedIPs, file[0].Endpoint, file[0].AllowedIPs)
	}
	if currentKeypair(t, a) != kp {
		t.Fatal("restoring the peer replaced its session")
	}
	exchange(t, a, b, 2)
	// Once it equals the file, a reload leaves it alone.
	if res, err := a.tun.SyncPeers(file, file); err != nil || len(res.Restored)+len(res.Updated) != 0 {
		t.Fatalf("second reload: %+v, %v; want nothing changed", res, err)
	}
}

// TestSyncPeersAllOrNothing: a reload with something the tunnel refuses
// (a peer listed twice) changes nothing, not even the peers before the
// refused one.
func TestSyncPeersAllOrNothing(t *testing.T) {
	a, b := newPair(t, pairOpts{engine: EnginePipeline, workers: 2})
	exchange(t, a, b, 1)
	bCfg := PeerConfig{
		PublicKey:  b.key.Public(),
		Endpoint:   netip.MustParseAddrPort("192.0.2.2:51820"),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32")},
	}
	kept := PeerConfig{PublicKey: mustKey(t).Public(), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.6.0.0/24")}}
	if err := a.tun.AddPeer(kept); err != nil {
		t.Fatal(err)
	}
	before := a.tun.Peers()
	fresh := PeerConfig{PublicKey: mustKey(t).Public(), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.7.0.0/24")}}
	twice := PeerConfig{PublicKey: mustKey(t).Public(), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/24")}}
	changed := bCfg
	changed.PersistentKeepalive = 25 * time.Second
	// kept would go, b change, fresh and twice come; twice is listed twice.
	_, err := a.tun.SyncPeers([]PeerConfig{bCfg, kept}, []PeerConfig{changed, fresh, twice, twice})
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("SyncPeers with a peer listed twice: %v, want ErrConfig", err)
	}
	if after := a.tun.Peers(); !reflect.DeepEqual(after, before) {
		t.Fatalf("a refused sync changed the peers:\nbefore %+v\nafter  %+v", before, after)
	}
	exchange(t, a, b, 2)
}

// TestSyncPeersOverlap: with one prefix listed for
// two peers, the later one holds it, and every reload of the unchanged
// file reported the earlier one as updated and moved the prefix to it,
// and the next reload back. Now the reload compares the earlier peer
// without the prefix: nothing changes, and Overlaps names both peers for
// a warning.
func TestSyncPeersOverlap(t *testing.T) {
	a, b := newPair(t, pairOpts{engine: EnginePipeline, workers: 2})
	shared := netip.MustParsePrefix("10.9.0.0/24")
	bCfg := PeerConfig{
		PublicKey:  b.key.Public(),
		Endpoint:   netip.MustParseAddrPort("192.0.2.2:51820"),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.2/32"), shared},
	}
	later := PeerConfig{PublicKey: mustKey(t).Public(), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.9.0.7/24")}} // unmasked: the same prefix
	file := []PeerConfig{bCfg, later}
	if got := Overlaps(file); len(got) != 1 || got[0] != (Overlap{Prefix: shared, Lost: bCfg.PublicKey, Won: later.PublicKey}) {
		t.Fatalf("Overlaps = %+v", got)
	}
	res, err := a.tun.SyncPeers([]PeerConfig{bCfg}, file)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Added, []noise.PublicKey{later.PublicKey}) {
		t.Fatalf("first sync %+v: want later added", res)
	}
	for i := range 3 {
		res, err := a.tun.SyncPeers(file, file)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Added)+len(res.Updated)+len(res.Restored)+len(res.Removed) != 0 {
			t.Fatalf("reload %d of the unchanged file: %+v, want no change", i, res)
		}
		bSt, _ := a.tun.Peer(bCfg.PublicKey)
		lSt, _ := a.tun.Peer(later.PublicKey)
		if slices.Contains(bSt.AllowedIPs, shared) || !slices.Equal(lSt.AllowedIPs, []netip.Prefix{shared}) {
			t.Fatalf("reload %d: b has %v, later %v; want %v with the later peer only", i, bSt.AllowedIPs, lSt.AllowedIPs, shared)
		}
	}
	exchange(t, a, b, 1)
}
