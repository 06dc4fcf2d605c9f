//go:build linux

package link

import (
	"bytes"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// Resolver answers config.InterfaceResolver's questions on Linux: netlink
// for the default route, the net package for links. cmd/nlb passes it to
// config.Config.ResolveInterfaces, which keeps package config free of OS
// effects.
type Resolver struct{}

// NewResolver returns the interface resolver of this system.
func NewResolver() Resolver { return Resolver{} }

// DefaultRouteInterface returns the link of the first route, of any
// address family, whose destination is nil, 0.0.0.0/0 or ::/0 in the main
// table (k0s cplb_linux.go getDefaultNIC).
func (Resolver) DefaultRouteInterface() (string, error) {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return "", fmt.Errorf("listing routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst != nil && !r.Dst.IP.IsUnspecified() {
			continue
		}
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		idx := r.LinkIndex
		if idx == 0 && len(r.MultiPath) > 0 { // ECMP default route: first next hop
			idx = r.MultiPath[0].LinkIndex
		}
		if idx == 0 {
			continue
		}
		link, err := netlink.LinkByIndex(idx)
		if err != nil {
			return "", fmt.Errorf("link %d of the default route: %w", idx, err)
		}
		return link.Attrs().Name, nil
	}
	return "", fmt.Errorf("no default route found")
}

// InterfaceByMAC returns the first link whose hardware address is mac.
func (Resolver) InterfaceByMAC(mac net.HardwareAddr) (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("listing interfaces: %w", err)
	}
	for _, ifc := range ifs {
		if bytes.Equal(ifc.HardwareAddr, mac) {
			return ifc.Name, nil
		}
	}
	return "", fmt.Errorf("no interface has MAC address %s", mac)
}

// InterfaceExists returns nil if the link exists.
func (Resolver) InterfaceExists(name string) error {
	_, err := net.InterfaceByName(name)
	return err
}
