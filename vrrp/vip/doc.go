// Package vip configures an instance's virtual addresses on an interface
// with netlink: the Linux side of the Master state's "add the virtual
// addresses" and of leaving it (RFC 3768 §6.4.3 and §6.4.2, RFC 5798 §6.4.3
// and §6.4.2). It also keeps them from ever being taken for the node's own
// address: neither as the source the kernel picks for the node's traffic,
// nor as the address tools take as "the node address" (k0s #4664: the VIP
// became etcd's peer address; k0sctl #1100: the VIP was detected as the
// node's private address).
//
// # Whose addresses
//
// nlb marks every address it adds with IFA_PROTO = 0x6e (Linux 5.18+; the
// address-protocol attribute, as routes have RTM_PROTOCOL). One rule,
// owner in addr.go, decides from it what is nlb's, and every operation
// uses it:
//
//   - Remove deletes the addresses nlb added that equal a virtual address,
//     on any interface and with any prefix length: it cleans up after a
//     killed process or an older configuration, and is idempotent.
//   - A virtual address equal to an address nlb did not add is a node's
//     own address. Check reports it as an error naming the interface (run
//     it at start-up), Add refuses to touch it (NLM_F_REPLACE would take
//     it over), Remove leaves it alone. The configuration checks reject a
//     VIP equal to a unicast source or peer earlier still.
//   - An address marked RealServerAddrProto (0x6f) on a loopback or dummy
//     link is lb/dsr's copy of a VIP (direct server return: every
//     controller keeps the VIPs as /32 or /128 on dummyvip0 or lo, and the
//     VRRP Master adds them on its interface too). It is neither a
//     conflict nor the Manager's: Check and Add accept it, Add and Remove
//     leave it in place. The same mark elsewhere counts for nothing.
//   - Kernels before 5.18 keep no mark. nlb then takes an address on the
//     managed interface equal to a virtual address for its own (as
//     keepalived does) and an equal address elsewhere for a node's;
//     a VIP configured as the node's address on the managed interface is
//     then not detected there.
//
// # Adding and removing
//
// Addresses are added with RTM_NEWADDR and NLM_F_REPLACE, so adding is
// idempotent; removal ignores addresses already gone. Add also starts a
// watcher (RTNLGRP_IPV4_IFADDR and RTNLGRP_IPV6_IFADDR notifications) that,
// until Remove, puts back a virtual address someone deleted and repairs
// the IPv4 order described below. Repairs are logged and rate-limited.
//
// # Lifetimes
//
// AddFor gives the addresses a finite valid lifetime, and Refresh restarts
// it, so that the kernel removes them by itself when their owner stops
// (a killed or stopped process, a wedged loop): IFA_CACHEINFO with
// ifa_valid the lifetime in whole seconds and ifa_prefered the same (0
// for an IPv6 /128, deprecated as below). An IPv4 address with preferred
// lifetime 0 is flagged deprecated, which IPv4 source selection ignores
// (checked: `ip route get` still picks it) but tools show. The kernel checks the
// lifetimes in a delayed work (net/ipv4/devinet.c check_lifetime,
// net/ipv6/addrconf.c addrconf_verify): an address goes up to 20 ms
// before its end and usually within a second after it. vrrp.Instance
// drives the refreshes with a Master's adverts (vrrp.VIPLifetime), never
// with a timer of this package: what stops the adverts must stop the
// refreshes.
//
// A refresh is an RTM_NEWADDR with NLM_F_REPLACE per address, from what
// the last add sent, without a dump: the kernel updates the address in
// place (inet_rtm_newaddr and inet6_addr_modify set the lifetimes and send
// an RTM_NEWADDR) and never removes it. The kernel creates an address that
// is missing whatever the flags, so a refresh that came after the
// lifetime ran out would bring an expired VIP back: Refresh refuses once
// it is within a quarter second of its end. The watcher skips RTM_NEWADDR
// notifications of nlb's own addresses (they are refreshes), and once the
// lifetime has run out it puts nothing back: a process that was stopped
// and resumes finds the expiry's RTM_DELADDR in its socket, and re-adding
// would make the node answer for a VIP a Backup took over. Within the
// lifetime it restores an address someone deleted with what is left of
// the lifetime.
//
// # IPv6
//
// Virtual addresses skip Duplicate Address Detection (IFA_F_NODAD, RFC 4862
// §5.4): the address is usable at once, never tentative, and a backup that
// still holds it cannot make it fail DAD. A /128 is added with preferred
// lifetime 0 (deprecated; RFC 6724 rule 3 avoids it as a source).
//
// Source selection (RFC 6724 §5, net/ipv6/addrconf.c ipv6_dev_get_saddr)
// would otherwise often pick the VIP: it is on the same interface, of the
// same scope and prefix as the node's address, so every rule ties, and the
// kernel lists addresses newest first, which makes the later-added VIP win
// the tie. As k0s does, each virtual address gets an entry in the kernel's
// RFC 6724 policy table (RTM_NEWADDRLABEL, struct ifaddrlblmsg with
// IFAL_ADDRESS and IFAL_LABEL): prefix VIP/128, every interface, label
// Options.AddressLabel (k0s addressLabel, 10000 by default). Destinations
// carry the default labels (1 for most global unicast), so rule 6 "prefer
// matching label" picks the node's address. The label is installed before
// the address and removed after it; stale entries for a VIP's /128 (another
// value, one interface, duplicates) are deleted like stale addresses.
// NLM_F_REPLACE is not relied on: the kernel's search for the entry to
// replace stops at the first global entry of the same length
// (net/ipv6/addrlabel.c __ip6addrlbl_add), so with two VIPs it would
// insert duplicates. Close removes the labels of VIPs that are gone; a
// label stays with a VIP still present, which without it would become a
// source candidate.
//
// IFA_F_NOPREFIXROUTE is not needed for IPv6: its prefix routes carry no
// preferred source, so the route a VIP adds cannot make it a source, and
// it keeps the VIP's subnet on-link if the node's address goes away.
// Options.NoPrefixRoute still forces it.
//
// The dump order cannot be changed (newest first): a tool that takes the
// first IPv6 address without looking at flags may still see a /64 VIP.
//
// # IPv4
//
// IPv4 has no labels; what counts is primary versus secondary addresses
// and their order (net/ipv4/devinet.c, net/ipv4/fib_frontend.c,
// net/ipv4/fib_semantics.c):
//
//   - A new address is secondary (IFA_F_SECONDARY) when the interface
//     already has an address of the same subnet with the same prefix
//     length; otherwise it is primary. Primaries come first, by scope,
//     each new one after the last primary of its scope; secondaries are
//     appended (__inet_insert_ifa). Dumps, `ip addr` and Go's
//     net.Interface.Addrs list them in that order.
//   - inet_select_addr, the source for routes without a preferred source,
//     takes the first primary address whose subnet holds the destination
//     (for a gateway route, the gateway), else the first primary; it never
//     takes a secondary address.
//   - A primary address adds its prefix route with itself as preferred
//     source (fib_add_ifaddr); secondaries, /32s and IFA_F_NOPREFIXROUTE
//     add none.
//   - Deleting a primary address deletes its secondaries, unless
//     promote_secondaries is on, which promotes the first one instead
//     (__inet_del_ifa).
//
// nlb's scheme:
//
//  1. A VIP is added with its configured prefix length. In the usual k0s
//     set-up (the VIP in the node's subnet, with the node's prefix length)
//     it is a secondary address: never a source, never listed first, no
//     route of its own.
//  2. A VIP in another prefix (203.0.113.10/32, or a /24 no node address
//     covers) is a primary placed after the node's primaries. It is the
//     source only for its own subnet, where the node has no address, and
//     for traffic to itself.
//  3. A VIP inside a node subnet with a longer prefix (a /25 in the node's
//     /24) is added with IFA_F_NOPREFIXROUTE: its prefix route would be
//     more specific than the node's and prefer the VIP as source.
//  4. When the node's address is deleted and added again (DHCP), the VIP
//     can end up ahead: promoted to primary with the node's address now
//     its secondary (promote_secondaries on), restored alone after the
//     kernel deleted it with its primary (off), or a /32 simply listed
//     first. The watcher then deletes and re-adds the affected VIPs, which
//     puts them behind the node's address again (owner.misplaced). Where
//     deleting a VIP would delete a node address secondary to it,
//     promote_secondaries is turned on for the interface (RTM_SETLINK,
//     IFLA_AF_SPEC / AF_INET / IFLA_INET_CONF) for the deletion and
//     restored after, so the node's address is promoted instead; Remove
//     does the same. A VIP is absent for the microseconds between the
//     two requests.
//
// # Locally originated traffic
//
// A socket not bound to an address gets its source from the route's
// preferred source or inet_select_addr (IPv4), or from RFC 6724 selection
// (IPv6): the node's address, by the rules above; so do the proxy's
// connections to its backends and the node's own etcd and API server
// traffic. A socket bound to the VIP (a listener on the VIP, and the
// replies on its connections) uses the VIP, as it must. ICMP errors about
// packets sent to the VIP come from the VIP (icmp_send answers from the
// packet's local destination). ARP requests the kernel sends for packets
// from the VIP carry the VIP as sender (arp_announce 0); the gratuitous
// ARPs and unsolicited neighbour advertisements are nlb's own.
package vip
