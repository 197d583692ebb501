package main

import (
	"context"
	"log/slog"
	"net"
	"slices"

	"pipeguard/cmd/headless-client/config"
	"pipeguard/noise"
	"pipeguard/stages"
)

// reload re-reads the config file on SIGHUP and applies what can change
// while running: the listen port and the private key (as wg set does:
// a new key drops the sessions of the old one), peers (added, removed,
// changed in place, so unchanged peers keep their sessions) and the
// routes of their AllowedIPs. The file wins, as with wg syncconf: what
// `wg set` changed is set back. It applies whole or not at all: a file
// that fails to load or validate, names a port that is taken, or that
// the tunnel refuses, changes nothing, and the tunnel keeps running on
// the config it has. The other interface settings (MTU, addresses, DNS)
// need a restart; a change to them is logged.
func (r *running) reload(ctx context.Context, path string, log *slog.Logger) {
	log.Info("reloading config (SIGHUP)", "config", path)
	cfg, err := config.Load(path)
	if err != nil {
		log.Error("reload refused; still running on the previous config", "err", err)
		return
	}
	peers, err := resolvePeers(ctx, cfg, net.DefaultResolver)
	if err != nil {
		log.Error("reload refused; still running on the previous config", "err", err)
		return
	}
	warnOverlaps(log, peers)
	routes, endpoints := routesOf(peers)
	if err := r.ifc.CheckRoutes(routes, endpoints); err != nil {
		log.Error("reload refused; still running on the previous config", "err", err)
		return
	}
	for _, what := range interfaceChanges(&r.cfg.Interface, &cfg.Interface) {
		log.Warn("config change needs a restart to apply", "setting", what)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// All or nothing: the port first (it may be taken), then the peers
	// (SyncPeers refuses before it changes anything) and their routes,
	// each undoing what came before if it fails; the key last, as it
	// cannot fail.
	oldPort := r.cfg.Interface.ListenPort
	if cfg.Interface.ListenPort != oldPort {
		if err := r.tunnel.SetListenPort(cfg.Interface.ListenPort); err != nil {
			log.Error("reload refused; still running on the previous config", "err", err)
			return
		}
	}
	restorePort := func() {
		if cfg.Interface.ListenPort != oldPort {
			if err := r.tunnel.SetListenPort(oldPort); err != nil {
				log.Error("restoring the previous listen port", "err", err)
			}
		}
	}
	res, err := r.tunnel.SyncPeers(r.peers, peers)
	if err != nil {
		restorePort()
		log.Error("reload refused; still running on the previous config", "err", err)
		return
	}
	if err := r.ifc.SetRoutes(routes); err != nil {
		log.Error("reload refused: setting its routes failed; going back to the previous config", "err", err)
		if _, err := r.tunnel.SyncPeers(peers, r.peers); err != nil {
			log.Error("restoring the previous peers", "err", err)
		}
		oldRoutes, _ := routesOf(r.peers)
		if err := r.ifc.SetRoutes(oldRoutes); err != nil {
			log.Error("restoring the previous routes", "err", err)
		}
		restorePort()
		return
	}
	if !cfg.Interface.PrivateKey.Equal(r.cfg.Interface.PrivateKey) {
		r.tunnel.SetPrivateKey(cfg.Interface.PrivateKey) // cannot fail for a parsed key
		log.Info("private key changed", "public_key", cfg.Interface.PrivateKey.Public())
	}
	r.cfg.Interface.PrivateKey, r.cfg.Interface.ListenPort = cfg.Interface.PrivateKey, cfg.Interface.ListenPort
	r.cfg.Peers, r.peers = cfg.Peers, peers
	// restored: peers changed at run time (wg set) and set back to the
	// file, which wins.
	log.Info("config reloaded", "added", short(res.Added), "updated", short(res.Updated), "restored", short(res.Restored),
		"removed", short(res.Removed), "unchanged", len(peers)-len(res.Added)-len(res.Updated)-len(res.Restored))
}

// warnOverlaps logs each prefix that two peers list, naming both: only
// the later peer in the file gets it, and the earlier one goes without,
// which is rarely what the file's author meant.
func warnOverlaps(log *slog.Logger, peers []stages.PeerConfig) {
	for _, o := range stages.Overlaps(peers) {
		log.Warn("AllowedIPs overlap: only the later peer in the file gets this prefix",
			"prefix", o.Prefix, "peer", o.Lost.String(), "taken_by", o.Won.String())
	}
}

// interfaceChanges names the [Interface] settings that differ and that a
// reload does not apply.
func interfaceChanges(old, cur *config.Interface) []string {
	var out []string
	if old.MTU != cur.MTU {
		out = append(out, "MTU")
	}
	if !slices.Equal(old.Addresses, cur.Addresses) {
		out = append(out, "Address")
	}
	if old.Table != cur.Table {
		out = append(out, "Table")
	}
	if old.FwMark != cur.FwMark {
		out = append(out, "FwMark")
	}
	if !slices.Equal(old.DNS, cur.DNS) || !slices.Equal(old.DNSSearch, cur.DNSSearch) {
		out = append(out, "DNS")
	}
	return out
}

// short abbreviates keys for a log line, as wg show's peers are told apart.
func short(keys []noise.PublicKey) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k.String()[:8])
	}
	return out
}
