//go:build linux

package vip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// waitLimit bounds the waits for the watcher's repairs: generous, never
// asserted.
const waitLimit = 10 * time.Second

func TestNewAddr(t *testing.T) {
	pp := netip.MustParsePrefix
	node := []addrEntry{{index: 2, prefix: pp("192.0.2.11/24")}}
	tests := []struct {
		p              netip.Prefix
		opts           Options
		wantFlags      uint32
		wantDeprecated bool // preferred lifetime 0
		wantBroadcast  bool
		lifetime       time.Duration
		wantValid      uint32
	}{
		{p: pp("192.0.2.100/24"), wantBroadcast: true},
		{p: pp("192.0.2.100/25"), wantFlags: flagNoPrefixRoute, wantBroadcast: true},
		{p: pp("192.0.2.100/32"), opts: Options{NoPrefixRoute: true}, wantFlags: flagNoPrefixRoute, wantBroadcast: true},
		{p: pp("2001:db8::100/64"), wantFlags: flagNoDAD},
		{p: pp("2001:db8::100/128"), wantFlags: flagNoDAD, wantDeprecated: true},
		// With a lifetime: what is left of it, whole seconds rounded up.
		{p: pp("192.0.2.100/24"), wantBroadcast: true, lifetime: 4500 * time.Millisecond, wantValid: 5},
		{p: pp("2001:db8::100/128"), wantFlags: flagNoDAD, wantDeprecated: true, lifetime: 2 * time.Second, wantValid: 2},
	}
	for _, tt := range tests {
		m := New("eth0", []netip.Prefix{tt.p}, tt.opts)
		m.setLifetime(time.Now(), tt.lifetime) // rounded up: the time taken does not show
		o := owner{vips: m.vips, proto: true, ifIndex: 2}
		a := m.newAddr(2, tt.p, o, node)
		if a.flags != tt.wantFlags || a.deprecated != tt.wantDeprecated || a.broadcast != tt.wantBroadcast || a.prefix != tt.p ||
			a.index != 2 || a.valid != tt.wantValid {
			t.Errorf("%v: %+v; want flags %#x deprecated %v broadcast %v valid %d", tt.p, a, tt.wantFlags, tt.wantDeprecated,
				tt.wantBroadcast, tt.wantValid)
		}
	}
}

// hostRun runs fn in h's namespace and fails the test on error.
func hostRun(t *testing.T, h *netlab.Host, fn func() error) {
	t.Helper()
	if err := h.Run(fn); err != nil {
		t.Fatal(err)
	}
}

// addOwned adds p to ifName as nlb does, as a VIP left by an earlier run.
func addOwned(t *testing.T, h *netlab.Host, ifName string, p netip.Prefix) {
	t.Helper()
	hostRun(t, h, func() error {
		link, err := netlink.LinkByName(ifName)
		if err != nil {
			return err
		}
		r, err := openRTNL()
		if err != nil {
			return err
		}
		defer r.close()
		return r.addAddr(newAddr{index: link.Attrs().Index, prefix: p})
	})
}

// addNode adds p to ifName the way a network manager adds a node address.
func addNode(t *testing.T, h *netlab.Host, ifName string, p netip.Prefix) {
	t.Helper()
	hostRun(t, h, func() error {
		link, err := netlink.LinkByName(ifName)
		if err != nil {
			return err
		}
		return netlink.AddrAdd(link, &netlink.Addr{IPNet: prefixNet(p)})
	})
}

// delAddr deletes p from ifName behind nlb's back.
func delAddr(t *testing.T, h *netlab.Host, ifName string, p netip.Prefix) {
	t.Helper()
	hostRun(t, h, func() error {
		link, err := netlink.LinkByName(ifName)
		if err != nil {
			return err
		}
		return netlink.AddrDel(link, &netlink.Addr{IPNet: prefixNet(p)})
	})
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// dumpAddrs lists h's addresses as nlb sees them.
func dumpAddrs(t *testing.T, h *netlab.Host) []addrEntry {
	t.Helper()
	var out []addrEntry
	hostRun(t, h, func() error {
		r, err := openRTNL()
		if err != nil {
			return err
		}
		defer r.close()
		out, err = r.addrs()
		return err
	})
	return out
}

// labelsFor returns h's address label entries for a's /128.
func labelsFor(t *testing.T, h *netlab.Host, a netip.Addr) []addrLabel {
	t.Helper()
	var out []addrLabel
	hostRun(t, h, func() error {
		r, err := openRTNL()
		if err != nil {
			return err
		}
		defer r.close()
		all, err := r.labels()
		for _, l := range all {
			if l.prefix == netip.PrefixFrom(a, 128) {
				out = append(out, l)
			}
		}
		return err
	})
	return out
}

// routeSrc is the source address the kernel picks for dst (ip route get).
func routeSrc(h *netlab.Host, dst netip.Addr) (netip.Addr, error) {
	var src netip.Addr
	err := h.Run(func() error {
		routes, err := netlink.RouteGet(dst.AsSlice())
		if err != nil {
			return err
		}
		if len(routes) == 0 {
			return fmt.Errorf("no route to %v", dst)
		}
		src, _ = netip.AddrFromSlice(routes[0].Src)
		src = src.Unmap()
		return nil
	})
	return src, err
}

// firstAddr is the first address of family v4/v6 Go's net package lists
// for ifName: what tools take as "the node address".
func firstAddr(h *netlab.Host, ifName string, v4 bool) (netip.Addr, error) {
	var first netip.Addr
	err := h.Run(func() error {
		ifi, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, _ := netip.AddrFromSlice(ipn.IP)
			if ip = ip.Unmap(); ip.Is4() == v4 {
				first = ip
				return nil
			}
		}
		return fmt.Errorf("no address on %s", ifName)
	})
	return first, err
}

// eventually waits (nlbtest.Eventually) until cond, a description of
// what is still wrong, returns "" (all is well).
func eventually(t *testing.T, what string, cond func() string) {
	t.Helper()
	nlbtest.Eventually(t, waitLimit, what, func() error {
		if s := cond(); s != "" {
			return errors.New(s)
		}
		return nil
	})
}

func sysctl(t *testing.T, h *netlab.Host, key, value string) {
	t.Helper()
	hostRun(t, h, func() error { return os.WriteFile("/proc/sys/net/"+key, []byte(value), 0o644) })
}

func readSysctl(t *testing.T, h *netlab.Host, key string) string {
	t.Helper()
	var v string
	hostRun(t, h, func() error {
		b, err := os.ReadFile("/proc/sys/net/" + key)
		v = strings.TrimSpace(string(b))
		return err
	})
	return v
}

func TestManager(t *testing.T) {
	l := netlab.NewT(t, "vip", netlab.Options{Hosts: 2})
	h1, h2 := l.Hosts[0], l.Hosts[1]
	v4, v6, v6h := l.VIP4(1), l.VIP6(1), netip.PrefixFrom(l.VIP6(2).Addr(), 128)
	vips := []netip.Prefix{v4, v6, v6h}
	m := New(h1.IfName, vips, Options{})
	t.Cleanup(func() { _ = m.Close() })

	run := func(fn func() error) {
		t.Helper()
		hostRun(t, h1, fn)
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
	sysctl(t, h1, "ipv6/conf/"+h1.IfName+"/accept_dad", "1")

	// Stale VIP from an earlier run, with another prefix length.
	addOwned(t, h1, h1.IfName, netip.PrefixFrom(v4.Addr(), 32))
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
	// Every VIP carries nlb's mark (kernels with IFA_PROTO).
	if kernelHasAddrProto() {
		for _, e := range dumpAddrs(t, h1) {
			if m.isVIP(e.prefix.Addr()) && e.proto != AddrProto {
				t.Errorf("%v: IFA_PROTO %d, want %d", e.prefix, e.proto, AddrProto)
			}
		}
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
	t.Cleanup(func() { _ = m.Close() })
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
	t.Cleanup(func() { _ = m.Close() })
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
	t.Cleanup(func() { _ = m.Close() })
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

// TestIPv4SourceAddress: with node address 192.0.2.11/24, a VIP in its
// subnet (192.0.2.100/24) and one in another prefix (203.0.113.10/32), the
// kernel's source address for an on-link destination, an off-link one
// through the gateway and one behind a device route without gateway (where
// inet_select_addr takes the first primary address) is the node address,
// and so is the first IPv4 address tools see. It stays so after the node
// address is deleted and added again (a DHCP renewal), with and without
// promote_secondaries: the watcher re-adds the VIPs behind it.
func TestIPv4SourceAddress(t *testing.T) {
	l := netlab.NewT(t, "vipsrc4", netlab.Options{Hosts: 1})
	h := l.Hosts[0]
	node := h.Links[0].Addr4
	gw := netip.MustParseAddr("192.0.2.1")
	vipSubnet := netip.MustParsePrefix("192.0.2.100/24")
	vipOther := netip.MustParsePrefix("203.0.113.10/32")
	onLink := netip.MustParseAddr("192.0.2.5")
	offLink := netip.MustParseAddr("203.0.113.50")
	devRoute := netip.MustParsePrefix("198.51.100.0/24")
	devDst := netip.MustParseAddr("198.51.100.7")

	routes := func() error {
		link, err := netlink.LinkByName(h.IfName)
		if err != nil {
			return err
		}
		for _, r := range []*netlink.Route{
			{LinkIndex: link.Attrs().Index, Gw: gw.AsSlice()},                                    // default via 192.0.2.1
			{LinkIndex: link.Attrs().Index, Dst: prefixNet(devRoute), Scope: netlink.SCOPE_LINK}, // dev route, no src
		} {
			if err := netlink.RouteAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("route %v: %w", r, err)
			}
		}
		return nil
	}
	hostRun(t, h, routes)

	m := New(h.IfName, []netip.Prefix{vipSubnet, vipOther}, Options{})
	t.Cleanup(func() { _ = m.Close() })
	hostRun(t, h, m.Add)

	wrong := func() string {
		var bad []string
		for _, dst := range []netip.Addr{onLink, offLink, devDst} {
			src, err := routeSrc(h, dst)
			if err != nil {
				return err.Error()
			}
			if src != node.Addr() {
				bad = append(bad, fmt.Sprintf("route get %v: src %v", dst, src))
			}
		}
		first, err := firstAddr(h, h.IfName, true)
		if err != nil {
			return err.Error()
		}
		if first != node.Addr() {
			bad = append(bad, fmt.Sprintf("first address %v", first))
		}
		for _, p := range []netip.Prefix{vipSubnet, vipOther} {
			if ok, err := h.HasAddr(p); err != nil || !ok {
				bad = append(bad, fmt.Sprintf("VIP %v missing (%v)", p, err))
			}
		}
		if len(bad) > 0 {
			return fmt.Sprintf("want the node address %v everywhere: %s", node.Addr(), strings.Join(bad, "; "))
		}
		return ""
	}
	if s := wrong(); s != "" {
		t.Fatalf("after Add: %s", s)
	}

	for _, promote := range []bool{true, false} {
		t.Run(fmt.Sprintf("promote_secondaries=%v", promote), func(t *testing.T) {
			val := "0"
			if promote {
				val = "1"
			}
			sysctl(t, h, "ipv4/conf/"+h.IfName+"/promote_secondaries", val)
			delAddr(t, h, h.IfName, node)
			if promote {
				// The kernel promoted the subnet's VIP to primary.
				if ok, err := h.HasAddr(vipSubnet); err != nil || !ok {
					t.Fatalf("VIP %v not promoted: %v %v", vipSubnet, ok, err)
				}
			} else {
				// The kernel deleted the VIP with its primary; the
				// watcher puts it back, as the subnet's primary now.
				eventually(t, "VIP restored", func() string {
					if ok, err := h.HasAddr(vipSubnet); err != nil || !ok {
						return fmt.Sprintf("VIP %v absent (%v)", vipSubnet, err)
					}
					return ""
				})
			}
			addNode(t, h, h.IfName, node) // behind the VIPs, or secondary to one
			hostRun(t, h, routes)
			eventually(t, "after the node address came back", wrong)
			if got := readSysctl(t, h, "ipv4/conf/"+h.IfName+"/promote_secondaries"); got != val {
				t.Errorf("promote_secondaries = %s after the repair, want %s", got, val)
			}
		})
	}

	hostRun(t, h, m.Remove)
	if ok, err := h.HasAddr(node); err != nil || !ok {
		t.Fatalf("node address gone after Remove: %v %v", ok, err)
	}
}

// TestIPv6AddressLabel: with node address 2001:db8::11/64 and VIP
// 2001:db8::100/64, the RFC 6724 label for the VIP's /128 exists while the
// VIP is up, makes the kernel pick the node address as source (without it
// the newer VIP would win the tie), and is gone after Remove; stale labels
// are cleaned like stale VIPs; Close keeps a label only while its VIP is
// still configured.
func TestIPv6AddressLabel(t *testing.T) {
	l := netlab.NewT(t, "viplabel", netlab.Options{Hosts: 1})
	h := l.Hosts[0]
	node := h.Links[0].Addr6
	vip := netip.MustParsePrefix("2001:db8::100/64")
	vipHost := netip.MustParsePrefix("2001:db8::101/128")
	onLink := netip.MustParseAddr("2001:db8::5")
	offLink := netip.MustParseAddr("2001:db8:5::1")
	hostRun(t, h, func() error {
		link, err := netlink.LinkByName(h.IfName)
		if err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: net.ParseIP("2001:db8::1")})
	})
	const label = 20000
	m := New(h.IfName, []netip.Prefix{vip, vipHost}, Options{AddressLabel: label})
	t.Cleanup(func() { _ = m.Close() })

	srcs := func() string {
		var bad []string
		for _, dst := range []netip.Addr{onLink, offLink} {
			src, err := routeSrc(h, dst)
			if err != nil {
				return err.Error()
			}
			if src != node.Addr() {
				bad = append(bad, fmt.Sprintf("route get %v: src %v", dst, src))
			}
		}
		return strings.Join(bad, "; ")
	}
	wantLabel := func(when string, a netip.Addr, want []addrLabel) {
		t.Helper()
		if got := labelsFor(t, h, a); !slices.Equal(got, want) {
			t.Errorf("%s: labels for %v = %+v, want %+v", when, a, got, want)
		}
	}
	label128 := func(p netip.Prefix) addrLabel {
		return addrLabel{prefix: netip.PrefixFrom(p.Addr(), 128), label: label}
	}

	// A stale label from an earlier run, with another value, on the
	// interface: Remove deletes it like a stale VIP.
	hostRun(t, h, func() error {
		r, err := openRTNL()
		if err != nil {
			return err
		}
		defer r.close()
		return r.addLabel(addrLabel{prefix: netip.PrefixFrom(vip.Addr(), 128), index: h.Index, label: 7})
	})
	wantLabel("stale", vip.Addr(), []addrLabel{{prefix: netip.PrefixFrom(vip.Addr(), 128), index: h.Index, label: 7}})
	hostRun(t, h, m.Remove)
	wantLabel("after Remove", vip.Addr(), nil)

	for range 2 {
		hostRun(t, h, m.Add)
	}
	wantLabel("after Add", vip.Addr(), []addrLabel{label128(vip)})
	wantLabel("after Add", vipHost.Addr(), []addrLabel{label128(vipHost)})
	if s := srcs(); s != "" {
		t.Errorf("with the label: %s", s)
	}

	hostRun(t, h, m.Remove)
	wantLabel("after Remove", vip.Addr(), nil)
	wantLabel("after Remove", vipHost.Addr(), nil)
	if ok, err := h.HasAddr(vip); err != nil || ok {
		t.Errorf("VIP present after Remove: %v %v", ok, err)
	}

	// Control: without the label the kernel picks the VIP, which the
	// kernel lists first (newest first) and which ties with the node
	// address on every other RFC 6724 rule. The VIP is added by hand,
	// with no Manager watching: a watcher still handling the
	// notifications of its own Add would put the label back (seen as a
	// flaky control when the label was deleted under a running Manager).
	hostRun(t, h, func() error {
		link, err := netlink.LinkByName(h.IfName)
		if err != nil {
			return err
		}
		return netlink.AddrAdd(link, &netlink.Addr{IPNet: prefixNet(vip), Flags: unix.IFA_F_NODAD})
	})
	if src, err := routeSrc(h, onLink); err != nil || src != vip.Addr() {
		t.Errorf("control: without the label route get %v: src %v (%v), want the VIP", onLink, src, err)
	}
	delAddr(t, h, h.IfName, vip)
	hostRun(t, h, m.Add) // with the label again
	if s := srcs(); s != "" {
		t.Errorf("after Add restored the label: %s", s)
	}
	hostRun(t, h, m.Remove)

	// Close keeps the label of a VIP still configured, and removes it
	// once the VIP is gone.
	hostRun(t, h, m.Add)
	hostRun(t, h, m.Close)
	wantLabel("after Close with the VIP up", vip.Addr(), []addrLabel{label128(vip)})
	delAddr(t, h, h.IfName, vip)
	hostRun(t, h, m.Check) // opens the sockets again
	hostRun(t, h, m.Close)
	wantLabel("after Close without the VIP", vip.Addr(), nil)
	wantLabel("after Close with the /128 VIP still up", vipHost.Addr(), []addrLabel{label128(vipHost)})
	hostRun(t, h, m.Remove)
	wantLabel("after the last Remove", vipHost.Addr(), nil)
}

// TestNodeAddressConflict: a VIP equal to an address nlb did not add (a
// node's own address, on the managed interface or another) is refused by
// Check with the interface's name, never claimed by Add nor deleted by
// Remove; an address nlb added in an earlier run is no conflict and is
// cleaned up.
func TestNodeAddressConflict(t *testing.T) {
	if !kernelHasAddrProto() {
		t.Skip("kernel before 5.18: no IFA_PROTO, nlb cannot tell its addresses from the node's on the managed interface")
	}
	l := netlab.NewT(t, "vipconflict", netlab.Options{Hosts: 1})
	h := l.Hosts[0]
	node := h.Links[0].Addr4
	onLo := netip.MustParsePrefix("192.0.2.200/32")
	stale := netip.MustParsePrefix("192.0.2.201/24")
	free := netip.MustParsePrefix("192.0.2.150/24")
	addNode(t, h, "lo", onLo)
	addOwned(t, h, h.IfName, stale)

	check := func(vips ...netip.Prefix) error {
		m := New(h.IfName, vips, Options{})
		defer m.Close()
		return h.Run(m.Check)
	}
	if err := check(free, stale); err != nil {
		t.Errorf("Check with a free VIP and one nlb left behind: %v", err)
	}
	err := check(netip.PrefixFrom(node.Addr(), 24), free, netip.PrefixFrom(onLo.Addr(), 24))
	if err == nil {
		t.Fatal("Check accepted VIPs equal to node addresses")
	}
	for _, s := range []string{
		node.Addr().String() + " is already an address of " + h.IfName + " that nlb did not add",
		onLo.Addr().String() + " is already an address of lo that nlb did not add",
	} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Check error lacks %q:\n%v", s, err)
		}
	}
	if strings.Contains(err.Error(), free.Addr().String()) {
		t.Errorf("Check blames the free VIP:\n%v", err)
	}

	nodeVIP := netip.PrefixFrom(node.Addr(), 24)
	m := New(h.IfName, []netip.Prefix{nodeVIP, free, stale}, Options{})
	t.Cleanup(func() { _ = m.Close() })
	if err := h.Run(m.Add); err == nil || !strings.Contains(err.Error(), node.Addr().String()) {
		t.Errorf("Add over a node address: %v", err)
	}
	if ok, err := h.HasAddr(free); err != nil || !ok {
		t.Errorf("the free VIP was not added beside the conflict: %v %v", ok, err)
	}
	for _, e := range dumpAddrs(t, h) {
		if e.prefix == node && e.proto == AddrProto {
			t.Errorf("Add claimed the node address %v", e.prefix)
		}
	}
	hostRun(t, h, m.Remove)
	for p, want := range map[netip.Prefix]bool{node: true, onLo: true, free: false, stale: false} {
		if ok, err := h.HasAddr(p); err != nil || ok != want {
			t.Errorf("after Remove: HasAddr(%v) = %v, %v; want %v", p, ok, err, want)
		}
	}
}

// TestRemoveKeepsNodeSecondary: a VIP left by an earlier run became the
// primary of the node's subnet (the node address was added again while
// it was there); with promote_secondaries off, deleting it would delete
// the node address too. Remove turns promote_secondaries on for the
// deletion, so the node address is promoted instead, and turns it off again.
func TestRemoveKeepsNodeSecondary(t *testing.T) {
	if !kernelHasAddrProto() {
		t.Skip("kernel before 5.18: a VIP left behind cannot be told from a node address")
	}
	l := netlab.NewT(t, "vipkeepnode", netlab.Options{Hosts: 1})
	h := l.Hosts[0]
	node := h.Links[0].Addr4
	vip := netip.MustParsePrefix("192.0.2.100/24")
	key := "ipv4/conf/" + h.IfName + "/promote_secondaries"
	sysctl(t, h, key, "0")
	delAddr(t, h, h.IfName, node)
	addOwned(t, h, h.IfName, vip)
	addNode(t, h, h.IfName, node)
	for _, e := range dumpAddrs(t, h) {
		if e.prefix == node && !e.secondary() {
			t.Fatalf("setup: node address %v is not secondary to the VIP", node)
		}
	}
	m := New(h.IfName, []netip.Prefix{vip}, Options{})
	t.Cleanup(func() { _ = m.Close() })
	hostRun(t, h, m.Remove)
	if ok, err := h.HasAddr(node); err != nil || !ok {
		t.Fatalf("Remove deleted the node address with the VIP: %v %v", ok, err)
	}
	if ok, err := h.HasAddr(vip); err != nil || ok {
		t.Errorf("VIP present after Remove: %v %v", ok, err)
	}
	if got := readSysctl(t, h, key); got != "0" {
		t.Errorf("promote_secondaries = %s after Remove, want 0", got)
	}
}

// TestRestoreRemovedVIP: while the VIPs are up, one deleted by someone
// else comes back; after Remove it stays away.
func TestRestoreRemovedVIP(t *testing.T) {
	l := netlab.NewT(t, "viprestore", netlab.Options{Hosts: 1})
	h := l.Hosts[0]
	v4, v6 := l.VIP4(5), l.VIP6(5)
	m := New(h.IfName, []netip.Prefix{v4, v6}, Options{})
	t.Cleanup(func() { _ = m.Close() })
	hostRun(t, h, m.Add)
	for _, p := range []netip.Prefix{v4, v6} {
		delAddr(t, h, h.IfName, p)
		eventually(t, "VIP restored", func() string {
			if ok, err := h.HasAddr(p); err != nil || !ok {
				return fmt.Sprintf("%v absent (%v)", p, err)
			}
			return ""
		})
	}
	hostRun(t, h, m.Remove)
	// Nothing restores them now: add a node address to give a watcher
	// that failed to stop something to react to, then look.
	extra := netip.MustParsePrefix("192.0.2.250/24")
	addNode(t, h, h.IfName, extra)
	for _, p := range []netip.Prefix{v4, v6} {
		if ok, err := h.HasAddr(p); err != nil || ok {
			t.Errorf("%v present after Remove: %v %v", p, ok, err)
		}
	}
}
