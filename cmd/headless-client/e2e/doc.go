// Package e2e holds the headless client's end-to-end tests: the real
// binary (and cmd/wgpeer, a wireguard-go peer) run as processes in network
// namespaces that the tests create, with real TUN devices, routes, UDP
// and TCP, checked with ping, checksummed TCP transfers and Debian's wg.
// They need root; with CI=true they fail rather than skip without it.
// The package has no code outside its tests.
package e2e
