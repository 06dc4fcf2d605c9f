package config

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// This file is the typed view of keepalived.virtualServers for the XDP
// fast path: what each k0s setting becomes in nlb. k0s renders one
// keepalived "virtual_server <ipAddress> <spec.api.port>" block per entry,
// with lb_algo, lb_kind, persistence_timeout, delay_loop and a TCP_CHECK
// per real server (k0s.md §2.3); `nlb controller` runs the fast path for
// them (cplb), unless disableLoadBalancer is true, which in k0s turns off
// IPVS too: virtualServersIgnored then says so.

// virtualServersIgnored is the warning for a non-empty virtualServers
// list with disableLoadBalancer.
const virtualServersIgnored = "ignored: disableLoadBalancer is true (VIPs only, as in k0s: no IPVS, no fast path)"

// VirtualService is one keepalived.virtualServers[] entry resolved for the
// fast path: the VIP:port it balances and what nlb makes of each k0s
// setting. Config.VirtualServers returns them.
type VirtualService struct {
	// Index is the entry's position in virtualServers.
	Index int
	// Path is the entry's field path, e.g.
	// "spec.network.controlPlaneLoadBalancing.keepalived.virtualServers[0]".
	Path string
	// VIP is ipAddress.
	VIP netip.Addr
	// Port is spec.api.port: k0s renders "virtual_server <ipAddress>
	// <apiPort>" and real servers on the same port (direct server return
	// keeps the port).
	Port uint16
	// Persistent is true for every valid entry: k0s always renders
	// persistence_timeout (0 means 360, the range is 1-2678400), so a
	// client address always sticks to one backend. nlb hashes the client
	// address alone (xdplb.Service.Persistent).
	Persistent bool
	// PersistenceTimeout is persistenceTimeoutSeconds, accepted and
	// superseded: Maglev keeps a client on its backend as long as the
	// backend set is unchanged, with no timeout (see Notes).
	PersistenceTimeout time.Duration
	// LBAlgo is lbAlgo, accepted and superseded by Maglev (see Notes).
	LBAlgo string
	// LBKind is lbKind; only "DR" is valid (layer-2 direct server
	// return, honoured).
	LBKind string
	// DelayLoop is delayLoop, accepted and superseded by the /readyz
	// checks (see Notes).
	DelayLoop time.Duration
	// Instance is the index of the vrrpInstances entry whose virtualIPs
	// hold VIP, or -1 when none does (Config.Warnings then says that no
	// node holds it): the fast path forwards on that instance's Master.
	Instance int
	// Notes say, one per superseded field, what nlb does instead of the
	// k0s setting; `nlb controller` logs them once when it runs the fast
	// path.
	Notes []VirtualServiceNote
}

// VirtualServiceNote is one k0s setting that nlb accepts and supersedes.
type VirtualServiceNote struct {
	// Field is the field path, e.g. "...virtualServers[0].lbAlgo".
	Field string
	// Value is the setting's value after defaults ("rr", "360", "1m0s").
	Value string
	// Note says what nlb does instead.
	Note string
}

// String returns "field: value: note".
func (n VirtualServiceNote) String() string {
	return n.Field + ": " + n.Value + ": " + n.Note
}

// vipInstance returns the index of the first instance with VIP a, or -1.
func vipInstance(insts []Instance, a netip.Addr) int {
	for i, in := range insts {
		for _, pfx := range in.VIPs {
			if pfx.Addr() == a {
				return i
			}
		}
	}
	return -1
}

// notAVIPWarning is the warning for a virtual server address that no
// vrrpInstances entry holds (k0s does not check it either).
func notAVIPWarning(a netip.Addr) string {
	return fmt.Sprintf("%s is not a virtualIPs address of any vrrpInstances entry: no node holds it, so no "+
		"traffic to it reaches a load balancer (k0s does not check this either)", a)
}

// lbKindProblem returns why lbKind v is refused, or "" for DR. k0s accepts
// NAT, DR and TUN; nlb's fast path is layer-2 direct server return only.
func lbKindProblem(v string) string {
	const alt = "; use DR (k0s's default: direct server return, the backends share the VIP's link), " +
		"or remove virtualServers to use nlb's proxy"
	switch v {
	case "DR":
		return ""
	case "NAT":
		return `"NAT" is not supported: nlb's fast path does direct server return only, and NAT needs every ` +
			"API server's replies routed back through the VRRP Master, which nlb does not set up" + alt
	case "TUN":
		return `"TUN" is not supported: nlb's fast path does not encapsulate (no IPIP tunnels to the ` +
			"backends)" + alt
	}
	return supported(v, lbKinds())
}

// lbAlgoNote says what replaces IPVS scheduler a.
func lbAlgoNote(a string) string {
	const maglev = "superseded by Maglev consistent hashing of the client address: every node builds the same " +
		"table from the same backends, so a VIP move or a lost flow entry keeps each connection's backend"
	switch a {
	case "sh":
		return maglev + " (sh hashes the source address too, but with a table that moves most clients when a backend goes)"
	case "lc", "wlc", "lblc", "sed", "nq":
		return maglev + " (" + a + " counts connections per director, which a new Master does not know)"
	}
	return maglev
}

// VirtualServers returns keepalived.virtualServers resolved for the fast
// path, in list order, or nil when there are none. Valid after a Load or
// Validate that returned no error: entries with problems are skipped.
func (c *Config) VirtualServers() []VirtualService {
	ka := c.ControlPlaneLoadBalancing.Keepalived
	if ka == nil || len(ka.VirtualServers) == 0 {
		return nil
	}
	path := child(child(c.Form.cplbPath(), "keepalived"), "virtualServers")
	var out []VirtualService
	for i, vs := range ka.VirtualServers {
		vip, err := netip.ParseAddr(vs.IPAddress)
		if err != nil || lbKindProblem(vs.LBKind) != "" || !slices.Contains(lbAlgos(), vs.LBAlgo) ||
			vs.PersistenceTimeoutSeconds < 1 || vs.DelayLoop.Std() <= 0 {
			continue
		}
		sp := index(path, i)
		s := VirtualService{
			Index:              i,
			Path:               sp,
			VIP:                vip,
			Port:               uint16(c.APIPort()),
			Persistent:         true,
			PersistenceTimeout: time.Duration(vs.PersistenceTimeoutSeconds) * time.Second,
			LBAlgo:             vs.LBAlgo,
			LBKind:             vs.LBKind,
			DelayLoop:          vs.DelayLoop.Std(),
			Instance:           vipInstance(c.instances, vip),
		}
		s.Notes = []VirtualServiceNote{
			{child(sp, "lbAlgo"), vs.LBAlgo, lbAlgoNote(vs.LBAlgo)},
			{child(sp, "persistenceTimeoutSeconds"), fmt.Sprint(vs.PersistenceTimeoutSeconds),
				"superseded: a client address sticks to one backend for as long as the backend set is unchanged, " +
					"with no timeout (Maglev on the client address; IPVS forgets a client this many seconds after its last connection)"},
			{child(sp, "delayLoop"), s.DelayLoop.String(),
				"superseded by the /readyz checks of the proxy: a dead API server leaves the table after their fall " +
					"time (3 failed checks 500ms apart by default), not after a TCP_CHECK every delayLoop"},
		}
		out = append(out, s)
	}
	return out
}
