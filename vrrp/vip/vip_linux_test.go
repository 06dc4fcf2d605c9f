//go:build linux

package vip

import (
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestAddrFlags(t *testing.T) {
	pp := netip.MustParsePrefix
	tests := []struct {
		p             netip.Prefix
		opts          Options
		wantFlags     int
		wantValidLft  bool // lifetimes sent (preferred 0, valid forever)
		wantMaskOnes  int
		wantMaskTotal int
	}{
		{p: pp("192.0.2.100/24"), wantMaskOnes: 24, wantMaskTotal: 32},
		{p: pp("192.0.2.100/32"), opts: Options{NoPrefixRoute: true}, wantFlags: unix.IFA_F_NOPREFIXROUTE, wantMaskOnes: 32, wantMaskTotal: 32},
		{p: pp("2001:db8::100/64"), wantFlags: unix.IFA_F_NODAD, wantMaskOnes: 64, wantMaskTotal: 128},
		{p: pp("2001:db8::100/128"), wantFlags: unix.IFA_F_NODAD, wantValidLft: true, wantMaskOnes: 128, wantMaskTotal: 128},
	}
	for _, tt := range tests {
		a := New("eth0", []netip.Prefix{tt.p}, tt.opts).addr(tt.p)
		ones, total := a.Mask.Size()
		if a.Flags != tt.wantFlags || ones != tt.wantMaskOnes || total != tt.wantMaskTotal || !a.IP.Equal(tt.p.Addr().AsSlice()) {
			t.Errorf("%v: flags %#x mask /%d of %d ip %v; want flags %#x /%d of %d", tt.p, a.Flags, ones, total, a.IP, tt.wantFlags, tt.wantMaskOnes, tt.wantMaskTotal)
		}
		if got := a.PreferedLft == 0 && a.ValidLft > 0; got != tt.wantValidLft {
			t.Errorf("%v: preferred %d valid %d", tt.p, a.PreferedLft, a.ValidLft)
		}
	}
}

func TestManager(t *testing.T) {
	l := netlab.NewT(t, "vip", netlab.Options{Hosts: 2})
	h1, h2 := l.Hosts[0], l.Hosts[1]
	v4, v6, v6h := l.VIP4(1), l.VIP6(1), netip.PrefixFrom(l.VIP6(2).Addr(), 128)
	vips := []netip.Prefix{v4, v6, v6h}
	m := New(h1.IfName, vips, Options{})

	run := func(fn func() error) {
		t.Helper()
		if err := h1.Run(fn); err != nil {
			t.Fatal(err)
		}
	}
	present := func() []netip.Prefix {
		t.Helper()
		var got []netip.Prefix
		run(func() error {
			var err error
			got, err = m.Present()
			return err
		})
		slices.SortFunc(got, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
		return got
	}

	// The lab turns DAD off; turn it back on for this interface so that
	// only IFA_F_NODAD keeps the IPv6 VIPs from being tentative.
	run(func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/"+h1.IfName+"/accept_dad", []byte("1"), 0o644)
	})

	// Stale VIP from an earlier run, with another prefix length.
	run(func() error {
		link, err := netlink.LinkByName(h1.IfName)
		if err != nil {
			return err
		}
		return netlink.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: v4.Addr().AsSlice(), Mask: net.CIDRMask(32, 32)}})
	})
	if got := present(); !slices.Equal(got, []netip.Prefix{netip.PrefixFrom(v4.Addr(), 32)}) {
		t.Fatalf("stale VIP not seen: %v", got)
	}
	for range 2 {
		run(m.Remove)
	}
	if got := present(); len(got) != 0 {
		t.Fatalf("after Remove: %v", got)
	}

	for range 2 {
		run(m.Add)
	}
	want := slices.Clone(vips)
	slices.SortFunc(want, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	if got := present(); !slices.Equal(got, want) {
		t.Fatalf("Present = %v, want %v", got, want)
	}
	// IPv6: nodad, not tentative; the /128 deprecated (preferred_lft 0).
	run(func() error {
		link, err := netlink.LinkByName(h1.IfName)
		if err != nil {
			return err
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V6)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			ip, _ := netip.AddrFromSlice(a.IP)
			if ip != v6.Addr() && ip != v6h.Addr() {
				continue
			}
			if a.Flags&unix.IFA_F_NODAD == 0 || a.Flags&unix.IFA_F_TENTATIVE != 0 {
				t.Errorf("%v: flags %#x: want nodad, not tentative", ip, a.Flags)
			}
			deprecated := a.Flags&unix.IFA_F_DEPRECATED != 0
			if want := ip == v6h.Addr(); deprecated != want || (want && a.PreferedLft != 0) {
				t.Errorf("%v: deprecated %v preferred_lft %d", ip, deprecated, a.PreferedLft)
			}
		}
		return nil
	})

	// The VIP is reachable: h2 gets an ARP answer from h1's MAC.
	mac, err := h2.ARPProbe(v4.Addr(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if mac.String() != h1.MAC.String() {
		t.Errorf("VIP answered by %v, want %v", mac, h1.MAC)
	}

	for range 2 {
		run(m.Remove)
	}
	if got := present(); len(got) != 0 {
		t.Fatalf("after Remove: %v", got)
	}
	// The host's own addresses are untouched.
	for _, p := range []netip.Prefix{h1.Links[0].Addr4, h1.Links[0].Addr6} {
		if ok, err := h1.HasAddr(p); err != nil || !ok {
			t.Errorf("HasAddr(%v) = %v, %v after Remove", p, ok, err)
		}
	}
	if _, err := h2.ARPProbe(v4.Addr(), 300*time.Millisecond); err == nil {
		t.Error("removed VIP still answers ARP")
	}
}

func TestMissingInterface(t *testing.T) {
	l := netlab.NewT(t, "vipnoif", netlab.Options{Hosts: 1})
	m := New("nlbnosuchif0", []netip.Prefix{l.VIP4(1)}, Options{})
	if err := l.Hosts[0].Run(m.Remove); err != nil {
		t.Errorf("Remove on a missing interface: %v", err)
	}
	if err := l.Hosts[0].Run(m.Add); err == nil {
		t.Error("Add on a missing interface succeeded")
	}
}

func TestNoPrefixRoute(t *testing.T) {
	l := netlab.NewT(t, "vipnpr", netlab.Options{Hosts: 2})
	h1, h2 := l.Hosts[0], l.Hosts[1]
	m := New(h1.IfName, []netip.Prefix{l.VIP4(3)}, Options{NoPrefixRoute: true})
	if err := h1.Run(m.Add); err != nil {
		t.Fatal(err)
	}
	if mac, err := h2.ARPProbe(l.VIP4(3).Addr(), 2*time.Second); err != nil || mac.String() != h1.MAC.String() {
		t.Errorf("ARP for VIP with noprefixroute: %v, %v", mac, err)
	}
}

// TestManagerRecreatedInterface: the Manager keeps its netlink socket and
// the link between calls; when the interface is deleted and created again
// (a new index), Add and Remove look it up again instead of failing, and
// Close releases the socket without ending the Manager's use.
func TestManagerRecreatedInterface(t *testing.T) {
	l := netlab.NewT(t, "viprecreate", netlab.Options{Hosts: 1})
	h := l.Hosts[0]
	const ifName = "nlbvr0"
	vip := l.VIP4(7)
	m := New(ifName, []netip.Prefix{vip}, Options{})
	defer m.Close()
	mkLink := func() error {
		la := netlink.NewLinkAttrs()
		la.Name = ifName
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "nlbvr1"}); err != nil {
			return err
		}
		return netlink.LinkSetUp(&netlink.Veth{LinkAttrs: la})
	}
	has := func() bool {
		t.Helper()
		ok, err := h.HasAddr(netip.PrefixFrom(vip.Addr(), vip.Bits()))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	step := func(what string, fn func() error) {
		t.Helper()
		if err := h.Run(fn); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	step("create link", mkLink)
	step("first Add", m.Add)
	if !has() {
		t.Fatal("VIP missing after Add")
	}
	step("delete and recreate link", func() error {
		if err := netlink.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ifName}}); err != nil {
			return err
		}
		return mkLink()
	})
	if has() {
		t.Fatal("VIP survived the link's deletion")
	}
	step("Add after recreation", m.Add)
	if !has() {
		t.Fatal("VIP missing after Add on the recreated link")
	}
	step("Close", m.Close)
	step("Remove after Close", m.Remove)
	if has() {
		t.Fatal("VIP still present after Remove")
	}
}
