//go:build linux

package announce

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/ipv6"
)

// Announcer sends gratuitous ARPs and unsolicited Neighbor Advertisements
// on one interface. Create it with [Dial]; it is not safe for concurrent
// use.
type Announcer struct {
	ifi    *net.Interface
	arp    *packet.Conn
	ndp    *ndp.Conn // nil if IPv6 is unavailable; ndpErr says why
	ndpErr error
}

// Dial opens the sockets for announcing on the interface named ifName: a
// packet socket for ARP and an ICMPv6 socket for NDP. It needs
// CAP_NET_RAW. If IPv6 is unavailable on the interface, Dial still
// succeeds and Announce fails for IPv6 addresses only.
func Dial(ifName string) (*Announcer, error) {
	ifi, err := net.InterfaceByName(ifName)
	if err != nil {
		return nil, fmt.Errorf("announce: interface %q: %w", ifName, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("announce: interface %s has no Ethernet address", ifName)
	}
	// Protocol 0: the socket sends whole frames and receives nothing.
	pc, err := packet.Listen(ifi, packet.Raw, 0, nil)
	if err != nil {
		if errors.Is(err, syscall.EPERM) {
			err = fmt.Errorf("a packet socket needs CAP_NET_RAW: %w", err)
		}
		return nil, fmt.Errorf("announce: packet socket on %s: %w", ifName, err)
	}
	a := &Announcer{ifi: ifi, arp: pc}
	nc, _, err := ndp.Listen(ifi, ndp.Unspecified)
	if err != nil {
		a.ndpErr = err
		return a, nil
	}
	// Send only: accept no ICMPv6 message at all.
	var f ipv6.ICMPFilter
	f.SetAll(true)
	if err := nc.SetICMPFilter(&f); err != nil {
		nc.Close()
		pc.Close()
		return nil, fmt.Errorf("announce: ICMPv6 filter on %s: %w", ifName, err)
	}
	a.ndp = nc
	return a, nil
}

// Announce sends one gratuitous ARP per IPv4 address and one unsolicited
// Neighbor Advertisement per IPv6 address in vips. It tries every address
// and returns the errors joined.
func (a *Announcer) Announce(vips []netip.Addr) error {
	var errs []error
	for _, vip := range vips {
		var err error
		if vip.Is4() || vip.Is4In6() {
			err = a.garp(vip.Unmap())
		} else {
			err = a.na(vip)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (a *Announcer) garp(vip netip.Addr) error {
	b, err := GratuitousARPFrame(a.ifi.HardwareAddr, vip)
	if err != nil {
		return err
	}
	if _, err := a.arp.WriteTo(b, &packet.Addr{HardwareAddr: broadcast()}); err != nil {
		return fmt.Errorf("announce: gratuitous ARP for %v on %s: %w", vip, a.ifi.Name, err)
	}
	return nil
}

func (a *Announcer) na(vip netip.Addr) error {
	if a.ndp == nil {
		return fmt.Errorf("announce: neighbor advertisement for %v on %s: no ICMPv6 socket: %w", vip, a.ifi.Name, a.ndpErr)
	}
	m, err := UnsolicitedNA(a.ifi.HardwareAddr, vip)
	if err != nil {
		return err
	}
	// keepalived sends from the VIP. The kernel refuses a source that is
	// not configured here; then the link-local address (or, lacking one,
	// the kernel's choice) is used.
	cm := &ipv6.ControlMessage{HopLimit: ndp.HopLimit, IfIndex: a.ifi.Index, Src: vip.WithZone("").AsSlice()}
	err = a.ndp.WriteTo(m, cm, AllNodes())
	if err != nil {
		cm.Src = a.linkLocal()
		err = a.ndp.WriteTo(m, cm, AllNodes())
	}
	if err != nil {
		return fmt.Errorf("announce: neighbor advertisement for %v on %s: %w", vip, a.ifi.Name, err)
	}
	return nil
}

// linkLocal returns the interface's link-local address, or nil.
func (a *Announcer) linkLocal() net.IP {
	addrs, err := a.ifi.Addrs()
	if err != nil {
		return nil
	}
	for _, ad := range addrs {
		if n, ok := ad.(*net.IPNet); ok && n.IP.To4() == nil && n.IP.IsLinkLocalUnicast() {
			return n.IP
		}
	}
	return nil
}

// Close closes the sockets.
func (a *Announcer) Close() error {
	var errs []error
	if err := a.arp.Close(); err != nil {
		errs = append(errs, fmt.Errorf("announce: close: %w", err))
	}
	if a.ndp != nil {
		if err := a.ndp.Close(); err != nil {
			errs = append(errs, fmt.Errorf("announce: close: %w", err))
		}
	}
	return errors.Join(errs...)
}
