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
}
