package router

import (
	"time"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/vrrp"
)

// Status is the JSON of one VRRP instance in a /status document (nlb vrrp,
// nlb controller), which nlb status renders and the labs and the demo read.
type Status struct {
	// Name and VRID identify the instance.
	Name string `json:"name"`
	VRID uint8  `json:"vrid"`
	// Interface is the link it runs on.
	Interface string `json:"interface"`
	// State is "Initialize", "Backup" or "Master".
	State string `json:"state"`
	// Priority is the effective priority (health tracking changes it).
	Priority uint8 `json:"priority"`
	// Master is the current Master's address as last seen; empty when
	// unknown.
	Master string `json:"master,omitempty"`
	// VIPs are the configured virtual addresses with their prefix length.
	VIPs []string `json:"vips"`
	// VIPsConfigured reports whether the VIPs are on the interface.
	VIPsConfigured bool `json:"vips_configured"`
	// Fault is true while the interface is down or without carrier.
	Fault bool `json:"fault,omitempty"`
	// Transitions counts state changes; LastTransition (RFC 3339, UTC)
	// and LastReason describe the latest.
	Transitions    uint64 `json:"transitions"`
	LastTransition string `json:"last_transition,omitempty"`
	LastReason     string `json:"last_reason,omitempty"`
	// MasterDownMS is the current Master_Down_Interval in milliseconds
	// (RFC 9568 §6.1).
	MasterDownMS float64 `json:"master_down_interval_ms"`
}

// StatusOf is the Status of the instance configured as in, whose protocol
// status is s.
func StatusOf(in config.Instance, s vrrp.InstanceStatus) Status {
	st := Status{
		Name: s.Name, VRID: s.VRID, Interface: in.Interface, State: s.State.String(),
		Priority: s.Priority, VIPsConfigured: s.VIPsConfigured, Fault: s.Fault, Transitions: s.Transitions,
		LastReason: s.LastReason, MasterDownMS: float64(s.MasterDownInterval) / float64(time.Millisecond),
	}
	if s.Master.IsValid() {
		st.Master = s.Master.String()
	}
	if !s.LastTransition.IsZero() {
		st.LastTransition = s.LastTransition.UTC().Format(time.RFC3339Nano)
	}
	for _, v := range in.VIPs {
		st.VIPs = append(st.VIPs, v.String())
	}
	return st
}

// GroupStatus is the JSON of nlb vrrp's /status: every instance.
type GroupStatus struct {
	// Instances are in configuration order.
	Instances []Status `json:"instances"`
}
