package stages

import (
	"net/netip"

	"pipeguard/tunio"
)

// endpoint is where a peer's datagrams go, and where they leave from: the
// peer's address, and the host's address the peer last wrote to (with the
// interface it arrived on), which replies are sent from, as kernel
// WireGuard and wireguard-go do. A reply from another of the host's
// addresses would not pass the NAT or stateful firewall that let the
// peer's datagram in, and the peer would roam to an address it never
// wrote to.
//
// It is immutable once published; a change publishes a new one. 56 bytes
// per peer, allocated only when the endpoint changes.
type endpoint struct {
	addr  netip.AddrPort
	local tunio.Local // zero: routing picks the source
}

// Endpoint returns the peer's current endpoint, or the zero AddrPort.
func (p *peer) Endpoint() netip.AddrPort {
	if ep := p.endpoint.Load(); ep != nil {
		return ep.addr
	}
	return netip.AddrPort{}
}

// sendTo returns where to send to the peer and from which local address;
// an invalid AddrPort when the endpoint is not known.
func (p *peer) sendTo() (netip.AddrPort, tunio.Local) {
	if ep := p.endpoint.Load(); ep != nil {
		return ep.addr, ep.local
	}
	return netip.AddrPort{}, tunio.Local{}
}

// roam moves the peer's endpoint to src, reached at local, if either
// differs. Only authenticated datagrams may call it. It allocates only
// when the endpoint changes, which real traffic does rarely.
func (p *peer) roam(src netip.AddrPort, local tunio.Local) {
	if ep := p.endpoint.Load(); ep != nil && ep.addr == src && ep.local == local {
		return
	}
	// A fresh value made here, not from the parameters' addresses: that
	// would move them to the heap on every call, changed or not.
	ep := new(endpoint)
	ep.addr, ep.local = src, local
	p.endpoint.Store(ep)
}

// setEndpoint sets the endpoint from configuration (the zero AddrPort:
// none). The local address is forgotten: it belonged to the old one, and
// the next authenticated datagram from the peer teaches the new one.
func (p *peer) setEndpoint(addr netip.AddrPort) {
	if !addr.IsValid() {
		p.endpoint.Store(nil)
		return
	}
	p.endpoint.Store(&endpoint{addr: addr})
}

// forgetLocal makes routing pick the source of the peer's datagrams again,
// if they still leave from local (the address is gone). It loses to a
// concurrent roam, which brings a local address that works.
func (p *peer) forgetLocal(local tunio.Local) {
	ep := p.endpoint.Load()
	if ep == nil || ep.local != local || !local.IsValid() {
		return
	}
	p.endpoint.CompareAndSwap(ep, &endpoint{addr: ep.addr})
}

// ForgetLocalAddr makes every peer whose datagrams leave from the local
// address addr (the host no longer has it) leave from the address routing
// picks, until its next datagram tells where it now writes to. The client
// calls it when the kernel reports an address removed; a send the kernel
// refuses for its source has the same effect for its peer. O(peers).
func (t *Tunnel) ForgetLocalAddr(addr netip.Addr) {
	addr = addr.Unmap()
	for r := range t.peers.Load().all() {
		p := r.p
		if _, l := p.sendTo(); l.IsValid() && l.Addr() == addr {
			p.forgetLocal(l)
		}
	}
}

// ForgetLocalAddrs forgets every peer's local address, as ForgetLocalAddr
// does for one: for when address notifications were lost and which
// addresses went is not known. O(peers).
func (t *Tunnel) ForgetLocalAddrs() {
	for r := range t.peers.Load().all() {
		p := r.p
		if _, l := p.sendTo(); l.IsValid() {
			p.forgetLocal(l)
		}
	}
}

// CheckLocalAddrs keeps, for every peer that sends from a remembered local
// address whose arrival interface is known, that address only while a
// datagram to the peer from it would leave by that interface: routeOut
// says which interface it would leave by (an error: it cannot leave from
// that address at all). Otherwise a reply would leave by another link
// from an address that does not belong there, and kernel WireGuard, which
// makes this check on every send, forgets the address too. The client
// calls it when routes or policy rules change. It returns how many
// addresses it forgot. O(peers) calls of routeOut.
func (t *Tunnel) CheckLocalAddrs(routeOut func(dst, src netip.Addr) (ifindex int, err error)) int {
	forgot := 0
	for r := range t.peers.Load().all() {
		p := r.p
		dst, l := p.sendTo()
		if !l.IsValid() || l.IfIndex() == 0 {
			continue
		}
		if out, err := routeOut(dst.Addr(), l.Addr()); err == nil && out == l.IfIndex() {
			continue
		}
		p.forgetLocal(l)
		forgot++
	}
	return forgot
}
