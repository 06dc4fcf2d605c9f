// Package announce tells the link that a virtual address has moved: a
// gratuitous ARP for IPv4 (RFC 826, RFC 5227 §3) and an unsolicited Neighbor
// Advertisement for IPv6 (RFC 4861 §7.2.6), as a new VRRP master must (RFC
// 3768 §6.4.2, RFC 5798 §6.4.2).
//
// The messages copy keepalived's, which switches and hosts are known to
// accept:
//
//   - Gratuitous ARP: Ethernet destination broadcast, ARP operation REQUEST
//     (1), sender hardware address the interface's MAC, sender and target
//     protocol address both the virtual address (RFC 5227 §3: "an ARP
//     Request ... where the 'sender IP address' and 'target IP address' are
//     both set to the IP address of the host"), target hardware address
//     ff:ff:ff:ff:ff:ff, sent on a packet socket.
//   - Unsolicited NA (RFC 4861 §7.2.6): to the all-nodes group ff02::1 with
//     hop limit 255 (§7.1.2), Solicited clear, Override set, Router clear,
//     and a Target Link-Layer Address option with the interface's MAC. The
//     IPv6 source is the virtual address itself when the kernel accepts it
//     (it is configured on the interface), else the link-local address.
//
// [GratuitousARP] and [UnsolicitedNA] build the messages without I/O;
// [Announcer] sends them.
package announce
