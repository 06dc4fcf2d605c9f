// Package vrrplab runs VRRP nodes, nlb or keepalived with the same
// parameters, on the hosts of a netlab lab. The demo and the failover
// benchmark drive it; tests have their own finer-grained helpers.
package vrrplab

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nlb-dev/nlb/internal/keepalived"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
	"github.com/nlb-dev/nlb/vrrp"
)

// Impl names a VRRP implementation.
type Impl string

// The implementations a lab can run.
const (
	NLB        Impl = "nlb"
	Keepalived Impl = "keepalived"
)

// Params are the VRRP settings shared by every node of a run.
type Params struct {
	// Version is 2 or 3.
	Version int
	// Interval is the advertisement interval (whole seconds for v2).
	Interval time.Duration
	// VRID is the virtual router ID.
	VRID uint8
	// VIP is the virtual address with its prefix.
	VIP netip.Prefix
	// AuthPass is the VRRPv2 PASS password; ignored for v3.
	AuthPass string
}

// Skew returns Skew_Time for priority prio (vrrp.SkewTime).
func (p Params) Skew(prio uint8) time.Duration {
	return vrrp.SkewTime(vrrp.Version(p.Version), prio, p.Interval)
}

// MasterDown returns Master_Down_Interval for priority prio
// (vrrp.MasterDownInterval).
func (p Params) MasterDown(prio uint8) time.Duration {
	return vrrp.MasterDownInterval(vrrp.Version(p.Version), prio, p.Interval)
}

// Node is one running VRRP daemon on a lab host.
type Node struct {
	Impl     Impl
	Host     *netlab.Host
	Priority uint8

	proc *netlab.Process
}

// Start runs impl on host with priority prio. nlbPath is the nlb binary;
// dir is a scratch directory of the node for its configuration, log and
// pid files.
func Start(impl Impl, nlbPath string, host *netlab.Host, p Params, prio uint8, dir string) (*Node, error) {
	n := &Node{Impl: impl, Host: host, Priority: prio}
	switch impl {
	case NLB:
		cfgPath := filepath.Join(dir, "nlb.yaml")
		if err := os.WriteFile(cfgPath, NLBConfig(host.IfName, p, prio), 0o600); err != nil {
			return nil, err
		}
		n.proc = netlab.NewProcess("nlb@"+host.Name, filepath.Join(dir, "nlb.log"), host,
			nlbPath, "vrrp", "--config", cfgPath, "--log-format", "json")
		if err := n.proc.Start(); err != nil {
			return nil, fmt.Errorf("vrrplab: %w", err)
		}
	case Keepalived:
		in := keepalived.Instance{
			Name: "VI_1", Interface: host.IfName, VRID: p.VRID, Priority: prio,
			Version: p.Version, AdvertInterval: p.Interval, VIPs: []netip.Prefix{p.VIP},
		}
		if p.Version == 2 {
			in.AuthPass = p.AuthPass
		}
		conf, err := keepalived.Render([]keepalived.Instance{in})
		if err != nil {
			return nil, err
		}
		if n.proc, err = keepalived.Start(host, dir, conf); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("vrrplab: unknown implementation %q", impl)
	}
	return n, nil
}

// NLBConfig renders the nlb configuration of one node: a k0s ClusterConfig
// with one vrrpInstances entry (authPass "nlb" when p has none).
func NLBConfig(ifName string, p Params, prio uint8) []byte {
	pass := p.AuthPass
	if pass == "" {
		pass = "nlb"
	}
	return nlbtest.K0sConfig{Instances: []nlbtest.VRRPInstance{{
		VIPs: []netip.Prefix{p.VIP}, Interface: ifName, VRID: int(p.VRID), AuthPass: pass,
		Priority: int(prio), Version: p.Version, Interval: p.Interval,
	}}}.YAML()
}

// Kill sends SIGKILL to the daemon's process group, as a crash would: no
// release advertisement, and the VIP stays configured where it was.
func (n *Node) Kill() error { return n.proc.Signal(syscall.SIGKILL, true, 0) }

// Term sends SIGTERM: a graceful stop with a priority-0 advertisement.
func (n *Node) Term() error { return n.proc.Signal(syscall.SIGTERM, false, 0) }

// Wait waits up to timeout for the daemon to exit and returns how it ended.
func (n *Node) Wait(timeout time.Duration) error { return n.proc.Wait(timeout) }

// Stop ends the daemon whatever its state and reaps it.
func (n *Node) Stop() { _ = n.proc.Stop(3 * time.Second) }

// Log returns what the daemon printed so far.
func (n *Node) Log() string { return n.proc.Log() }
