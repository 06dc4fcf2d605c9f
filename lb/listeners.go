package lb

import (
	"net"
	"slices"
)

// Listeners returns the bound listening sockets, for callers that hand
// them to the kernel, such as lb/steer's sk_lookup program, which needs
// their file descriptors in a socket map. The proxy still owns them: do not
// close them or wrap them.
func (p *Proxy) Listeners() []*net.TCPListener {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.listeners)
}

// Ready reports what /readyz reports: the proxy is listening, not shutting
// down, and has a healthy backend (false while failing open). `nlb
// controller` feeds it into VRRP so a node whose proxy cannot serve gives
// up the VIP.
func (p *Proxy) Ready() bool { return p.ready() }
