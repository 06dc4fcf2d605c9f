package socket

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/nlb-dev/nlb/vrrp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Conn is a raw protocol-112 socket on one interface; it implements
// [vrrp.Conn]. Create it with [ListenIPv4] or [ListenIPv6]. ReadFrom may be
// called from one goroutine while WriteTo is called from another.
type Conn struct {
	cfg    Config
	ifName string
	ifIdx  int
	group  netip.Addr

	c  net.PacketConn   // the *net.IPConn underneath
	p4 *ipv4.PacketConn // exactly one of p4 and p6 is set
	p6 *ipv6.PacketConn
}

var _ vrrp.Conn = (*Conn)(nil)

// ReadFrom reads the VRRP message of one packet (the IPv4 header removed)
// into b and reports the packet's source, destination, TTL or hop limit
// and receiving interface. Packets that arrived on another interface are
// skipped. It blocks until a packet arrives or the Conn is closed.
func (c *Conn) ReadFrom(b []byte) (int, vrrp.PacketInfo, error) {
	for {
		var (
			n    int
			src  net.Addr
			info = vrrp.PacketInfo{TTL: -1}
			err  error
		)
		if c.p4 != nil {
			var cm *ipv4.ControlMessage
			n, cm, src, err = c.p4.ReadFrom(b)
			if cm != nil {
				info.TTL, info.IfIndex, info.Dst = cm.TTL, cm.IfIndex, ipAddr(cm.Dst)
			}
		} else {
			var cm *ipv6.ControlMessage
			n, cm, src, err = c.p6.ReadFrom(b)
			if cm != nil {
				info.TTL, info.IfIndex, info.Dst = cm.HopLimit, cm.IfIndex, ipAddr(cm.Dst)
			}
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return 0, vrrp.PacketInfo{}, fmt.Errorf("socket: read: %w", net.ErrClosed)
			}
			return 0, vrrp.PacketInfo{}, fmt.Errorf("socket: read: %w", err)
		}
		if info.IfIndex != 0 && info.IfIndex != c.ifIdx {
			continue
		}
		if a, ok := src.(*net.IPAddr); ok {
			info.Src = ipAddr(a.IP)
		}
		return n, info, nil
	}
}

// WriteTo sends b, a VRRP message, to dst from the configured source with
// TTL / hop limit 255. dst must be the multicast group in multicast mode or
// one of the peers in unicast mode.
func (c *Conn) WriteTo(b []byte, dst netip.Addr) error {
	dst = dst.WithZone("")
	if c.cfg.Unicast {
		if !slices.ContainsFunc(c.cfg.Peers, func(p netip.Addr) bool { return p.WithZone("") == dst }) {
			return fmt.Errorf("socket: write to %v: not a unicast peer", dst)
		}
	} else if dst != c.group {
		return fmt.Errorf("socket: write to %v: not the group %v", dst, c.group)
	}
	to := &net.IPAddr{IP: dst.AsSlice()}
	var err error
	if c.p4 != nil {
		// IP_PKTINFO: ipi_spec_dst is the source, ipi_ifindex the way out.
		cm := &ipv4.ControlMessage{Src: c.cfg.Source.AsSlice(), IfIndex: c.ifIdx}
		_, err = c.p4.WriteTo(b, cm, to)
	} else {
		if dst.IsLinkLocalUnicast() || dst.IsLinkLocalMulticast() || dst.IsInterfaceLocalMulticast() {
			to.Zone = c.ifName
		}
		cm := &ipv6.ControlMessage{Src: c.cfg.Source.AsSlice(), IfIndex: c.ifIdx, HopLimit: vrrp.TTL}
		_, err = c.p6.WriteTo(b, cm, to)
	}
	if err != nil {
		return fmt.Errorf("socket: write to %v: %w", dst, err)
	}
	return nil
}

// Close closes the socket, unblocking ReadFrom.
func (c *Conn) Close() error {
	if err := c.c.Close(); err != nil {
		return fmt.Errorf("socket: close: %w", err)
	}
	return nil
}

// ipAddr converts a net.IP to a netip.Addr, mapping IPv4-in-IPv6 to IPv4;
// the zero Addr for nil.
func ipAddr(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}
