package main

import (
	"context"
	"log/slog"
	"slices"

	"pipeguard/cmd/headless-client/config"
	"pipeguard/noise"
)

// reload re-reads the config file on SIGHUP and applies what can change
// while running: peers (added, removed, changed in place, so unchanged
// peers keep their sessions) and the routes of their AllowedIPs. A file
// that fails to load or validate changes nothing: the tunnel keeps
// running on the config it has. Interface settings (key, port, MTU,
// addresses, DNS) need a restart; a change to them is logged.
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
	if err := r.ifc.CheckRoutes(routes, endpoints); err != nil {
		log.Error("reload refused; still running on the previous config", "err", err)
		return
	}
	for _, what := range interfaceChanges(&r.cfg.Interface, &cfg.Interface) {
		log.Warn("config change needs a restart to apply", "setting", what)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
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

// interfaceChanges names the [Interface] settings that differ.
func interfaceChanges(old, cur *config.Interface) []string {
	var out []string
	if !old.PrivateKey.Equal(cur.PrivateKey) {
		out = append(out, "PrivateKey")
	}
	if old.ListenPort != cur.ListenPort {
		out = append(out, "ListenPort")
	}
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
