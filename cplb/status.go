package cplb

import (
	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/vrrp"
	"github.com/nlb-dev/nlb/vrrp/router"
)

// Status is the JSON of the controller's /status, which `nlb status`
// renders and the demo and the labs read.
type Status struct {
	// Instances are the VRRP instances in configuration order.
	Instances []InstanceStatus `json:"instances"`
	// Health is the health tracking; nil when it is off.
	Health *HealthStatus `json:"health,omitempty"`
	// Steering is the steering of VIP:apiPort into the proxy.
	Steering SteeringStatus `json:"steering"`
	// Proxy is the proxy's status; nil with disableLoadBalancer.
	Proxy *lb.Status `json:"proxy,omitempty"`
	// FastPath is the XDP fast path of keepalived.virtualServers; nil
	// when there are none.
	FastPath *FastPathStatus `json:"fast_path,omitempty"`
}

// FastPathStatus is the XDP fast path that balances the virtual servers.
type FastPathStatus struct {
	// Mode is "xdp".
	Mode string `json:"mode"`
	// Interfaces are the VRRP interfaces with a datapath.
	Interfaces []XDPInterfaceStatus `json:"interfaces"`
}

// XDPInterfaceStatus is the datapath of one interface.
type XDPInterfaceStatus struct {
	// Interface is its name.
	Interface string `json:"interface"`
	// Attach is the attach mode: xdp-native, xdp-generic or tcx-ingress;
	// Skipped say why the modes before it did not attach.
	Attach  string   `json:"attach"`
	Skipped []string `json:"skipped,omitempty"`
	// Adopted says the datapath was taken over from a previous nlb
	// (pinned in bpffs).
	Adopted bool `json:"adopted"`
	// Forwarding is the VRRP state the program runs with: true on the
	// Master. Undecided: an adopted datapath that still forwards as the
	// previous nlb left it, until VRRP decides.
	Forwarding bool `json:"forwarding"`
	Undecided  bool `json:"undecided,omitempty"`
	// FlowTable is the flow table's capacity and kernel memory.
	FlowTable FlowTableStatus `json:"flow_table"`
	// Services are the virtual servers on this interface.
	Services []XDPServiceStatus `json:"services"`
	// Events are what the program passed to the local stack instead of
	// forwarding, by nlb_xdp_events_total's event label.
	Events map[string]uint64 `json:"events,omitempty"`
	// Error is the last error writing the services, if any.
	Error string `json:"error,omitempty"`
}

// FlowTableStatus is the XDP flow table's size.
type FlowTableStatus struct {
	// Entries is its capacity (flows).
	Entries int `json:"entries"`
	// MemoryBytes is the kernel memory it holds (preallocated).
	MemoryBytes uint64 `json:"memory_bytes"`
}

// XDPCounters are a service's or a backend's counters in the program.
type XDPCounters struct {
	Packets  uint64 `json:"packets"`
	Bytes    uint64 `json:"bytes"`
	NewFlows uint64 `json:"new_flows"`
	Rehashed uint64 `json:"rehashed_flows"`
}

// XDPServiceStatus is one virtual server.
type XDPServiceStatus struct {
	// VIP and Port name it; Persistent: the client address alone picks
	// the backend.
	VIP        string `json:"vip"`
	Port       uint16 `json:"port"`
	Persistent bool   `json:"persistent"`
	// FailOpen: no backend is healthy, the table holds every backend
	// with a MAC.
	FailOpen bool `json:"fail_open"`
	// Problem says why no table could be built, if so.
	Problem string `json:"problem,omitempty"`
	XDPCounters
	// Backends are the proxy's backends as the fast path uses them.
	Backends []XDPBackendStatus `json:"backends"`
}

// XDPBackendStatus is one backend of a virtual server.
type XDPBackendStatus struct {
	// Address is the backend's address:port.
	Address string `json:"address"`
	// MAC is its Ethernet address on the interface; Local: this node.
	MAC   string `json:"mac,omitempty"`
	Local bool   `json:"local,omitempty"`
	// Healthy is the proxy's health check result.
	Healthy bool `json:"healthy"`
	// Slots is how many Maglev table entries send new flows to it.
	Slots int `json:"slots"`
	// Problem says why it is left out of the table (no MAC, not on the
	// VIP's link, another port).
	Problem string `json:"problem,omitempty"`
	XDPCounters
}

// inTable counts the backends that have slots.
func (s XDPServiceStatus) inTable() int {
	n := 0
	for _, b := range s.Backends {
		if b.Slots > 0 {
			n++
		}
	}
	return n
}

// InstanceStatus is a VRRP instance (as in nlb vrrp's /status) with its
// latest transitions.
type InstanceStatus struct {
	router.Status
	// Recent are the latest state changes, oldest first.
	Recent []TransitionStatus `json:"recent_transitions,omitempty"`
}

// TransitionStatus is one state change of a VRRP instance.
type TransitionStatus struct {
	// At is when (RFC 3339, UTC).
	At string `json:"at"`
	// From and To are the states, Reason why.
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason"`
}

// SteeringStatus is the steering of VIP:apiPort into the proxy.
type SteeringStatus struct {
	// Mode is "sklookup", "nftables" or "off" (disableLoadBalancer).
	Mode string `json:"mode"`
	// VIPs are the steered addresses, Port the API port clients use on
	// them, ProxyPort the proxy's (userSpaceProxyBindPort).
	VIPs      []string `json:"vips,omitempty"`
	Port      int      `json:"port"`
	ProxyPort int      `json:"proxy_port,omitempty"`
}

// HealthStatus is the health tracking that the VIP follows.
type HealthStatus struct {
	// Target is the local API server checked.
	Target string `json:"target"`
	// Interval is the check interval (a Go duration).
	Interval string `json:"interval"`
	// Fall, Rise and Weight are the tracking's settings
	// (keepalived.apiServerHealth).
	Fall   int `json:"fall"`
	Rise   int `json:"rise"`
	Weight int `json:"weight"`
	// Tracked is the first instance's tracker.
	Tracked vrrp.TrackStatus `json:"tracked"`
	// Bootstrap, while the check has never passed and the startup grace
	// runs, says that failures are not counted yet; empty after.
	Bootstrap string `json:"bootstrap,omitempty"`
	// Denied is the status of the last check the local API server
	// answered with 401 or 403, counted as up; empty after a plain pass.
	Denied string `json:"denied,omitempty"`
}
