package config

import (
	"fmt"
	"net"
)

// InterfaceResolver answers the three questions interface resolution asks
// of the operating system. vrrp/link.Resolver implements it; tests use fakes.
// This keeps OS effects out of the rest of the package.
type InterfaceResolver interface {
	// DefaultRouteInterface returns the link of the first default route of
	// any address family (k0s cplb_linux.go getDefaultNIC).
	DefaultRouteInterface() (string, error)
	// InterfaceByMAC returns the link with that hardware address (k0s
	// cplb_linux.go getNIC).
	InterfaceByMAC(mac net.HardwareAddr) (string, error)
	// InterfaceExists returns nil if a link with that name exists.
	InterfaceExists(name string) error
}

// ResolveInterfaces turns every instance's interface into a link name, as
// k0s's VRRPInstance.validate does: empty means the default-route
// interface, a value that parses as a MAC address is looked up by address,
// anything else must name an existing link. It then re-checks that no VRID
// is used twice on one link and family, now that names are known. The
// resolved names are written back into the spec and into VRRPInstances.
// It does nothing when control plane load balancing is not enabled. Every
// problem is reported in one *ValidationError.
func (c *Config) ResolveInterfaces(r InterfaceResolver) error {
	ka := c.ControlPlaneLoadBalancing.Keepalived
	if !c.ControlPlaneLoadBalancing.Enabled || ka == nil {
		return nil
	}
	if len(c.instances) != len(ka.VRRPInstances) {
		return fmt.Errorf("config: ResolveInterfaces called before Validate")
	}
	vpath := child(child(c.Form.cplbPath(), "keepalived"), "vrrpInstances")
	var p problems
	var defIface string
	var defErr error
	defDone := false
	for i := range ka.VRRPInstances {
		in := &ka.VRRPInstances[i]
		ipath := child(index(vpath, i), "interface")
		name := in.Interface
		var err error
		if name == "" {
			if !defDone {
				defIface, defErr = r.DefaultRouteInterface()
				defDone = true
			}
			name, err = defIface, defErr
			if err != nil {
				err = fmt.Errorf("failed to get default NIC: %w", err)
			} else if name == "" {
				err = fmt.Errorf("failed to get default NIC: no default route")
			}
		} else if mac, perr := net.ParseMAC(name); perr == nil {
			name, err = r.InterfaceByMAC(mac)
			if err != nil {
				err = fmt.Errorf("failed to get NIC for MAC address %s: %w", mac, err)
			}
		} else if err = r.InterfaceExists(name); err != nil {
			err = fmt.Errorf("interface %q: %w", name, err)
		}
		if err != nil {
			p.add(ipath, err.Error())
			continue
		}
		in.Interface = name
		c.instances[i].Interface = name
	}
	if len(p.list) == 0 {
		checkVRIDs(&p, vpath, c.instances)
	}
	return p.err()
}
