package socket

import (
	"errors"
	"fmt"
	"net/netip"
)

// Config is what a Conn needs besides its interface.
type Config struct {
	// Source is the source address of every advertisement sent: the
	// interface's primary IPv4 address (RFC 3768 §5.2.1), or for IPv6 the
	// interface's link-local address in multicast mode (RFC 5798
	// §5.1.2.1). It must be configured on the interface. Required.
	Source netip.Addr
	// Unicast sends advertisements to Peers instead of the multicast
	// group, and does not join the group.
	Unicast bool
	// Peers are the unicast peers. WriteTo in unicast mode accepts only
	// these destinations. Unused in multicast mode.
	Peers []netip.Addr
}

// Validate checks the configuration for a socket of the given family.
func (c Config) Validate(ipv6 bool) error {
	family := "IPv4"
	if ipv6 {
		family = "IPv6"
	}
	switch {
	case !c.Source.IsValid():
		return errors.New("socket: source address required")
	case c.Source.Zone() != "":
		return fmt.Errorf("socket: source %v: no zone expected", c.Source)
	case c.Source.Is6() != ipv6 || c.Source.Is4In6():
		return fmt.Errorf("socket: source %v is not %s", c.Source, family)
	case c.Source.IsMulticast() || c.Source.IsUnspecified() || c.Source.IsLoopback():
		return fmt.Errorf("socket: source %v is not a unicast interface address", c.Source)
	case ipv6 && !c.Unicast && !c.Source.IsLinkLocalUnicast():
		// RFC 5798 §5.1.2.1.
		return fmt.Errorf("socket: IPv6 multicast source %v must be link-local", c.Source)
	}
	if !c.Unicast {
		return nil
	}
	for _, p := range c.Peers {
		switch {
		case !p.IsValid():
			return errors.New("socket: invalid peer address")
		case p.Is6() != ipv6 || p.Is4In6():
			return fmt.Errorf("socket: peer %v is not %s", p, family)
		case p.IsMulticast() || p.IsUnspecified():
			return fmt.Errorf("socket: peer %v is not a unicast address", p)
		case p.WithZone("") == c.Source:
			return fmt.Errorf("socket: peer %v is our own source", p)
		}
	}
	return nil
}
