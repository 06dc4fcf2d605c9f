// Package keepalived renders keepalived.conf files and runs the Debian
// keepalived daemon inside a network namespace. nlb's interop tests, demo and
// failover benchmark use it as the reference peer; it is not part of the
// product.
package keepalived

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
)

// Instance is one vrrp_instance block, in keepalived.conf(5) terms.
type Instance struct {
	// Name is the vrrp_instance name.
	Name string
	// Interface is the link VRRP runs on.
	Interface string
	// VRID is virtual_router_id.
	VRID uint8
	// Priority is priority (1-255).
	Priority uint8
	// Version is 2 or 3 (per-instance "version").
	Version int
	// AdvertInterval is advert_int; VRRPv3 allows fractions of a second.
	AdvertInterval time.Duration
	// AuthPass, when set, adds "authentication { auth_type PASS }" (v2 only).
	AuthPass string
	// VIPs are the virtual_ipaddress entries, with their prefix.
	VIPs []netip.Prefix
	// UnicastSource and UnicastPeers switch the instance to unicast.
	UnicastSource netip.Addr
	UnicastPeers  []netip.Addr
	// NoPreempt sets nopreempt.
	NoPreempt bool
	// ChecksumAsV2 sets v3_checksum_as_v2 (RFC 9568 IPv4 checksum).
	ChecksumAsV2 bool
	// GARPMasterDelay and GARPMasterRepeat tune the gratuitous ARP bursts;
	// zero values keep keepalived's defaults (5 s, 5).
	GARPMasterDelay  time.Duration
	GARPMasterRepeat int
}

// Render returns a keepalived.conf holding insts, shaped like the file k0s
// generates (state BACKUP everywhere, no scripts).
func Render(insts []Instance) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("global_defs {\n  router_id nlb-peer\n  enable_script_security\n  script_user root\n}\n")
	for _, in := range insts {
		if in.Name == "" || in.Interface == "" || in.VRID == 0 || len(in.VIPs) == 0 {
			return nil, fmt.Errorf("keepalived: instance %q: name, interface, VRID and VIPs are required", in.Name)
		}
		fmt.Fprintf(&b, "vrrp_instance %s {\n", in.Name)
		b.WriteString("  state BACKUP\n")
		fmt.Fprintf(&b, "  interface %s\n", in.Interface)
		fmt.Fprintf(&b, "  virtual_router_id %d\n", in.VRID)
		fmt.Fprintf(&b, "  priority %d\n", in.Priority)
		if in.Version != 0 {
			fmt.Fprintf(&b, "  version %d\n", in.Version)
		}
		adv := in.AdvertInterval
		if adv == 0 {
			adv = time.Second
		}
		fmt.Fprintf(&b, "  advert_int %s\n", strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", adv.Seconds()), "0"), "."))
		if in.NoPreempt {
			b.WriteString("  nopreempt\n")
		}
		if in.ChecksumAsV2 {
			b.WriteString("  v3_checksum_as_v2\n")
		}
		if in.GARPMasterDelay != 0 {
			fmt.Fprintf(&b, "  garp_master_delay %d\n", int(in.GARPMasterDelay.Seconds()))
		}
		if in.GARPMasterRepeat != 0 {
			fmt.Fprintf(&b, "  garp_master_repeat %d\n", in.GARPMasterRepeat)
		}
		if in.AuthPass != "" {
			fmt.Fprintf(&b, "  authentication {\n    auth_type PASS\n    auth_pass %s\n  }\n", in.AuthPass)
		}
		if in.UnicastSource.IsValid() {
			fmt.Fprintf(&b, "  unicast_src_ip %s\n  unicast_peer {\n", in.UnicastSource)
			for _, p := range in.UnicastPeers {
				fmt.Fprintf(&b, "    %s\n", p)
			}
			b.WriteString("  }\n")
		}
		b.WriteString("  virtual_ipaddress {\n")
		for _, v := range in.VIPs {
			fmt.Fprintf(&b, "    %s dev %s\n", v, in.Interface)
		}
		b.WriteString("  }\n}\n")
	}
	return b.Bytes(), nil
}

// Process is a keepalived daemon running in a network namespace.
type Process struct {
	cmd  *exec.Cmd
	dir  string
	log  *netlab.SyncBuffer
	done chan error
}

// Start writes conf into dir and starts keepalived (VRRP subsystem only, in
// the foreground, logging to the console) in network namespace netns. Its
// pid files live in dir, so several daemons can run side by side.
func Start(netns, dir string, conf []byte) (*Process, error) {
	path, err := exec.LookPath("keepalived")
	if err != nil {
		return nil, fmt.Errorf("keepalived: not installed (apt-get install keepalived): %w", err)
	}
	confPath := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		return nil, fmt.Errorf("keepalived: write config: %w", err)
	}
	cmd := exec.Command("ip", "netns", "exec", netns, path,
		"--dont-fork", "--log-console", "--log-detail", "--vrrp", "--no-syslog",
		"--use-file", confPath,
		"--pid", filepath.Join(dir, "keepalived.pid"),
		"--vrrp_pid", filepath.Join(dir, "vrrp.pid"),
		"--checkers_pid", filepath.Join(dir, "checkers.pid"),
	)
	p := &Process{cmd: cmd, dir: dir, log: &netlab.SyncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout = p.log
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("keepalived: start in %s: %w", netns, err)
	}
	go func() { p.done <- cmd.Wait() }()
	return p, nil
}

// VRRPPid returns the pid of keepalived's VRRP child process, the one that
// sends advertisements, waiting up to timeout for it to appear.
func (p *Process) VRRPPid(timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(filepath.Join(p.dir, "vrrp.pid"))
		if err == nil {
			var pid int
			if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 0 {
				return pid, nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, errors.New("keepalived: no VRRP child pid")
}

// Kill sends SIGKILL to the whole daemon (parent and VRRP child), as a crash
// would: the VIP stays configured and no release advertisement is sent.
func (p *Process) Kill() error {
	return syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

// Term sends SIGTERM to keepalived's parent, which stops the VRRP child:
// it sends a priority-0 advertisement and removes the VIPs.
func (p *Process) Term() error {
	pid, err := p.mainPid()
	if err != nil {
		return err
	}
	return syscall.Kill(pid, syscall.SIGTERM)
}

// mainPid is keepalived's own pid (the child of "ip netns exec", which
// execs, so it is the same process).
func (p *Process) mainPid() (int, error) {
	return p.cmd.Process.Pid, nil
}

// Wait waits up to timeout for the daemon to exit; on timeout it kills the
// process group.
func (p *Process) Wait(ctx context.Context, timeout time.Duration) error {
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(timeout):
	case <-ctx.Done():
	}
	_ = p.Kill()
	err := <-p.done
	p.done <- err
	return errors.New("keepalived: did not exit in time; killed")
}

// Stop terminates the daemon (SIGTERM, then SIGKILL after a grace period)
// and reaps it. It is safe to call after Kill.
func (p *Process) Stop() {
	_ = p.Term()
	_ = p.Wait(context.Background(), 3*time.Second)
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

// Log returns what the daemon printed so far.
func (p *Process) Log() string {
	return p.log.String()
}
