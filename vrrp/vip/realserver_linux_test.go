//go:build linux

package vip

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/lb/dsr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// TestRealServerMarkAgrees: the mark vrrp/vip leaves alone is the one
// lb/dsr puts on its copies of the VIPs.
func TestRealServerMarkAgrees(t *testing.T) {
	if dsr.AddrProto != RealServerAddrProto {
		t.Fatalf("lb/dsr marks its addresses %#x, vrrp/vip expects %#x", dsr.AddrProto, RealServerAddrProto)
	}
	if RealServerAddrProto == AddrProto {
		t.Fatalf("the real-server mark equals the VRRP mark %#x", AddrProto)
	}
}

// addMarked adds p to ifName with IFA_PROTO proto, as lb/dsr adds a VIP to
// lo or dummyvip0.
func addMarked(t *testing.T, h *netlab.Host, ifName string, p netip.Prefix, proto uint8) {
	t.Helper()
	hostRun(t, h, func() error {
		link, err := netlink.LinkByName(ifName)
		if err != nil {
			return err
		}
		family := unix.AF_INET
		if p.Addr().Is6() {
			family = unix.AF_INET6
		}
		req := nl.NewNetlinkRequest(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
		msg := nl.NewIfAddrmsg(family)
		msg.Prefixlen = uint8(p.Bits())
		msg.Index = uint32(link.Attrs().Index)
		req.AddData(msg)
		raw := p.Addr().AsSlice()
		req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, raw))
		req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, raw))
		req.AddData(nl.NewRtAttr(unix.IFA_FLAGS, nl.Uint32Attr(flagNoDAD)))
		req.AddData(nl.NewRtAttr(ifaProto, []byte{proto}))
		_, err = req.Execute(unix.NETLINK_ROUTE, 0)
		return err
	})
}

// TestRealServerCopy: in DR mode lb/dsr keeps each VIP as /32 (/128) on lo
// marked RealServerAddrProto on every controller, and the VRRP Master adds
// the same VIP on its interface. That copy is no conflict (Check, Add), is
// left in place by Add and Remove, and the Manager's own VIP comes and goes
// beside it. An unmarked copy on lo is still a node's address.
func TestRealServerCopy(t *testing.T) {
	if !kernelHasAddrProto() {
		t.Skip("kernel before 5.18: no IFA_PROTO, lb/dsr's copy cannot be told from a node address")
	}
	l := netlab.NewT(t, "viprs", netlab.Options{Hosts: 1})
	h := l.Hosts[0]
	v4 := netip.MustParsePrefix("192.0.2.100/24")
	v6 := netip.MustParsePrefix("2001:db8::100/64")
	lo4 := netip.PrefixFrom(v4.Addr(), 32)
	lo6 := netip.PrefixFrom(v6.Addr(), 128)
	addMarked(t, h, "lo", lo4, RealServerAddrProto)
	addMarked(t, h, "lo", lo6, RealServerAddrProto)

	m := New(h.IfName, []netip.Prefix{v4, v6}, Options{})
	t.Cleanup(func() { _ = m.Close() })
	if err := h.Run(m.Check); err != nil {
		t.Errorf("Check with lb/dsr's copies on lo: %v", err)
	}
	if err := h.Run(m.Add); err != nil {
		t.Errorf("Add beside lb/dsr's copies on lo: %v", err)
	}
	for _, p := range []netip.Prefix{v4, v6, lo4, lo6} {
		if ok, err := h.HasAddr(p); err != nil || !ok {
			t.Errorf("after Add: HasAddr(%v) = %v, %v; want true", p, ok, err)
		}
	}
	if err := h.Run(m.Check); err != nil {
		t.Errorf("Check while both copies are up: %v", err)
	}
	hostRun(t, h, m.Remove)
	for p, want := range map[netip.Prefix]bool{v4: false, v6: false, lo4: true, lo6: true} {
		if ok, err := h.HasAddr(p); err != nil || ok != want {
			t.Errorf("after Remove: HasAddr(%v) = %v, %v; want %v", p, ok, err, want)
		}
	}
	for _, e := range dumpAddrs(t, h) {
		if (e.prefix == lo4 || e.prefix == lo6) && e.proto != RealServerAddrProto {
			t.Errorf("%v on lo: IFA_PROTO %#x, want lb/dsr's %#x", e.prefix, e.proto, RealServerAddrProto)
		}
	}

	// Unmarked, the same /32 on lo is a node's address.
	other := netip.MustParsePrefix("192.0.2.101/24")
	addMarked(t, h, "lo", netip.PrefixFrom(other.Addr(), 32), 0)
	m2 := New(h.IfName, []netip.Prefix{other}, Options{})
	t.Cleanup(func() { _ = m2.Close() })
	err := h.Run(m2.Check)
	if err == nil || !strings.Contains(err.Error(), other.Addr().String()+" is already an address of lo that nlb did not add") {
		t.Errorf("Check with an unmarked copy on lo: %v, want a conflict naming lo", err)
	}
	if err := h.Run(m2.Add); err == nil {
		t.Error("Add beside an unmarked copy on lo: no error")
	}
	if ok, err := h.HasAddr(other); err != nil || ok {
		t.Errorf("Add put %v on %s beside a node's address: %v, %v", other, h.IfName, ok, err)
	}

	// The mark counts only on a loopback or dummy link, where lb/dsr puts
	// its addresses: on the veth it is a node's address.
	third := netip.MustParsePrefix("192.0.2.102/24")
	addMarked(t, h, h.IfName, netip.PrefixFrom(third.Addr(), 32), RealServerAddrProto)
	m3 := New(h.IfName, []netip.Prefix{third}, Options{})
	t.Cleanup(func() { _ = m3.Close() })
	err = h.Run(m3.Check)
	if err == nil || !strings.Contains(err.Error(), third.Addr().String()+" is already an address of "+h.IfName) {
		t.Errorf("Check with a marked copy on %s: %v, want a conflict naming it", h.IfName, err)
	}
}
