package main

import (
	"context"
	"log/slog"
	"slices"

	"pipeguard/cmd/headless-client/config"
	"pipeguard/cmd/headless-client/ifsetup"
	"pipeguard/noise"
)

// reload re-reads the config file on SIGHUP and applies what can change
// while running: the listen port and the private key (as wg set does:
// a new key drops the sessions of the old one), peers (added, removed,
// changed in place, so unchanged peers keep their sessions) and the
// routes of their AllowedIPs. A file that fails to load or validate, or
// names a port that is taken, changes nothing: the tunnel keeps running
// on the config it has. The other interface settings (MTU, addresses,
// DNS) need a restart; a change to them is logged.
func (r *running) reload(ctx context.Context, path string, log *slog.Logger) {
	log.Info("reloading config (SIGHUP)", "config", path)
	cfg, err := config.Load(path)
	if err != nil {
		log.Error("reload refused; still running on the previous config", "err", err)
		return
	}
	peers, err := resolvePeers(ctx, cfg)
	if err != nil {
		log.Error("reload refused; still running on the previous config", "err", err)
		return
	}
	routes, endpoints := routesOf(peers)
	if err := ifsetup.CheckRoutes(routes, endpoints); err != nil {
		log.Error("reload refused; still running on the previous config", "err", err)
		return
	}
	for _, what := range interfaceChanges(&r.cfg.Interface, &cfg.Interface) {
		log.Warn("config change needs a restart to apply", "setting", what)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if cfg.Interface.ListenPort != r.cfg.Interface.ListenPort {
		if err := r.tunnel.SetListenPort(cfg.Interface.ListenPort); err != nil {
			log.Error("reload refused; still running on the previous config", "err", err)
			return
		}
	}
	if !cfg.Interface.PrivateKey.Equal(r.cfg.Interface.PrivateKey) {
		r.tunnel.SetPrivateKey(cfg.Interface.PrivateKey) // cannot fail for a parsed key
		log.Info("private key changed", "public_key", cfg.Interface.PrivateKey.Public())
	}
	r.cfg.Interface.PrivateKey, r.cfg.Interface.ListenPort = cfg.Interface.PrivateKey, cfg.Interface.ListenPort
	res, err := r.tunnel.SyncPeers(r.peers, peers)
	if err != nil {
		log.Error("reload failed part-way", "err", err)
	}
	if err := r.ifc.SetRoutes(routes); err != nil {
		log.Error("reload: routes", "err", err)
	}
	r.cfg.Peers, r.peers = cfg.Peers, peers
	log.Info("config reloaded", "added", short(res.Added), "updated", short(res.Updated), "removed", short(res.Removed),
		"unchanged", len(peers)-len(res.Added)-len(res.Updated))
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
