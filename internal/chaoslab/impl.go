package chaoslab

import (
	"context"
	"net/netip"
	"time"

	"github.com/nlb-dev/nlb/vrrp"
)

// Impl is a control plane load balancer running on the controllers h1-h3
// of a lab: nlb (NLB) or keepalived + HAProxy (Peer).
type Impl interface {
	// Name labels results: "nlb" or "keepalived+haproxy".
	Name() string
	// Port is the port clients use on the VIP.
	Port() int
	// Priority is the VRRP priority node i is configured with.
	Priority(i int) uint8
	// Start starts node i's processes (once more after Kill), without
	// waiting for them to be ready.
	Start(i int) error
	// Kill SIGKILLs every process of node i and waits until they are
	// reaped.
	Kill(i int) error
	// Stop stops node i gracefully (SIGTERM) and waits.
	Stop(i int) error
	// Ready checks once that every node's processes run and report
	// themselves healthy; it returns why not.
	Ready(ctx context.Context) error
	// Tail returns the end of node i's logs.
	Tail(i, n int) string
}

// Params are the VRRP settings both implementations share.
type Params struct {
	// VIP is the virtual address with its prefix.
	VIP netip.Prefix
	// VRID is the virtual router ID.
	VRID uint8
	// AuthPass is the VRRPv2 PASS password (1-8 characters).
	AuthPass string
	// Advert is the advertisement interval, whole seconds (VRRPv2).
	Advert time.Duration
}

// DefaultParams are the bench's settings: k0s's VRID 51, 1 s adverts.
func DefaultParams() Params {
	return Params{
		VIP:      netip.MustParsePrefix("192.0.2.100/24"),
		VRID:     51,
		AuthPass: "chaos",
		Advert:   time.Second,
	}
}

// MasterDown returns Master_Down_Interval of a VRRPv2 backup with
// priority prio (vrrp.MasterDownInterval).
func (p Params) MasterDown(prio uint8) time.Duration {
	return vrrp.MasterDownInterval(vrrp.Version2, prio, p.Advert)
}

// TakeoverPriority is the priority of the node that takes over when the
// master dies: the highest one configured on the other nodes.
func TakeoverPriority(impl Impl, nodes, master int) uint8 {
	var p uint8
	for i := range nodes {
		if i != master {
			p = max(p, impl.Priority(i))
		}
	}
	return p
}
