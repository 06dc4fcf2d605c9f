package config

import (
	"net/netip"
	"slices"
	"time"

	"github.com/nlb-dev/nlb/vrrp"
)

// Instance is one VRRP instance with every default applied and every
// string parsed: what cmd/nlb turns into a vrrp instance.
type Instance struct {
	// Name is the instance name, "k0s-vip-<index>" by default.
	Name string
	// Index is the position in keepalived.vrrpInstances.
	Index int
	// Interface is the link name after Config.ResolveInterfaces; before
	// it, the configured value (empty for the default route, or a MAC).
	Interface string
	// VRID is the virtual router ID.
	VRID uint8
	// Priority is this node's priority.
	Priority uint8
	// Preempt is false for keepalived's nopreempt.
	Preempt bool
	// PreemptDelay delays preemption after start-up (keepalived preempt_delay).
	PreemptDelay time.Duration
	// Version is VRRPv2 or VRRPv3.
	Version vrrp.Version
	// IPv6 reports the address family of the VIPs.
	IPv6 bool
	// Interval is the advertisement interval: whole seconds for VRRPv2, a
	// multiple of 10ms for VRRPv3.
	Interval time.Duration
	// AuthType is vrrp.AuthPassword for VRRPv2 and vrrp.AuthNone for VRRPv3.
	AuthType vrrp.AuthType
	// AuthData is authPass zero-padded for VRRPv2; zero for VRRPv3.
	AuthData [8]byte
	// VIPs are the virtual addresses with the prefix length they are
	// added with.
	VIPs []netip.Prefix
	// UnicastSource is the unicast source address; invalid (zero) when
	// the instance uses multicast.
	UnicastSource netip.Addr
	// UnicastPeers are the unicast destinations; empty for multicast.
	UnicastPeers []netip.Addr
	// ChecksumForm selects the VRRPv3/IPv4 checksum form.
	ChecksumForm vrrp.ChecksumForm
	// GARP is the gratuitous ARP / unsolicited NA schedule.
	GARP GARP
	// AddressLabel is the RFC 6724 label for IPv6 VIPs (unused for IPv4).
	AddressLabel uint32
}

// GARP is a resolved gratuitous ARP / unsolicited NA schedule (keepalived
// vrrp_garp_* semantics).
type GARP struct {
	// MasterDelay is the delay of the second burst after becoming master;
	// 0 means none.
	MasterDelay time.Duration
	// MasterRepeat is the number of messages per burst.
	MasterRepeat int
	// MasterRefresh is the period of refresh bursts while master; 0 means
	// none.
	MasterRefresh time.Duration
	// MasterRefreshRepeat is the number of messages per refresh burst.
	MasterRefreshRepeat int
	// Interval is the gap between messages of one burst.
	Interval time.Duration
}

// keepalived's GARP defaults (keepalived.conf(5) vrrp_garp_*).
const (
	defaultGARPMasterDelay         = 5 * time.Second
	defaultGARPMasterRepeat        = 5
	defaultGARPMasterRefreshRepeat = 1
)

// DefaultGARP returns keepalived's defaults: a burst of 5 on becoming
// master, a second burst of 5 after 5s, no periodic refresh.
func DefaultGARP() GARP {
	return GARP{
		MasterDelay:         defaultGARPMasterDelay,
		MasterRepeat:        defaultGARPMasterRepeat,
		MasterRefreshRepeat: defaultGARPMasterRefreshRepeat,
	}
}

// VRRPInstances returns the resolved instances, in configuration order. It
// returns nil when control plane load balancing is not enabled (k0s starts
// nothing then) or the keepalived section is missing. Call
// ResolveInterfaces first to get link names in Interface.
func (c *Config) VRRPInstances() []Instance {
	if !c.ControlPlaneLoadBalancing.Enabled {
		return nil
	}
	out := make([]Instance, len(c.instances))
	for i, in := range c.instances {
		in.VIPs = slices.Clone(in.VIPs)
		in.UnicastPeers = slices.Clone(in.UnicastPeers)
		out[i] = in
	}
	return out
}

// Warnings returns things that are accepted but ignored or dubious, one
// "path: message" string each: keepalived templates, virtualServers
// settings nlb does not use, fields k0s ignores. They are not errors.
func (c *Config) Warnings() []string {
	return slices.Clone(c.warnings)
}

// KonnectivityAgentPort returns spec.konnectivity.agentPort, 8132 by
// default.
func (c *Config) KonnectivityAgentPort() int {
	if c.Konnectivity.AgentPort == 0 {
		return DefaultKonnectivityAgentPort
	}
	return c.Konnectivity.AgentPort
}

// APIPort returns spec.api.port, 6443 by default.
func (c *Config) APIPort() int {
	if c.API.Port == 0 {
		return DefaultAPIPort
	}
	return c.API.Port
}

// Proxy returns the block of the configured NLLB type (envoyProxy or
// traefik) with defaults applied; never nil after Validate.
func (n *NodeLocalLoadBalancing) Proxy() *NLLBProxy {
	if n.Type == NLLBTypeTraefik {
		return n.Traefik
	}
	return n.EnvoyProxy
}

// BindPorts returns the NLLB loopback ports for the API server and
// konnectivity, defaults applied (7443, 7132).
func (n *NodeLocalLoadBalancing) BindPorts() (apiServer, konnectivity int) {
	apiServer, konnectivity = DefaultNLLBAPIServerBindPort, DefaultNLLBKonnectivityServerBindPort
	if px := n.Proxy(); px != nil {
		if px.APIServerBindPort != 0 {
			apiServer = int(px.APIServerBindPort)
		}
		if px.KonnectivityServerBindPort != nil {
			konnectivity = int(*px.KonnectivityServerBindPort)
		}
	}
	return apiServer, konnectivity
}
