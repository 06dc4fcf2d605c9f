// Package vrrplab runs VRRP nodes, nlb or keepalived with the same
// parameters, on the hosts of a netlab lab. The demo and the failover
// benchmark drive it; tests have their own finer-grained helpers.
package vrrplab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
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

	cmd  *exec.Cmd           // nlb
	ka   *keepalived.Process // keepalived
	out  *netlab.SyncBuffer
	done chan struct{}
	err  error
}

// Start runs impl on host with priority prio. nlbPath is the nlb binary;
// dir is a scratch directory for configuration and pid files.
func Start(impl Impl, nlbPath string, host *netlab.Host, p Params, prio uint8, dir string) (*Node, error) {
	n := &Node{Impl: impl, Host: host, Priority: prio, done: make(chan struct{})}
	switch impl {
	case NLB:
		cfgPath := filepath.Join(dir, "nlb.yaml")
		if err := os.WriteFile(cfgPath, NLBConfig(host.IfName, p, prio), 0o600); err != nil {
			return nil, err
		}
		n.out = &netlab.SyncBuffer{}
		n.cmd = exec.Command("ip", "netns", "exec", host.NS, nlbPath, "vrrp", "--config", cfgPath, "--log-format", "json")
		n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
		n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := n.cmd.Start(); err != nil {
			return nil, fmt.Errorf("vrrplab: start nlb on %s: %w", host.Name, err)
		}
		go func() { n.err = n.cmd.Wait(); close(n.done) }()
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
		if n.ka, err = keepalived.Start(host.NS, dir, conf); err != nil {
			return nil, err
		}
		go func() {
			n.err = n.ka.Wait(context.Background(), 24*time.Hour)
			close(n.done)
		}()
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

// Kill sends SIGKILL, as a crash would: no release advertisement, and the
// VIP stays configured where it was.
func (n *Node) Kill() error {
	if n.ka != nil {
		return n.ka.Kill()
	}
	return n.cmd.Process.Signal(syscall.SIGKILL)
}

// Term sends SIGTERM: a graceful stop with a priority-0 advertisement.
func (n *Node) Term() error {
	if n.ka != nil {
		return n.ka.Term()
	}
	return n.cmd.Process.Signal(syscall.SIGTERM)
}

// Wait waits up to timeout for the daemon to exit and returns how it ended.
func (n *Node) Wait(timeout time.Duration) error {
	select {
	case <-n.done:
		return n.err
	case <-time.After(timeout):
		return errors.New("vrrplab: daemon did not exit")
	}
}

// Stop ends the daemon whatever its state and reaps it.
func (n *Node) Stop() {
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.Term()
	if n.Wait(3*time.Second) != nil {
		if n.ka != nil {
			_ = n.ka.Kill()
		} else {
			_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		}
		_ = n.Wait(3 * time.Second)
	}
}

// Log returns what the daemon printed so far.
func (n *Node) Log() string {
	if n.ka != nil {
		return n.ka.Log()
	}
	return n.out.String()
}

// RemoveVIP deletes p from host's interface if present, so every run
// starts clean (a SIGKILLed daemon leaves its VIP behind).
func RemoveVIP(host *netlab.Host, p netip.Prefix) error {
	has, err := host.HasAddr(p)
	if err != nil || !has {
		return err
	}
	out, err := exec.Command("ip", "-n", host.NS, "addr", "del", p.String(), "dev", host.IfName).CombinedOutput()
	if err != nil {
		return fmt.Errorf("vrrplab: remove %s from %s: %v: %s", p, host.Name, err, out)
	}
	return nil
}
