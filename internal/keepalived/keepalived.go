// Package keepalived renders keepalived.conf files and runs the Debian
// keepalived daemon inside a network namespace (a netlab.Process). nlb's interop tests, demo and
// failover benchmark use it as the reference peer; it is not part of the
// product.
package keepalived

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// NewProcess prepares keepalived on host (VRRP subsystem only, in the
// foreground, logging to the console) reading dir/keepalived.conf and
// logging to dir/keepalived.log. Its pid files live in dir, so several
// daemons can run side by side. SIGTERM to the process (Stop) makes a
// master send a priority-0 advertisement and remove its VIPs; Kill takes
// the VRRP child down too, as a crash would.
func NewProcess(host *netlab.Host, dir string) *netlab.Process {
	return netlab.NewProcess("keepalived@"+host.Name, filepath.Join(dir, "keepalived.log"), host, "keepalived",
		"--dont-fork", "--log-console", "--log-detail", "--vrrp", "--no-syslog",
		"--use-file", filepath.Join(dir, "keepalived.conf"),
		"--pid", filepath.Join(dir, "keepalived.pid"),
		"--vrrp_pid", filepath.Join(dir, "vrrp.pid"),
		"--checkers_pid", filepath.Join(dir, "checkers.pid"),
	)
}

// Start writes conf into dir and starts keepalived on host (NewProcess).
func Start(host *netlab.Host, dir string, conf []byte) (*netlab.Process, error) {
	if _, err := exec.LookPath("keepalived"); err != nil {
		return nil, fmt.Errorf("keepalived: not installed (apt-get install keepalived): %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keepalived.conf"), conf, 0o600); err != nil {
		return nil, fmt.Errorf("keepalived: write config: %w", err)
	}
	p := NewProcess(host, dir)
	return p, p.Start()
}
