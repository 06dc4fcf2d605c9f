package config

import (
	"net/netip"

	"github.com/nlb-dev/nlb/vrrp"
)

// VRRPConfig translates the instance into what vrrp runs, with src as the
// advertisement source (the unicast source, or the link's primary address:
// vrrp/link.PrimaryAddress). The caller adds what only it knows: the
// precise sleep (FineSleep) and whether a stop hands over
// (HandoverOnShutdown).
//
// The two packages mean different things by a zero GARP setting, and this
// is the one place that knows: in the configuration (keepalived's
// vrrp_garp_master_delay 0 and vrrp_garp_interval 0) a zero master delay
// means no second burst and a zero interval means back to back; in
// vrrp.GARPConfig zero means "the default" and a negative value "none".
func (in Instance) VRRPConfig(src netip.Addr) vrrp.InstanceConfig {
	unicast := len(in.UnicastPeers) > 0
	addrs := make([]netip.Addr, len(in.VIPs))
	for i, p := range in.VIPs {
		addrs[i] = p.Addr()
	}
	dests := in.UnicastPeers
	if !unicast {
		// RFC 3768 §5.2.2, RFC 9568 §5.1.1.2 / §5.1.2.2: 224.0.0.18 or
		// ff02::12.
		dests = []netip.Addr{vrrp.MulticastGroup(in.IPv6)}
	}
	garp := vrrp.GARPConfig{
		MasterDelay:         in.GARP.MasterDelay,
		MasterRepeat:        in.GARP.MasterRepeat,
		Interval:            in.GARP.Interval,
		MasterRefresh:       in.GARP.MasterRefresh,
		MasterRefreshRepeat: in.GARP.MasterRefreshRepeat,
	}
	if garp.MasterDelay == 0 {
		garp.MasterDelay = -1 // no second burst
	}
	if garp.Interval == 0 {
		garp.Interval = -1 // back to back, as keepalived's vrrp_garp_interval 0
	}
	return vrrp.InstanceConfig{
		Name: in.Name,
		Machine: vrrp.MachineConfig{
			Version:        in.Version,
			VRID:           in.VRID,
			Priority:       in.Priority,
			AdvertInterval: in.Interval,
			Preempt:        in.Preempt,
			PreemptDelay:   in.PreemptDelay,
			Primary:        src,
		},
		Filter: vrrp.Filter{
			Version:   in.Version,
			VRID:      in.VRID,
			Interval:  in.Interval,
			AuthType:  in.AuthType,
			AuthData:  in.AuthData,
			Unicast:   unicast,
			Peers:     in.UnicastPeers,
			Addresses: addrs,
		},
		Addresses:    addrs,
		Destinations: dests,
		Source:       src,
		ChecksumForm: in.ChecksumForm,
		GARP:         garp,
	}
}
