// Package bartcmp measures the tunnel's AllowedIPs table against
// github.com/gaissmai/bart, in lookups and in batched writes. It is a
// module of its own, so that bart is not a dependency of PipeGuard:
//
//	cd stages/allowedips/internal/bartcmp && go test -run '^$' -bench .
package bartcmp
