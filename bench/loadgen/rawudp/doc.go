// Package rawudp is the load generator's own IPv4 UDP socket (Conn): a
// tunio.UDPConn with UDP GSO and GRO that stays out of the Go runtime's
// network poller, so that the generator's sends and receives cost no
// thread wake-ups (Linux only). It measures nothing; package loadgen
// sends and receives its load through it.
package rawudp
