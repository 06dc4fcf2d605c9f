//go:build linux

package socket

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	"github.com/nlb-dev/nlb/vrrp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// checksumOffset is the offset of the VRRP checksum (RFC 5798 §5.2.8)
// for IPV6_CHECKSUM.
const checksumOffset = 6

// ListenIPv4 opens a raw IPv4 protocol-112 socket on the interface named
// ifName. In multicast mode it joins 224.0.0.18 on that interface (RFC 3768
// §5.2.2). It needs CAP_NET_RAW.
func ListenIPv4(ifName string, cfg Config) (*Conn, error) {
	if err := cfg.Validate(false); err != nil {
		return nil, err
	}
	ifi, err := net.InterfaceByName(ifName)
	if err != nil {
		return nil, fmt.Errorf("socket: interface %q: %w", ifName, err)
	}
	pc, err := net.ListenPacket("ip4:"+strconv.Itoa(vrrp.IPProtocol), "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("socket: listen ip4:%d: %w", vrrp.IPProtocol, needsNetRaw(err))
	}
	c := &Conn{cfg: cfg, ifName: ifi.Name, ifIdx: ifi.Index, group: vrrp.MulticastGroup(false), c: pc}
	c.p4 = ipv4.NewPacketConn(pc)
	if err := c.setup4(ifi); err != nil {
		pc.Close()
		return nil, err
	}
	return c, nil
}

func (c *Conn) setup4(ifi *net.Interface) error {
	p := c.p4
	if err := sockopts(c.c, ifi.Name, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL); err != nil {
		return err
	}
	steps := []struct {
		what string
		fn   func() error
	}{
		// RFC 3768 §5.2.3: TTL 255, for multicast and (keepalived) unicast.
		{"multicast TTL", func() error { return p.SetMulticastTTL(vrrp.TTL) }},
		{"TTL", func() error { return p.SetTTL(vrrp.TTL) }},
		{"multicast loopback", func() error { return p.SetMulticastLoopback(false) }},
		{"multicast interface", func() error { return p.SetMulticastInterface(ifi) }},
		{"control messages", func() error {
			return p.SetControlMessage(ipv4.FlagTTL|ipv4.FlagSrc|ipv4.FlagDst|ipv4.FlagInterface, true)
		}},
	}
	if !c.cfg.Unicast {
		steps = append(steps, struct {
			what string
			fn   func() error
		}{"join " + c.group.String(), func() error {
			return p.JoinGroup(ifi, &net.IPAddr{IP: c.group.AsSlice()})
		}})
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return fmt.Errorf("socket: %s on %s: %w", s.what, ifi.Name, err)
		}
	}
	return nil
}

// ListenIPv6 opens a raw IPv6 protocol-112 socket on the interface named
// ifName. In multicast mode it joins ff02::12 on that interface (RFC 5798
// §5.1.2.2). The kernel computes and verifies the VRRP checksum. It needs
// CAP_NET_RAW.
func ListenIPv6(ifName string, cfg Config) (*Conn, error) {
	if err := cfg.Validate(true); err != nil {
		return nil, err
	}
	ifi, err := net.InterfaceByName(ifName)
	if err != nil {
		return nil, fmt.Errorf("socket: interface %q: %w", ifName, err)
	}
	pc, err := net.ListenPacket("ip6:"+strconv.Itoa(vrrp.IPProtocol), "::")
	if err != nil {
		return nil, fmt.Errorf("socket: listen ip6:%d: %w", vrrp.IPProtocol, needsNetRaw(err))
	}
	c := &Conn{cfg: cfg, ifName: ifi.Name, ifIdx: ifi.Index, group: vrrp.MulticastGroup(true), c: pc}
	c.p6 = ipv6.NewPacketConn(pc)
	if err := c.setup6(ifi); err != nil {
		pc.Close()
		return nil, err
	}
	return c, nil
}

func (c *Conn) setup6(ifi *net.Interface) error {
	p := c.p6
	if err := sockopts(c.c, ifi.Name, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL); err != nil {
		return err
	}
	steps := []struct {
		what string
		fn   func() error
	}{
		// RFC 5798 §5.2.8: the kernel fills in and checks the checksum.
		{"checksum offset", func() error { return p.SetChecksum(true, checksumOffset) }},
		// RFC 5798 §5.1.2.3: hop limit 255.
		{"multicast hop limit", func() error { return p.SetMulticastHopLimit(vrrp.TTL) }},
		{"hop limit", func() error { return p.SetHopLimit(vrrp.TTL) }},
		{"multicast loopback", func() error { return p.SetMulticastLoopback(false) }},
		{"multicast interface", func() error { return p.SetMulticastInterface(ifi) }},
		{"control messages", func() error {
			return p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagSrc|ipv6.FlagDst|ipv6.FlagInterface, true)
		}},
	}
	if !c.cfg.Unicast {
		steps = append(steps, struct {
			what string
			fn   func() error
		}{"join " + c.group.String(), func() error {
			return p.JoinGroup(ifi, &net.IPAddr{IP: c.group.AsSlice()})
		}})
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return fmt.Errorf("socket: %s on %s: %w", s.what, ifi.Name, err)
		}
	}
	return nil
}

// needsNetRaw names the capability in an EPERM from opening a raw socket
// (net's error around it repeats the operation and address).
func needsNetRaw(err error) error {
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("a raw socket needs CAP_NET_RAW: %w", unix.EPERM)
	}
	return err
}

// sockopts sets what x/net has no wrapper for: SO_BINDTODEVICE, so only the
// interface's packets are received and sent, and IP(V6)_MULTICAST_ALL 0, so
// only the groups this socket joined are delivered to it (keepalived:
// "Don't accept multicast packets we haven't requested").
func sockopts(pc net.PacketConn, ifName string, level, mcastAll int) error {
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return errors.New("socket: no access to the file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("socket: file descriptor: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		if e := unix.BindToDevice(int(fd), ifName); e != nil {
			serr = fmt.Errorf("socket: SO_BINDTODEVICE %s: %w", ifName, e)
			return
		}
		if e := unix.SetsockoptInt(int(fd), level, mcastAll, 0); e != nil {
			serr = fmt.Errorf("socket: multicast_all off: %w", e)
		}
	}); err != nil {
		return fmt.Errorf("socket: control: %w", err)
	}
	return serr
}
