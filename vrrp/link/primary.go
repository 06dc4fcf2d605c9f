package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// PrimaryAddress returns the address advertisements are sent from on the
// link ifName: see [PickPrimary].
func PrimaryAddress(ifName string, ipv6 bool, vips []netip.Prefix) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(ifName)
	if err != nil {
		return netip.Addr{}, err
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("list addresses of %s: %w", ifName, err)
	}
	var list []netip.Addr
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
				list = append(list, ip.Unmap())
			}
		}
	}
	return PickPrimary(list, ipv6, vips)
}

// PickPrimary picks the advertisement source among a link's addresses, in
// the kernel's order: for IPv4 the first address that is neither a VIP nor
// link-local (RFC 3768 §5.2.1, "the primary IP address of the interface"),
// for IPv6 the first link-local address that is not a VIP (RFC 5798
// §5.1.2.1, RFC 9568 §5.1.2.1), without its zone.
func PickPrimary(addrs []netip.Addr, ipv6 bool, vips []netip.Prefix) (netip.Addr, error) {
	for _, ip := range addrs {
		ip = ip.Unmap()
		if slices.ContainsFunc(vips, func(v netip.Prefix) bool { return v.Addr().WithZone("") == ip.WithZone("") }) {
			continue
		}
		switch {
		case !ipv6 && ip.Is4() && !ip.IsLinkLocalUnicast():
			return ip, nil
		case ipv6 && ip.Is6() && ip.IsLinkLocalUnicast():
			return ip.WithZone(""), nil
		}
	}
	if ipv6 {
		return netip.Addr{}, errors.New("no IPv6 link-local address (VRRPv3 advertisements must come from one, RFC 5798 §5.1.2.1)")
	}
	return netip.Addr{}, errors.New("no IPv4 address to send advertisements from (RFC 3768 §5.2.1); add one or set unicastSourceIP")
}
