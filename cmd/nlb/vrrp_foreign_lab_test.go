//go:build linux

package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/keepalived"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
	"github.com/nlb-dev/nlb/vrrp"
	"github.com/nlb-dev/nlb/vrrp/socket"
)

// Privileged tests of issue 10 item 1: another virtual router on the same
// segment shares our VRID and password but advertises another VIP (a
// second k0s cluster with k0s's defaults). Its adverts are dropped with
// reason "addresses" (vrrp.DropAddresses), even at priority 255: our
// Master keeps our VIP, and when it dies while the stranger keeps talking
// a Backup still takes over.

// foreignSender sends valid advertisements from a lab host, as the Master
// of another virtual router would, until the test ends.
type foreignSender struct {
	sent atomic.Int64
}

// startForeign sends, every interval until the test ends, an advert on
// VRID vrid at priority prio listing addrs, from h's primary address
// (IPv4, or its link-local address if ipv6) to the VRRP group; VRRPv2
// adverts carry the password "secret" of the nlb nodes. Interval is also
// the advert's own interval, so that only the address list differs from
// what the nlb nodes expect.
func startForeign(t *testing.T, h *netlab.Host, version vrrp.Version, prio uint8, interval time.Duration, ipv6 bool, addrs ...netip.Addr) *foreignSender {
	t.Helper()
	src := h.Addr4
	if ipv6 {
		src = h.LinkLocal
	}
	ad := &vrrp.Advertisement{Version: version, VRID: vrid, Priority: prio, Interval: interval, Addresses: addrs}
	if version == vrrp.Version2 {
		ad.AuthType = vrrp.AuthPassword
		copy(ad.AuthData[:], "secret")
	}
	dst := vrrp.MulticastGroup(ipv6)
	b, err := ad.Marshal(src, dst, vrrp.ChecksumPseudoHeader)
	if err != nil {
		t.Fatal(err)
	}
	var conn *socket.Conn
	err = h.Run(func() error {
		var err error
		if ipv6 {
			conn, err = socket.ListenIPv6(h.IfName, socket.Config{Source: src})
		} else {
			conn, err = socket.ListenIPv4(h.IfName, socket.Config{Source: src})
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	f := &foreignSender{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			if err := conn.WriteTo(b, dst); err == nil {
				f.sent.Add(1)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = conn.Close()
	})
	return f
}

// droppedAtLeast reports nil once n has dropped at least least adverts
// with reason "addresses".
func droppedAtLeast(n *node, least float64) func() error {
	return func() error {
		v, err := n.dropped(vrid, string(vrrp.DropAddresses))
		if err != nil {
			return err
		}
		if v < least {
			return fmt.Errorf("%s: %v packets dropped with reason %s, want at least %v", n.name, v, vrrp.DropAddresses, least)
		}
		return nil
	}
}

// unchanged reports nil while n is Master with as many transitions as in
// before: no step down, however brief.
func unchanged(n *node, before instStatus) func() error {
	return func() error {
		in, err := n.inst(vrid)
		if err != nil {
			return err
		}
		if in.State != "Master" || in.Transitions != before.Transitions {
			return fmt.Errorf("%s is %s after %d transitions (was Master after %d), last %q",
				n.name, in.State, in.Transitions, before.Transitions, in.LastReason)
		}
		return nil
	}
}

// TestLabForeignVIP: a stranger on VRID 51 with the right password sends
// adverts at priority 255 for another VIP, continuously. The nlb Master
// stays Master (no transition at all) with the VIP, both nodes count the
// adverts as dropped with reason "addresses"; then the Master is killed
// and the Backup takes over while the stranger keeps talking, and drops
// them as Master too. VRRPv2 (k0s's default, password), VRRPv3 over IPv4
// and over IPv6.
func TestLabForeignVIP(t *testing.T) {
	netlab.Require(t)
	for _, m := range []interopMode{
		{name: "v2", version: 2, interval: time.Second},
		{name: "v3-ipv4", version: 3, interval: fastInterval},
		{name: "v3-ipv6", version: 3, interval: fastInterval, ipv6: true},
	} {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			lab := netlab.NewT(t, "", netlab.Options{Hosts: 3})
			vip, other := lab.VIP4(0), lab.VIP4(1)
			if m.ipv6 {
				vip, other = lab.VIP6(1), lab.VIP6(2)
			}
			prios := []int{150, 100}
			c := startCluster(t, lab.Hosts[:2], vip, func(i int, _ *netlab.Host) vrrpOpts {
				return vrrpOpts{Priority: prios[i], Version: m.version, Interval: m.interval, AuthPass: "secret"}
			})
			master, backup := c.nodes[0], c.nodes[1]
			nlbtest.Eventually(t, m.wait(), "election", func() error { return c.exactlyMaster(master, m.addr(master.h)) })
			before, err := master.inst(vrid)
			if err != nil {
				t.Fatal(err)
			}

			f := startForeign(t, lab.Hosts[2], vrrp.Version(m.version), 255, m.interval, m.ipv6, other.Addr())
			for _, n := range c.nodes {
				nlbtest.Eventually(t, m.wait(), n.name+" drops the foreign adverts", droppedAtLeast(n, 3))
			}
			// Several Master_Down_Intervals of foreign adverts: accepted,
			// the first would have made the Master step down at once.
			nlbtest.Consistently(t, m.masterHold(), "Master keeps the VIP", all(unchanged(master, before),
				func() error { return c.exactlyMaster(master, m.addr(master.h)) }))
			if f.sent.Load() < 3 {
				t.Fatalf("the stranger sent %d adverts", f.sent.Load())
			}

			// The Master dies; the stranger keeps talking.
			master.signal(syscall.SIGKILL)
			_ = master.wait()
			rest := cluster{nodes: []*node{backup}, vrid: vrid, vip: vip}
			nlbtest.Eventually(t, m.wait(), "takeover with the stranger talking", func() error { return rest.exactlyMaster(backup, netip.Addr{}) })
			took, err := backup.inst(vrid)
			if err != nil {
				t.Fatal(err)
			}
			n, err := backup.dropped(vrid, string(vrrp.DropAddresses))
			if err != nil {
				t.Fatal(err)
			}
			nlbtest.Eventually(t, m.wait(), "the new Master drops the foreign adverts", droppedAtLeast(backup, n+3))
			nlbtest.Consistently(t, m.masterHold(), "the new Master keeps the VIP", all(unchanged(backup, took), func() error {
				return rest.exactlyMaster(backup, netip.Addr{})
			}))
		})
	}
}

// TestLabForeignKeepalived: the case with a real second cluster:
// keepalived (k0s's VRRP daemon) on VRID 51 with the same password, a
// higher priority and another VIP, beside a two-node nlb cluster. Each side
// keeps its own VIP: nlb drops keepalived's adverts (reason "addresses")
// and keepalived, as 2.2.7 does, drops nlb's ("not present in ...
// advert"). Killing the nlb Master moves nlb's VIP to the other nlb node,
// never to keepalived.
func TestLabForeignKeepalived(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	m := interopMode{name: "v2", version: 2, interval: time.Second}
	lab := netlab.NewT(t, "", netlab.Options{Hosts: 3})
	vip, other := lab.VIP4(0), lab.VIP4(1)
	kh := lab.Hosts[2]
	ka := startKeepalived(t, kh, keepalived.Instance{
		Name: "VI_1", Interface: kh.IfName, VRID: vrid, Priority: 250, Version: 2, AuthPass: "secret",
		AdvertInterval: time.Second, VIPs: []netip.Prefix{other}, GARPMasterDelay: time.Second, GARPMasterRepeat: 1,
	})
	nlbtest.Eventually(t, slowWait, "keepalived master", all(ka.logHas("Entering MASTER STATE"), hasVIP(kh, other, true)))

	prios := []int{150, 100}
	c := startCluster(t, lab.Hosts[:2], vip, func(i int, _ *netlab.Host) vrrpOpts {
		return vrrpOpts{Priority: prios[i], Version: 2, Interval: time.Second, AuthPass: "secret"}
	})
	master, backup := c.nodes[0], c.nodes[1]
	nlbtest.Eventually(t, slowWait, "election", func() error { return c.exactlyMaster(master, master.h.Addr4) })
	before, err := master.inst(vrid)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes {
		nlbtest.Eventually(t, slowWait, n.name+" drops keepalived's adverts", droppedAtLeast(n, 3))
	}
	nlbtest.Eventually(t, slowWait, "keepalived drops nlb's adverts", ka.logHas("not present in"))
	kaMaster := func() error {
		// It starts in BACKUP (init); once MASTER it never leaves.
		log := ka.p.Log()
		if i := strings.Index(log, "Entering MASTER STATE"); i < 0 || strings.Count(log, "Entering MASTER STATE") != 1 ||
			strings.Contains(log[i:], "Entering BACKUP STATE") {
			return fmt.Errorf("keepalived left MASTER")
		}
		return all(hasVIP(kh, other, true), hasVIP(kh, vip, false))()
	}
	nlbtest.Consistently(t, m.masterHold(), "each cluster keeps its VIP", all(unchanged(master, before), kaMaster,
		func() error { return c.exactlyMaster(master, master.h.Addr4) }))

	master.signal(syscall.SIGKILL)
	_ = master.wait()
	rest := cluster{nodes: []*node{backup}, vrid: vrid, vip: vip}
	nlbtest.Eventually(t, slowWait, "takeover beside keepalived", all(kaMaster, func() error { return rest.exactlyMaster(backup, netip.Addr{}) }))
}

// TestInteropKeepalivedVIPOrder: keepalived and nlb share VRID 51 and two
// VIPs, listed in opposite orders; the address check compares sets, on
// both sides. keepalived as Master: nlb stays its Backup, counts no
// "addresses" drop and takes both VIPs when keepalived is killed. nlb as
// Master: keepalived stays BACKUP, never logs a missing address, and takes
// both VIPs when nlb stops.
func TestInteropKeepalivedVIPOrder(t *testing.T) {
	netlab.Require(t)
	for _, kaMaster := range []bool{true, false} {
		t.Run(map[bool]string{true: "keepalived-master", false: "nlb-master"}[kaMaster], func(t *testing.T) {
			t.Parallel()
			lab := netlab.NewT(t, "", netlab.Options{Hosts: 2})
			a, b := lab.VIP4(0), lab.VIP4(1)
			kh, nh := lab.Hosts[0], lab.Hosts[1]
			kaPrio, nlbPrio := uint8(100), 200
			if kaMaster {
				kaPrio, nlbPrio = 200, 100
			}
			holds := func(h *netlab.Host, want bool) func() error { return all(hasVIP(h, a, want), hasVIP(h, b, want)) }
			// The Master starts first, alone: the other one then starts
			// as its Backup whichever of them is faster.
			var ka *kaNode
			var n *node
			startKA := func() {
				ka = startKeepalived(t, kh, keepalived.Instance{
					Name: "VI_1", Interface: kh.IfName, VRID: vrid, Priority: kaPrio, Version: 2, AuthPass: "secret",
					AdvertInterval: time.Second, VIPs: []netip.Prefix{a, b}, GARPMasterDelay: time.Second, GARPMasterRepeat: 1,
				})
			}
			startN := func() {
				n = startNLB(t, nh, renderNLB(nh.IfName, vrrpOpts{
					VRID: vrid, VIPs: []netip.Prefix{b, a}, Priority: nlbPrio, Version: 2, Interval: time.Second, AuthPass: "secret",
				}))
			}
			if kaMaster {
				startKA()
				nlbtest.Eventually(t, slowWait, "keepalived master", all(ka.logHas("Entering MASTER STATE"), holds(kh, true)))
				startN()
			} else {
				startN()
				nlbtest.Eventually(t, slowWait, "nlb master", all(wantState(n, vrid, "Master"), holds(nh, true)))
				startKA()
			}
			noDrops := func() error {
				if v, err := n.dropped(vrid, string(vrrp.DropAddresses)); err != nil || v != 0 {
					return fmt.Errorf("nlb dropped{reason=%s} = %v (%v), want 0", vrrp.DropAddresses, v, err)
				}
				if strings.Contains(ka.p.Log(), "not present in") || strings.Contains(ka.p.Log(), "VIPs but received") ||
					strings.Contains(ka.p.Log(), "unexpected ip number count") {
					return fmt.Errorf("keepalived found an address mismatch")
				}
				return nil
			}
			if kaMaster {
				backup := func() error {
					in, err := n.inst(vrid)
					if err != nil {
						return err
					}
					if in.State != "Backup" || in.Master != kh.Addr4.String() {
						return fmt.Errorf("%s is %s with master %q, want Backup of %s", n.name, in.State, in.Master, kh.Addr4)
					}
					return all(noDrops, holds(kh, true), holds(nh, false))()
				}
				nlbtest.Eventually(t, slowWait, "nlb Backup of keepalived", backup)
				nlbtest.Consistently(t, 4500*time.Millisecond, "nlb stays Backup", backup)
				if err := ka.p.Kill(); err != nil {
					t.Fatal(err)
				}
				nlbtest.Eventually(t, slowWait, "nlb takes both VIPs", all(wantState(n, vrid, "Master"), holds(nh, true)))
				return
			}
			nlbtest.Eventually(t, slowWait, "nlb master, keepalived backup", all(wantState(n, vrid, "Master"), holds(nh, true), ka.logHas("Entering BACKUP STATE")))
			stays := func() error {
				if strings.Contains(ka.p.Log(), "Entering MASTER STATE") {
					return fmt.Errorf("keepalived became MASTER")
				}
				return all(noDrops, wantState(n, vrid, "Master"), holds(nh, true), holds(kh, false))()
			}
			nlbtest.Consistently(t, 4500*time.Millisecond, "keepalived stays BACKUP", stays)
			n.signal(syscall.SIGTERM)
			if err := n.wait(); err != nil {
				t.Errorf("nlb after SIGTERM: %v, want exit 0", err)
			}
			nlbtest.Eventually(t, slowWait, "keepalived takes both VIPs", all(ka.logHas("Entering MASTER STATE"), holds(kh, true)))
		})
	}
}
