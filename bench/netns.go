package bench

import "context"

// runNetns is the namespace mode: PipeGuard with each engine, and
// wireguard-go, between two network namespaces joined by a veth pair,
// driven by iperf3 and ping (ParseIperf3 and ParsePing read their
// output). It is the one place that mode is entered; it is not written
// yet.
func runNetns(ctx context.Context, cfg *Config) (*NetnsReport, error) {
	return nil, ErrNetnsNotImplemented
}
