// Package svg draws the harness's charts as hand-written SVG documents:
// panels of lines against an x axis, in rows, with a shared legend. It
// measures nothing and knows nothing of the harness; each mode builds
// its panels from its own figures (throughput against cores, against
// iperf3 streams, against the tunnel's CPU; memory and goroutines against
// time) and Write draws them.
//
// Subpackage svgtest reads a chart back for tests.
package svg
