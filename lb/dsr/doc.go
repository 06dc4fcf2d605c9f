// Package dsr is the real-server side of nlb's direct server return (the
// XDP load balancer of ebpf/xdplb, k0s's IPVS lb_kind DR): on every
// controller, each VIP is put where the kernel accepts packets addressed to
// it without answering ARP for it, as k0s's dummyvip0 does.
//
// # Where the VIPs go
//
// Each VIP is added as a /32 or /128 to the dummy link dummyvip0, created
// where the kernel has the dummy link type. Where it does not (a kernel
// without CONFIG_DUMMY, like the one nlb is developed on), the VIPs go on
// lo instead, and [RealServer.Up] says so in the log. Either way every
// address is marked as nlb's DR address with IFA_PROTO = [AddrProto]
// (0x6f; Linux 5.18+), distinct from the VRRP addresses' 0x6e (vrrp/vip),
// so that neither is taken for the other nor for a node address, and a
// restart finds exactly what a crashed nlb left: Up removes marked
// addresses that are no longer VIPs, Down removes them all. A dummyvip0
// that nlb created carries the alias [LinkAlias]; an existing link of that
// name that is not a dummy is refused, never deleted.
//
// # ARP
//
// A VIP on lo or a dummy would be answered for on every interface (Linux
// answers ARP for any local address by default), so every controller
// would claim the VIP. Up sets net.ipv4.conf.{all,<interface>}.arp_ignore
// to 1 (answer only for addresses of the receiving interface: the VRRP
// Master holds the VIP on its interface, the others only on lo/dummyvip0)
// and arp_announce to 2 (never use the VIP as the source of ARP requests),
// as the LVS DR documentation and the kernel's ip-sysctl describe; higher
// values already set are kept. IPv6 needs nothing: Linux answers a
// neighbour solicitation only for addresses of the receiving interface.
//
// The values found before are written to a state file first, so that
// Down restores them, even when a crashed nlb's successor runs it: a
// restart reads the originals from the file instead of taking nlb's own
// values for them. The state file belongs on a tmpfs (/run), which a
// reboot clears together with the sysctls.
//
// # Backends' MACs
//
// On the load balancer's side, [Neighbors] gives the MACs the XDP program
// rewrites to, from the kernel's neighbour table over netlink. A backend
// without a usable entry gets a managed one (NTF_EXT_MANAGED, Linux
// 5.16+, with NTF_USE): the kernel sends ARP or NDP at once and keeps
// re-resolving it, so the entry stays fresh although the program's
// forwarding never uses it. [Neighbors.Resolve] waits for the answers on
// netlink neighbour events, bounded by its context, and names the
// backends that did not answer. A backend that the routing table does not
// put directly on the VIP's interface (a gateway, another interface) is
// refused with a message naming it: DR rewrites only the MAC. [Neighbors.Watch]
// reports a backend whose entry learns another MAC, from the same events.
//
// Up and Down act in the network namespace of the calling thread at Up:
// the netlink socket and the sysctl files are opened then and used from
// any goroutine afterwards.
package dsr
