package vip

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Kernel values used by the pure address model (include/uapi/linux/if_addr.h,
// rtnetlink.h), here so that the model builds and is tested on any OS.
const (
	flagSecondary     = 0x01  // IFA_F_SECONDARY
	flagNoDAD         = 0x02  // IFA_F_NODAD
	flagNoPrefixRoute = 0x200 // IFA_F_NOPREFIXROUTE
	scopeUniverse     = 0     // RT_SCOPE_UNIVERSE
)

// AddrProto is the IFA_PROTO value nlb gives its addresses (Linux 5.18+,
// "net: Add new protocol attribute to IP addresses"). The kernel defines
// 0-3 (unspec, kernel_lo, kernel_ra, kernel_ll; include/uapi/linux/if_addr.h
// IFAPROT_*); the rest is free for the program that adds an address. 'n'
// for nlb. A test that must leave a VIP "from an earlier run" adds it with
// this IFA_PROTO; an address added without it is a node's own address.
const AddrProto = 0x6e

// RealServerAddrProto is the IFA_PROTO value lb/dsr gives the copies of the
// VIPs it puts on lo or dummyvip0 on every controller (the real-server
// side of direct server return; 'o'). Both of nlb's marks are declared
// here, the package that judges whose an address is; lb/dsr's AddrProto
// must equal this one (TestRealServerMarkAgrees). Such a copy, on a
// loopback or dummy link, is neither a node's address (no conflict) nor
// one of the Manager's (never removed): the VRRP Master carries the same
// VIP on its real interface beside it.
const RealServerAddrProto = 0x6f

// addrEntry is one address as an RTM_GETADDR dump reports it. A dump lists
// an interface's IPv4 addresses in the order of the kernel's ifa_list, the
// order inet_select_addr walks and tools show.
type addrEntry struct {
	index    int          // interface index
	prefix   netip.Prefix // the local address and its prefix length
	flags    uint32       // IFA_FLAGS (or the header's 8 bits)
	scope    uint8
	proto    uint8 // IFA_PROTO, 0 when absent
	hasProto bool  // the dump carried IFA_PROTO
}

func (e addrEntry) secondary() bool { return e.flags&flagSecondary != 0 }

// sameSubnet reports whether the kernel treats a and b as one subnet when
// choosing primary and secondary addresses: the same prefix length and the
// same network (__inet_insert_ifa compares ifa_mask and the masked address).
func sameSubnet(a, b netip.Prefix) bool {
	return a.Bits() == b.Bits() && a.Masked() == b.Masked()
}

// owner says which addresses are nlb's: the single rule shared by Remove
// (what stale cleanup may delete), Add and Check (what is a node's address
// and must be left alone), and the IPv4 placement repair.
type owner struct {
	vips []netip.Prefix
	// proto: the kernel records IFA_PROTO, so an address is nlb's exactly
	// when it carries AddrProto. Without it (kernels before 5.18) nothing
	// marks an address; an address on the managed interface equal to a
	// virtual address is then taken for nlb's, as keepalived does.
	proto   bool
	ifIndex int // the managed interface, for the fallback
	// rsLinks are the loopback and dummy links among the interfaces of
	// the addresses marked RealServerAddrProto: where lb/dsr puts them.
	rsLinks []int
}

// isVIP reports whether a is one of the virtual addresses.
func (o owner) isVIP(a netip.Addr) bool {
	for _, p := range o.vips {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

// nlb reports whether e was added by nlb (any instance): such an address
// is never a node's address, whichever Manager owns it.
func (o owner) nlb(e addrEntry) bool {
	if o.proto {
		return e.proto == AddrProto || o.realServer(e)
	}
	return e.index == o.ifIndex && o.isVIP(e.prefix.Addr())
}

// realServer reports whether e is lb/dsr's copy of an address (marked
// RealServerAddrProto, on a loopback or dummy link): nlb's, but no
// Manager's to add, move or remove. Kernels without IFA_PROTO keep no
// mark, so there it is a node's address like any other.
func (o owner) realServer(e addrEntry) bool {
	return o.proto && e.proto == RealServerAddrProto && slices.Contains(o.rsLinks, e.index)
}

// ours reports whether e is one of this Manager's addresses: equal to a
// virtual address and added by nlb as a VRRP address.
func (o owner) ours(e addrEntry) bool {
	return o.isVIP(e.prefix.Addr()) && o.nlb(e) && !o.realServer(e)
}

// conflict reports whether e is a node's address equal to a virtual
// address: one nlb did not add.
func (o owner) conflict(e addrEntry) bool {
	return o.isVIP(e.prefix.Addr()) && !o.nlb(e)
}

// noPrefixRoute reports whether IPv4 virtual address p should be added
// with IFA_F_NOPREFIXROUTE, given the interface's IPv4 addresses: when a
// node address with a shorter prefix already covers it. The VIP would
// then be a primary address of its own, longer prefix, and the prefix
// route the kernel adds for it (fib_add_ifaddr, with the VIP as preferred
// source) would make the VIP the source for that part of the node's
// subnet. With the same prefix length the VIP is a secondary address and
// adds no route anyway; and a VIP whose subnet no node address covers
// needs its route to reach on-link clients.
func (o owner) noPrefixRoute(p netip.Prefix, link []addrEntry) bool {
	if !p.Addr().Is4() || p.Bits() >= 32 {
		return false
	}
	for _, e := range link {
		if !o.nlb(e) && e.prefix.Addr().Is4() && e.prefix.Bits() < p.Bits() && e.prefix.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// misplaced finds this Manager's IPv4 addresses that the kernel would
// prefer over a node address, in link, the interface's IPv4 addresses in
// dump order. A virtual address v is misplaced when it is a primary
// address (not IFA_F_SECONDARY) and either
//
//   - a node address of the same subnet is secondary to it: deleting and
//     adding the node address again (DHCP) while v was promoted makes v
//     the subnet's primary, the preferred source of the subnet's prefix
//     route and of inet_select_addr; or
//   - a primary node address of the same or a wider scope comes after it:
//     inet_select_addr takes the first primary address when no subnet
//     matches the destination, and tools take the first address as "the
//     node address".
//
// The repair deletes and re-adds, so the result holds every address of
// ours in the affected subnets (deleting a primary promotes or deletes
// its secondaries; ours among them are re-added too), in dump order.
func (o owner) misplaced(link []addrEntry) (fix []addrEntry) {
	bad := map[netip.Prefix]bool{} // masked subnets to rebuild
	for i, v := range link {
		if !o.ours(v) || v.secondary() {
			continue
		}
		for j, n := range link {
			if o.nlb(n) {
				continue
			}
			switch {
			case n.secondary() && sameSubnet(n.prefix, v.prefix):
				bad[v.prefix.Masked()] = true
			case j > i && !n.secondary() && n.scope <= v.scope:
				bad[v.prefix.Masked()] = true
			}
		}
	}
	for _, e := range link {
		if o.ours(e) && bad[e.prefix.Masked()] {
			fix = append(fix, e)
		}
	}
	return fix
}

// promoteNeeded returns the interfaces on which deleting del would delete
// a node address with it: an IPv4 primary address in del with a secondary
// of its subnet that nlb did not add. Without promote_secondaries the
// kernel deletes every secondary of a primary it deletes
// (net/ipv4/devinet.c __inet_del_ifa); with it, it promotes the first one.
// all is the current dump.
func (o owner) promoteNeeded(all, del []addrEntry) []int {
	var out []int
	for _, d := range del {
		if !d.prefix.Addr().Is4() || d.secondary() {
			continue
		}
		for _, n := range all {
			if n.index == d.index && n.secondary() && !o.nlb(n) && sameSubnet(n.prefix, d.prefix) && !slices.Contains(out, d.index) {
				out = append(out, d.index)
			}
		}
	}
	return out
}

// releaseAtLeast reports whether a kernel release string ("6.1.0-13-amd64")
// is major.minor or later.
func releaseAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	num := func(s string) int {
		end := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
		if end >= 0 {
			s = s[:end]
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return -1
		}
		return n
	}
	ma, mi := num(parts[0]), num(parts[1])
	return ma > major || (ma == major && mi >= minor)
}
