//go:build linux

package main

import (
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/keepalived"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
)

// Privileged end-to-end tests of `nlb vrrp` (issue 2): real nlb processes
// in network namespaces on a bridge, observed through their /status and
// /metrics, the addresses on their interfaces and ARP from a bystander.
// Every wait is bounded polling; timeouts are generous because only
// correctness is asserted, never speed.

const (
	// fastWait bounds elections and takeovers at 100ms intervals
	// (Master_Down_Interval is about 0.4s).
	fastWait = 10 * time.Second
	// slowWait bounds them at VRRPv2's 1s (Master_Down_Interval about 3.6s).
	slowWait = 20 * time.Second
	// vrid is the virtual router ID of the tests (k0s's first default).
	vrid = 51
)

// startCluster starts nlb on hosts with the options opt returns for each.
func startCluster(t *testing.T, hosts []*netlab.Host, vip netip.Prefix, opt func(i int, h *netlab.Host) vrrpOpts) cluster {
	t.Helper()
	c := cluster{vrid: vrid, vip: vip}
	for i, h := range hosts {
		o := opt(i, h)
		o.VRID, o.VIPs = vrid, []netip.Prefix{vip}
		c.nodes = append(c.nodes, startNLB(t, h, renderNLB(h.IfName, o)))
	}
	return c
}

// startClusterMasterFirst is startCluster with the node on hosts[master]
// started first, alone, and the others only once it is Master holding the
// VIP: they start as its Backups. With preempt: false the first Master
// keeps the VIP whatever the priorities, so a test that wants a given
// Master must not leave it to which process happens to start first (a
// busy machine starting the intended Master 20 ms late makes another one
// Master). The nodes of the result are in the order of hosts.
func startClusterMasterFirst(t *testing.T, hosts []*netlab.Host, vip netip.Prefix, master int, opt func(i int, h *netlab.Host) vrrpOpts) cluster {
	t.Helper()
	c := cluster{vrid: vrid, vip: vip, nodes: make([]*node, len(hosts))}
	start := func(i int) *node {
		o := opt(i, hosts[i])
		o.VRID, o.VIPs = vrid, []netip.Prefix{vip}
		c.nodes[i] = startNLB(t, hosts[i], renderNLB(hosts[i].IfName, o))
		return c.nodes[i]
	}
	m := start(master)
	nlbtest.Eventually(t, fastWait, m.name+" Master alone", all(wantState(m, vrid, "Master"), hasVIP(m.h, vip, true)))
	for i := range hosts {
		if i != master {
			start(i)
		}
	}
	return c
}

// TestLabElection: three nodes elect exactly one master, the
// highest-priority one, or with equal priorities (k0s's default 200 on
// every node) the one with the highest primary address (RFC 3768 §6.4.3).
// The others are Backup and know the master; only the master holds the VIP
// and a bystander's ARP request for the VIP is answered with its MAC.
//
// The address tie-break only decides between Masters: a Backup that hears
// an equal-priority advert stays Backup (§6.4.2), so with equal priorities
// whoever times out first wins a normal start. The contended cases
// therefore start every node cut off the LAN, wait until all three are
// Master, and connect them: then the Masters' comparison of priorities
// and addresses (§6.4.3) alone decides.
func TestLabElection(t *testing.T) {
	netlab.Require(t)
	for _, tc := range []struct {
		name      string
		prios     []int
		master    int
		contended bool
	}{
		{"priorities", []int{100, 150, 120}, 1, false},
		{"priorities-contended", []int{100, 150, 120}, 1, true},
		{"equal-contended", []int{0, 0, 0}, 2, true}, // 0: the default, 200; h3 has the highest address
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lab := netlab.NewT(t, "", netlab.Options{Hosts: 4})
			vip := lab.VIP4(0)
			if tc.contended {
				for _, h := range lab.Hosts[:3] {
					if err := h.Isolate(); err != nil {
						t.Fatal(err)
					}
				}
			}
			c := startCluster(t, lab.Hosts[:3], vip, func(i int, _ *netlab.Host) vrrpOpts {
				return vrrpOpts{Priority: tc.prios[i]}.fast()
			})
			if tc.contended {
				for _, n := range c.nodes {
					nlbtest.Eventually(t, fastWait, "isolated nodes Master", all(wantState(n, vrid, "Master"), hasVIP(n.h, vip, true)))
				}
				for _, h := range lab.Hosts[:3] {
					if err := h.Reconnect(); err != nil {
						t.Fatal(err)
					}
				}
			}
			master := c.nodes[tc.master]
			nlbtest.Eventually(t, fastWait, "election", func() error { return c.exactlyMaster(master, master.h.Addr4) })
			// The result holds: no flapping over several intervals.
			nlbtest.Consistently(t, 10*fastInterval, "after the election", func() error { return c.exactlyMaster(master, master.h.Addr4) })
			if err := c.stateMetric(); err != nil {
				t.Error(err)
			}
			if tc.prios[tc.master] == 0 {
				// No priority configured: k0s's template value, 200.
				in, err := master.inst(vrid)
				if err != nil {
					t.Fatal(err)
				}
				if in.Priority != 200 {
					t.Errorf("default priority %d, want 200", in.Priority)
				}
			}
			mac, err := lab.Hosts[3].ARPProbe(vip.Addr(), 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if mac.String() != master.h.MAC.String() {
				t.Errorf("ARP for %s answered by %s, want the master %s (%s)", vip.Addr(), mac, master.name, master.h.MAC)
			}
		})
	}
}

// TestLabFailover: when the master dies (SIGKILL, nothing sent) the next
// priority takes over after Master_Down_Interval; when it stops (SIGTERM)
// it exits 0 with its VIP removed and a backup takes over.
func TestLabFailover(t *testing.T) {
	netlab.Require(t)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(map[syscall.Signal]string{syscall.SIGKILL: "sigkill", syscall.SIGTERM: "sigterm"}[sig], func(t *testing.T) {
			t.Parallel()
			lab := netlab.NewT(t, "", netlab.Options{Hosts: 3})
			vip := lab.VIP4(0)
			prios := []int{150, 120, 100}
			c := startCluster(t, lab.Hosts, vip, func(i int, _ *netlab.Host) vrrpOpts {
				return vrrpOpts{Priority: prios[i]}.fast()
			})
			old, next := c.nodes[0], c.nodes[1]
			nlbtest.Eventually(t, fastWait, "election", func() error { return c.exactlyMaster(old, old.h.Addr4) })

			old.signal(sig)
			err := old.wait()
			if sig == syscall.SIGTERM {
				if err != nil {
					t.Errorf("%s after SIGTERM: %v, want exit 0", old.name, err)
				}
				// Removed before exiting, not eventually.
				if err := hasVIP(old.h, vip, false)(); err != nil {
					t.Errorf("after SIGTERM: %v", err)
				}
			}
			rest := cluster{nodes: c.nodes[1:], vrid: vrid, vip: vip}
			nlbtest.Eventually(t, fastWait, "takeover", func() error { return rest.exactlyMaster(next, next.h.Addr4) })
		})
	}
}

// TestLabPreemption: a higher-priority node that starts late takes over
// from the master (preempt, the default); with preempt: false it stays
// Backup.
func TestLabPreemption(t *testing.T) {
	netlab.Require(t)
	for _, preempt := range []bool{true, false} {
		t.Run(fmt.Sprintf("preempt=%t", preempt), func(t *testing.T) {
			t.Parallel()
			lab := netlab.NewT(t, "", netlab.Options{Hosts: 3})
			vip := lab.VIP4(0)
			prios := []int{100, 120}
			c := startCluster(t, lab.Hosts[:2], vip, func(i int, _ *netlab.Host) vrrpOpts {
				return vrrpOpts{Priority: prios[i]}.fast()
			})
			first := c.nodes[1]
			nlbtest.Eventually(t, fastWait, "election", func() error { return c.exactlyMaster(first, first.h.Addr4) })

			h3 := lab.Hosts[2]
			late := startNLB(t, h3, renderNLB(h3.IfName, vrrpOpts{
				VRID: vrid, VIPs: []netip.Prefix{vip}, Priority: 200, Preempt: boolPtr(preempt),
			}.fast()))
			c.nodes = append(c.nodes, late)
			if preempt {
				nlbtest.Eventually(t, fastWait, "preemption", func() error { return c.exactlyMaster(late, h3.Addr4) })
				return
			}
			nlbtest.Eventually(t, fastWait, "late node up as Backup", func() error { return c.exactlyMaster(first, first.h.Addr4) })
			// Many Master_Down_Intervals: a preempting node would have
			// taken over long before.
			nlbtest.Consistently(t, 15*fastInterval, "without preemption", func() error { return c.exactlyMaster(first, first.h.Addr4) })
		})
	}
}

// TestLabUnicast: three nodes in unicast mode elect and fail over; a
// fourth node that is not in their peer lists, with the highest priority,
// is ignored, and its advertisements are counted as dropped (reason
// "peer").
func TestLabUnicast(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	lab := netlab.NewT(t, "", netlab.Options{Hosts: 4})
	vip := lab.VIP4(0)
	hosts := lab.Hosts[:3]
	prios := []int{100, 150, 120}
	c := startCluster(t, hosts, vip, func(i int, h *netlab.Host) vrrpOpts {
		var peers []netip.Addr
		for _, p := range hosts {
			if p != h {
				peers = append(peers, p.Addr4)
			}
		}
		return vrrpOpts{Priority: prios[i], UnicastSource: h.Addr4, UnicastPeers: peers}.fast()
	})
	master := c.nodes[1]
	nlbtest.Eventually(t, fastWait, "election", func() error { return c.exactlyMaster(master, master.h.Addr4) })

	h4 := lab.Hosts[3]
	rogue := startNLB(t, h4, renderNLB(h4.IfName, vrrpOpts{
		VRID: vrid, VIPs: []netip.Prefix{vip}, Priority: 250,
		UnicastSource: h4.Addr4, UnicastPeers: []netip.Addr{hosts[0].Addr4, hosts[1].Addr4, hosts[2].Addr4},
	}.fast()))
	// The rogue hears nobody, so it becomes Master and advertises to all three.
	nlbtest.Eventually(t, fastWait, "rogue master", wantState(rogue, vrid, "Master"))
	for _, n := range c.nodes {
		nlbtest.Eventually(t, fastWait, n.name+" drops the rogue's adverts", func() error {
			v, err := n.dropped(vrid, "peer")
			if err != nil {
				return err
			}
			if v < 3 {
				return fmt.Errorf("%s: %v packets dropped with reason peer", n.name, v)
			}
			return nil
		})
	}
	nlbtest.Consistently(t, 5*fastInterval, "rogue ignored", func() error { return c.exactlyMaster(master, master.h.Addr4) })

	master.signal(syscall.SIGKILL)
	_ = master.wait()
	rest := cluster{nodes: []*node{c.nodes[0], c.nodes[2]}, vrid: vrid, vip: vip}
	nlbtest.Eventually(t, fastWait, "unicast failover", func() error { return rest.exactlyMaster(c.nodes[2], hosts[2].Addr4) })
}

// TestLabAuthMismatch: a VRRPv2 node with another authPass and a higher
// priority does not take over; every node counts its advertisements as
// dropped with reason "auth" (and it counts theirs).
func TestLabAuthMismatch(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	lab := netlab.NewT(t, "", netlab.Options{Hosts: 3})
	vip := lab.VIP4(0)
	prios := []int{100, 150}
	c := startCluster(t, lab.Hosts[:2], vip, func(i int, _ *netlab.Host) vrrpOpts {
		return vrrpOpts{Priority: prios[i], Version: 2, Interval: time.Second, AuthPass: "secret"}
	})
	master := c.nodes[1]
	nlbtest.Eventually(t, slowWait, "election", func() error { return c.exactlyMaster(master, master.h.Addr4) })

	h3 := lab.Hosts[2]
	intruder := startNLB(t, h3, renderNLB(h3.IfName, vrrpOpts{
		VRID: vrid, VIPs: []netip.Prefix{vip}, Priority: 250, Version: 2, Interval: time.Second, AuthPass: "other",
	}))
	for _, n := range append([]*node{intruder}, c.nodes...) {
		nlbtest.Eventually(t, slowWait, n.name+" drops adverts with the wrong password", func() error {
			v, err := n.dropped(vrid, "auth")
			if err != nil {
				return err
			}
			if v < 2 {
				return fmt.Errorf("%s: %v packets dropped with reason auth", n.name, v)
			}
			return nil
		})
	}
	// Two priority-250 adverts have reached the others by now; accepted,
	// the first would have made the master step down.
	nlbtest.Consistently(t, 1500*time.Millisecond, "intruder ignored", func() error { return c.exactlyMaster(master, master.h.Addr4) })
}

// TestLabSplitBrain: cut the master off the LAN and another node becomes
// Master too (two masters, each with the VIP); heal the partition and
// within a few advertisement intervals there is exactly one master (the
// higher priority) and the VIP is on exactly one node. Isolate keeps the
// master's carrier (a partition it cannot see); LinkDown drops it (a pulled
// cable), where nlb must survive and rejoin.
func TestLabSplitBrain(t *testing.T) {
	netlab.Require(t)
	for _, tc := range []struct {
		name     string
		cut, fix func(*netlab.Host) error
	}{
		{"isolate", (*netlab.Host).Isolate, (*netlab.Host).Reconnect},
		{"linkdown", (*netlab.Host).LinkDown, (*netlab.Host).LinkUp},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lab := netlab.NewT(t, "", netlab.Options{Hosts: 3})
			vip := lab.VIP4(0)
			prios := []int{150, 120, 100}
			c := startCluster(t, lab.Hosts, vip, func(i int, _ *netlab.Host) vrrpOpts {
				return vrrpOpts{Priority: prios[i]}.fast()
			})
			n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
			nlbtest.Eventually(t, fastWait, "election", func() error { return c.exactlyMaster(n1, n1.h.Addr4) })

			if err := tc.cut(n1.h); err != nil {
				t.Fatal(err)
			}
			rest := cluster{nodes: []*node{n2, n3}, vrid: vrid, vip: vip}
			nlbtest.Eventually(t, fastWait, "second master behind the partition", func() error {
				return rest.exactlyMaster(n2, n2.h.Addr4)
			})
			if tc.name == "isolate" {
				// The partition is invisible to n1: it stays Master with the VIP.
				if err := all(wantState(n1, vrid, "Master"), hasVIP(n1.h, vip, true))(); err != nil {
					t.Fatalf("two masters expected: %v", err)
				}
			} else if n1.exited() {
				t.Fatalf("%s exited when its link went down: %v", n1.name, n1.proc.Err())
			}

			if err := tc.fix(n1.h); err != nil {
				t.Fatal(err)
			}
			// One interval suffices (n1's next advert demotes n2); allow
			// a few more for scheduling on a loaded machine.
			nlbtest.Eventually(t, 10*fastInterval, "one master after the heal", func() error {
				return c.exactlyMaster(n1, n1.h.Addr4)
			})
			nlbtest.Consistently(t, 5*fastInterval, "after the heal", func() error { return c.exactlyMaster(n1, n1.h.Addr4) })
		})
	}
}

// TestLabStaleVIP: a VIP left on a node's interface (by a crash, or by
// hand) is removed when nlb starts there as a Backup.
func TestLabStaleVIP(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	lab := netlab.NewT(t, "", netlab.Options{Hosts: 3})
	vip := lab.VIP4(0)
	h1, h2 := lab.Hosts[0], lab.Hosts[1]
	conf2 := renderNLB(h2.IfName, vrrpOpts{VRID: vrid, VIPs: []netip.Prefix{vip}, Priority: 100}.fast())

	// A crashed master leaves its VIP behind (SIGKILL: nothing removes it).
	crashed := startNLB(t, h2, conf2)
	nlbtest.Eventually(t, fastWait, "h2 master alone", all(wantState(crashed, vrid, "Master"), hasVIP(h2, vip, true)))
	crashed.signal(syscall.SIGKILL)
	_ = crashed.wait()
	if err := hasVIP(h2, vip, true)(); err != nil {
		t.Fatalf("after SIGKILL: %v", err)
	}

	n1 := startNLB(t, h1, renderNLB(h1.IfName, vrrpOpts{VRID: vrid, VIPs: []netip.Prefix{vip}, Priority: 200}.fast()))
	nlbtest.Eventually(t, fastWait, "master", all(wantState(n1, vrid, "Master"), hasVIP(h1, vip, true)))
	// The restarted node removes the stale VIP before anything else.
	n2 := startNLB(t, h2, conf2)
	c := cluster{nodes: []*node{n1, n2}, vrid: vrid, vip: vip}
	nlbtest.Eventually(t, fastWait, "stale VIP removed", func() error { return c.exactlyMaster(n1, h1.Addr4) })
	mac, err := lab.Hosts[2].ARPProbe(vip.Addr(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if mac.String() != h1.MAC.String() {
		t.Errorf("ARP for %s answered by %s, want the master's %s", vip.Addr(), mac, h1.MAC)
	}

	// An address nlb did not add is a node address, never stale: nlb
	// refuses to start rather than take it over or delete it.
	n2.signal(syscall.SIGTERM)
	if err := n2.wait(); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	h3 := lab.Hosts[2]
	if out, err := h3.Exec(t.Context(), "ip", "addr", "add", vip.String(), "dev", h3.IfName).CombinedOutput(); err != nil {
		t.Fatalf("ip addr add %s: %v: %s", vip, err, out)
	}
	n3 := startNLB(t, h3, renderNLB(h3.IfName, vrrpOpts{VRID: vrid, VIPs: []netip.Prefix{vip}, Priority: 100}.fast()))
	if err := n3.wait(); err == nil {
		t.Fatal("nlb started with its VIP already a node address")
	}
	if log := n3.log(); !strings.Contains(log, h3.IfName) || !strings.Contains(log, vip.Addr().String()) {
		t.Errorf("the error names neither the interface nor the address:\n%s", log)
	}
	if err := hasVIP(h3, vip, true)(); err != nil {
		t.Errorf("the node address was touched: %v", err)
	}
}

// interopMode is one VRRP flavour both implementations run in
// TestInteropKeepalived.
type interopMode struct {
	name         string
	version      int
	interval     time.Duration
	ipv6         bool
	unicast      bool
	checksumAsV2 bool
}

// noChecksumAsV2 is what a keepalived without the v3_checksum_as_v2 option
// (Debian's 2.2.7) logs for it.
const noChecksumAsV2 = "Unknown keyword 'v3_checksum_as_v2'"

// masterHold is how long a node must stay Backup to show that it does not
// take over: more than its Master_Down_Interval (3 intervals plus a skew
// below one interval), plus scheduling slack.
func (m interopMode) masterHold() time.Duration {
	return 4*m.interval + 500*time.Millisecond
}

func (m interopMode) wait() time.Duration {
	if m.interval >= time.Second {
		return slowWait
	}
	return fastWait
}

func (m interopMode) vip(lab *netlab.Lab) netip.Prefix {
	if m.ipv6 {
		return lab.VIP6(1)
	}
	return lab.VIP4(0)
}

// addr is h's VRRP primary address in this mode (RFC 3768 §5.2.1, RFC 5798
// §5.1.2.1), as /status reports a master.
func (m interopMode) addr(h *netlab.Host) netip.Addr {
	if m.ipv6 {
		return h.LinkLocal
	}
	return h.Addr4
}

func (m interopMode) nlbConf(h, peer *netlab.Host, vip netip.Prefix, prio int) []byte {
	o := vrrpOpts{
		VRID: vrid, VIPs: []netip.Prefix{vip}, Priority: prio, Version: m.version, Interval: m.interval,
		AuthPass: "secret", ChecksumAsV2: m.checksumAsV2,
	}
	if m.unicast {
		o.UnicastSource, o.UnicastPeers = h.Addr4, []netip.Addr{peer.Addr4}
	}
	return renderNLB(h.IfName, o)
}

func (m interopMode) keepalived(h, peer *netlab.Host, vip netip.Prefix, prio uint8) keepalived.Instance {
	in := keepalived.Instance{
		Name: "VI_1", Interface: h.IfName, VRID: vrid, Priority: prio, Version: m.version,
		AdvertInterval: m.interval, VIPs: []netip.Prefix{vip}, ChecksumAsV2: m.checksumAsV2,
		GARPMasterDelay: time.Second, GARPMasterRepeat: 1,
	}
	if m.version == 2 {
		in.AuthPass = "secret"
	}
	if m.unicast {
		in.UnicastSource, in.UnicastPeers = h.Addr4, []netip.Addr{peer.Addr4}
	}
	return in
}

// TestInteropKeepalived runs nlb against Debian's keepalived 2.2.7 on one
// LAN, in both directions, for VRRPv2 multicast and unicast with PASS
// authentication, VRRPv3 over IPv6, and VRRPv3 over IPv4 with either
// checksum form:
//
//   - keepalived-master: keepalived with the higher priority is Master; nlb
//     stays Backup, reports keepalived's address as master and holds no
//     VIP; when keepalived is killed, nlb takes over the VIP.
//   - nlb-master: nlb with the higher priority is Master; keepalived logs
//     BACKUP and never MASTER and the VIP is only on nlb's host; on SIGTERM
//     nlb exits 0 having removed the VIP and keepalived becomes MASTER with
//     the VIP.
func TestInteropKeepalived(t *testing.T) {
	netlab.Require(t)
	modes := []interopMode{
		{name: "v2-multicast", version: 2, interval: time.Second},
		{name: "v2-unicast", version: 2, interval: time.Second, unicast: true},
		{name: "v3-ipv6", version: 3, interval: fastInterval, ipv6: true},
		{name: "v3-ipv4", version: 3, interval: fastInterval},
		{name: "v3-ipv4-checksum-as-v2", version: 3, interval: fastInterval, checksumAsV2: true},
	}
	for _, m := range modes {
		t.Run(m.name+"/keepalived-master", func(t *testing.T) {
			t.Parallel()
			lab := netlab.NewT(t, "", netlab.Options{Hosts: 3})
			vip := m.vip(lab)
			kh, nh := lab.Hosts[0], lab.Hosts[1]
			ka := startKeepalived(t, kh, m.keepalived(kh, nh, vip, 200))
			nlbtest.Eventually(t, m.wait(), "keepalived master", all(ka.logHas("Entering MASTER STATE"), hasVIP(kh, vip, true)))
			if m.checksumAsV2 && strings.Contains(ka.p.Log(), noChecksumAsV2) {
				// Still worth running: nlb configured for the RFC 9568 form
				// must accept keepalived's pseudo-header form too.
				t.Log("keepalived has no v3_checksum_as_v2: it sends the pseudo-header checksum form")
			}

			n := startNLB(t, nh, m.nlbConf(nh, kh, vip, 100))
			backup := func() error {
				in, err := n.inst(vrid)
				if err != nil {
					return err
				}
				if in.State != "Backup" || in.Master != m.addr(kh).String() {
					return fmt.Errorf("%s is %s with master %q, want Backup with master %s", n.name, in.State, in.Master, m.addr(kh))
				}
				if strings.Count(ka.p.Log(), "Entering MASTER STATE") != 1 {
					return fmt.Errorf("keepalived left MASTER")
				}
				return all(hasVIP(nh, vip, false), hasVIP(kh, vip, true))()
			}
			nlbtest.Eventually(t, m.wait(), "nlb Backup of keepalived", backup)
			nlbtest.Consistently(t, m.masterHold(), "nlb stays Backup", backup)
			if v, err := n.metricSum("nlb_vrrp_adverts_received_total", map[string]string{"vrid": fmt.Sprint(vrid)}); err != nil || v < 1 {
				t.Errorf("nlb_vrrp_adverts_received_total = %v (%v), want > 0", v, err)
			}

			if err := ka.p.Kill(); err != nil {
				t.Fatal(err)
			}
			nlbtest.Eventually(t, m.wait(), "nlb takes over from killed keepalived", all(wantState(n, vrid, "Master"), hasVIP(nh, vip, true)))
		})
		t.Run(m.name+"/nlb-master", func(t *testing.T) {
			t.Parallel()
			lab := netlab.NewT(t, "", netlab.Options{Hosts: 3})
			vip := m.vip(lab)
			nh, kh, by := lab.Hosts[0], lab.Hosts[1], lab.Hosts[2]
			n := startNLB(t, nh, m.nlbConf(nh, kh, vip, 200))
			nlbtest.Eventually(t, m.wait(), "nlb master", all(wantState(n, vrid, "Master"), hasVIP(nh, vip, true)))

			ka := startKeepalived(t, kh, m.keepalived(kh, nh, vip, 100))
			nlbtest.Eventually(t, m.wait(), "keepalived backup", ka.logHas("Entering BACKUP STATE"))
			if m.checksumAsV2 && strings.Contains(ka.p.Log(), noChecksumAsV2) {
				// This keepalived (Debian's 2.2.7) has no
				// v3_checksum_as_v2: it checks the pseudo-header form
				// only, so it must reject nlb's RFC 9568 adverts, the
				// interop trap the README documents (and why nlb
				// sends the pseudo-header form by default). TestLabTshark
				// checks the RFC 9568 form itself with tshark.
				nlbtest.Eventually(t, m.wait(), "keepalived rejects the RFC 9568 form", ka.logHas("Invalid VRRPv3 checksum"))
				return
			}
			stays := func() error {
				if strings.Contains(ka.p.Log(), "Entering MASTER STATE") {
					return fmt.Errorf("keepalived became MASTER")
				}
				return all(wantState(n, vrid, "Master"), hasVIP(nh, vip, true), hasVIP(kh, vip, false))()
			}
			nlbtest.Consistently(t, m.masterHold(), "keepalived stays BACKUP", stays)
			if !m.ipv6 {
				mac, err := by.ARPProbe(vip.Addr(), 2*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if mac.String() != nh.MAC.String() {
					t.Errorf("ARP for %s answered by %s, want nlb's %s", vip.Addr(), mac, nh.MAC)
				}
			}

			n.signal(syscall.SIGTERM)
			if err := n.wait(); err != nil {
				t.Errorf("nlb after SIGTERM: %v, want exit 0", err)
			}
			if err := hasVIP(nh, vip, false)(); err != nil {
				t.Errorf("after SIGTERM: %v", err)
			}
			nlbtest.Eventually(t, m.wait(), "keepalived takes over", all(ka.logHas("Entering MASTER STATE"), hasVIP(kh, vip, true)))
		})
	}
}

// tsharkFields are the fields TestLabTshark reads (tshark -G fields).
var tsharkFields = []string{
	"ip.src", "ipv6.src", "ip.ttl", "ipv6.hlim",
	"vrrp.version", "vrrp.virt_rtr_id", "vrrp.prio", "vrrp.checksum.status",
	"vrrp.auth_type", "vrrp.auth_string", "vrrp.adver_int", "vrrp.short_adver_int",
}

// readCapture dissects a pcap with tshark and returns one map per VRRP
// packet. A capture still being written may end in a partial packet;
// tshark's exit status is then ignored if it printed rows.
func readCapture(t *testing.T, path string, prefs ...string) ([]map[string]string, error) {
	t.Helper()
	args := []string{"-n", "-r", path, "-Y", "vrrp", "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a"}
	for _, p := range prefs {
		args = append(args, "-o", p)
	}
	for _, f := range tsharkFields {
		args = append(args, "-e", f)
	}
	out, err := exec.CommandContext(t.Context(), "tshark", args...).Output()
	var rows []map[string]string
	for line := range strings.SplitSeq(strings.TrimRight(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		cols := strings.Split(line, "\t")
		row := map[string]string{}
		for i, f := range tsharkFields {
			if i < len(cols) {
				row[f] = cols[i]
			}
		}
		rows = append(rows, row)
	}
	if err != nil && len(rows) == 0 {
		return nil, fmt.Errorf("tshark %v: %w", args, err)
	}
	return rows, nil
}

// TestLabTshark captures, from a bystander, the advertisements of one nlb
// node running VRRPv2 with PASS authentication, VRRPv3 over IPv4 (both
// checksum forms) and VRRPv3 over IPv6, then its priority-0 release on
// SIGTERM, and has tshark's VRRP dissector check every packet: checksum
// status good, TTL / hop limit 255, the IPv4 primary address or the IPv6
// link-local address as source, the version, interval and authentication
// configured.
func TestLabTshark(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	for _, tool := range []string{"tshark", "tcpdump"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required: %v", tool, err)
		}
	}
	lab := netlab.NewT(t, "", netlab.Options{Hosts: 2})
	h1, h2 := lab.Hosts[0], lab.Hosts[1]

	pcap := filepath.Join(t.TempDir(), "vrrp.pcap")
	var capLog netlab.SyncBuffer
	capture := h2.Exec(t.Context(), "tcpdump", "-n", "-U", "-i", h2.IfName, "-w", pcap, "ip proto 112 or ip6 proto 112")
	capture.Stdout, capture.Stderr = &capLog, &capLog
	if err := capture.Start(); err != nil {
		t.Fatal(err)
	}
	capDone := make(chan error, 1)
	go func() { capDone <- capture.Wait() }()
	t.Cleanup(func() {
		_ = capture.Process.Kill()
		<-capDone
		if t.Failed() {
			t.Logf("tcpdump:\n%s", capLog.String())
		}
	})
	nlbtest.Eventually(t, fastWait, "tcpdump listening", func() error {
		if !strings.Contains(capLog.String(), "listening on") {
			return fmt.Errorf("tcpdump not ready: %q", capLog.String())
		}
		return nil
	})

	type inst struct {
		opts  vrrpOpts
		prefs []string // tshark preferences to verify this form
		ipv6  bool
	}
	insts := []inst{
		{opts: vrrpOpts{VRID: 51, VIPs: []netip.Prefix{lab.VIP4(0)}, Version: 2, Interval: time.Second, AuthPass: "secret"}},
		{opts: vrrpOpts{VRID: 52, VIPs: []netip.Prefix{lab.VIP4(1)}}.fast()},
		{opts: vrrpOpts{VRID: 53, VIPs: []netip.Prefix{lab.VIP6(1)}}.fast(), ipv6: true},
		{opts: vrrpOpts{VRID: 54, VIPs: []netip.Prefix{lab.VIP4(2)}, ChecksumAsV2: true}.fast(), prefs: []string{"vrrp.v3_checksum_as_in_v2:TRUE"}},
	}
	var all []vrrpOpts
	for _, in := range insts {
		all = append(all, in.opts)
	}
	n := startNLB(t, h1, renderNLB(h1.IfName, all...))
	for _, in := range insts {
		nlbtest.Eventually(t, slowWait, fmt.Sprintf("VRID %d Master with adverts sent", in.opts.VRID), func() error {
			if err := wantState(n, in.opts.VRID, "Master")(); err != nil {
				return err
			}
			v, err := n.metricSum("nlb_vrrp_adverts_sent_total", map[string]string{"vrid": fmt.Sprint(in.opts.VRID)})
			if err != nil {
				return err
			}
			if v < 3 {
				return fmt.Errorf("VRID %d: %v adverts sent", in.opts.VRID, v)
			}
			return nil
		})
	}
	n.signal(syscall.SIGTERM)
	if err := n.wait(); err != nil {
		t.Errorf("nlb after SIGTERM: %v, want exit 0", err)
	}
	// Wait for the capture to hold every instance's release.
	nlbtest.Eventually(t, fastWait, "priority-0 adverts captured", func() error {
		rows, err := readCapture(t, pcap)
		if err != nil {
			return err
		}
		for _, in := range insts {
			if !slices.ContainsFunc(rows, func(r map[string]string) bool {
				return r["vrrp.virt_rtr_id"] == fmt.Sprint(in.opts.VRID) && r["vrrp.prio"] == "0"
			}) {
				return fmt.Errorf("no priority-0 advert for VRID %d yet (%d packets)", in.opts.VRID, len(rows))
			}
		}
		return nil
	})
	_ = capture.Process.Signal(syscall.SIGINT)
	select {
	case <-capDone:
		capDone <- nil
	case <-time.After(exitWait):
		t.Fatal("tcpdump did not stop")
	}

	const good = "1" // tshark checksum status: 0 bad, 1 good, 2 unverified
	for _, in := range insts {
		vr := fmt.Sprint(in.opts.VRID)
		rows, err := readCapture(t, pcap, in.prefs...)
		if err != nil {
			t.Fatal(err)
		}
		var adverts, releases, errs int
		for _, r := range rows {
			if r["vrrp.virt_rtr_id"] != vr {
				continue
			}
			fail := func(format string, args ...any) {
				if errs++; errs <= 3 {
					t.Errorf("VRID %d: "+format+"; packet %v", append(append([]any{in.opts.VRID}, args...), r)...)
				}
			}
			switch r["vrrp.prio"] {
			case "200":
				adverts++
			case "0":
				releases++
			default:
				fail("priority %s", r["vrrp.prio"])
			}
			if r["vrrp.checksum.status"] != good {
				fail("checksum status %q, want good", r["vrrp.checksum.status"])
			}
			if in.ipv6 {
				if r["ipv6.hlim"] != "255" {
					fail("hop limit %s", r["ipv6.hlim"])
				}
				if r["ipv6.src"] != h1.LinkLocal.String() {
					fail("source %s, want the link-local %s", r["ipv6.src"], h1.LinkLocal)
				}
			} else {
				if r["ip.ttl"] != "255" {
					fail("TTL %s", r["ip.ttl"])
				}
				if r["ip.src"] != h1.Addr4.String() {
					fail("source %s, want %s", r["ip.src"], h1.Addr4)
				}
			}
			wantVersion := fmt.Sprint(in.opts.Version)
			if r["vrrp.version"] != wantVersion {
				fail("version %s, want %s", r["vrrp.version"], wantVersion)
			}
			if in.opts.Version == 2 {
				if r["vrrp.auth_type"] != "1" || r["vrrp.auth_string"] != "secret" || r["vrrp.adver_int"] != "1" {
					fail("auth type %s string %q interval %s, want PASS secret 1s", r["vrrp.auth_type"], r["vrrp.auth_string"], r["vrrp.adver_int"])
				}
			} else if r["vrrp.short_adver_int"] != "10" {
				fail("interval %s cs, want 10", r["vrrp.short_adver_int"])
			}
		}
		if adverts < 3 || releases < 1 {
			t.Errorf("VRID %d: %d adverts and %d priority-0 releases captured, want at least 3 and 1", in.opts.VRID, adverts, releases)
		}
	}
	// The RFC 9568 form must really differ: tshark's default (pseudo-header)
	// check flags it.
	rows, err := readCapture(t, pcap)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r["vrrp.virt_rtr_id"] == "54" && r["vrrp.checksum.status"] == good {
			t.Errorf("VRID 54 (v3ChecksumAsV2) passes the pseudo-header checksum: %v", r)
			break
		}
	}
}

// TestLabLinkDown: a master whose link loses carrier is in fault: it
// removes its VIP at once (keepalived's interface tracking), a backup takes
// over, and when the link returns there is never a second holder.
//
// With preempt: false nothing but start order and timing decides which
// node is Master: the intended one is started first and the others join
// as its Backups (startClusterMasterFirst), and the takeover is "exactly
// one of the two backups" because their Master_Down_Intervals differ by
// a skew of (120-100)/256 intervals, 8 ms here, which a loaded machine can
// reverse; whichever won keeps the VIP afterwards.
func TestLabLinkDown(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	lab := netlab.NewT(t, "", netlab.Options{Hosts: 3})
	vip := lab.VIP4(0)
	prios := []int{150, 120, 100}
	c := startClusterMasterFirst(t, lab.Hosts, vip, 0, func(i int, _ *netlab.Host) vrrpOpts {
		return vrrpOpts{Priority: prios[i], Preempt: boolPtr(false)}.fast()
	})
	old := c.nodes[0]
	nlbtest.Eventually(t, fastWait, "election", func() error { return c.exactlyMaster(old, old.h.Addr4) })
	if err := old.h.LinkDown(); err != nil {
		t.Fatal(err)
	}
	nlbtest.Eventually(t, fastWait, "fault", func() error {
		in, err := old.inst(vrid)
		if err != nil {
			return err
		}
		if in.State != "Backup" || !in.Fault || in.VIPsConfigured {
			return fmt.Errorf("%s: %+v, want Backup in fault without the VIP", old.name, in)
		}
		return hasVIP(old.h, vip, false)()
	})
	rest := cluster{nodes: c.nodes[1:], vrid: vrid, vip: vip}
	var next *node
	nlbtest.Eventually(t, fastWait, "takeover", func() error {
		var err error
		next, err = rest.oneMaster()
		return err
	})
	if err := old.h.LinkUp(); err != nil {
		t.Fatal(err)
	}
	// preempt: false, so the new master keeps the VIP; the old one is a
	// plain Backup again.
	nlbtest.Eventually(t, fastWait, "after the link returns", func() error { return c.exactlyMaster(next, next.h.Addr4) })
	nlbtest.Consistently(t, 10*fastInterval, "no preemption after the link returns", func() error { return c.exactlyMaster(next, next.h.Addr4) })
	if in, err := old.inst(vrid); err != nil || in.Fault {
		t.Errorf("%s after link up: %+v %v", old.name, in, err)
	}
}
