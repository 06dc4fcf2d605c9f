// Package socket implements [vrrp.Conn] on Linux with raw IP sockets of
// protocol 112, for VRRPv2 (RFC 3768) and VRRPv3 (RFC 5798, RFC 9568).
//
// The socket rules it enforces, with keepalived's socket options:
//
//   - Advertisements are multicast to 224.0.0.18 (RFC 3768 §5.2.2) or
//     ff02::12 (RFC 5798 §5.1.2.2) with TTL / hop limit 255 (RFC 3768
//     §5.2.3, RFC 5798 §5.1.1.3, §5.1.2.3), or unicast to configured peers
//     (a keepalived extension) with the same TTL.
//   - The IPv4 source is the interface's primary address (RFC 3768 §5.2.1);
//     the IPv6 source of multicast advertisements is the interface's
//     link-local address (RFC 5798 §5.1.2.1). The configured source is put in
//     every packet with IP_PKTINFO / IPV6_PKTINFO; binding the raw socket to
//     it is not an option, because a bound raw socket only receives packets
//     addressed to that address, not to the group.
//   - For IPv6 the kernel computes and verifies the VRRP checksum
//     (IPV6_CHECKSUM at offset 6, RFC 5798 §5.2.8), so a packet with a bad
//     checksum never reaches ReadFrom. For IPv4 the checksum is the caller's.
//   - The socket is bound to its interface (SO_BINDTODEVICE), accepts only
//     multicast groups it joined (IP_MULTICAST_ALL / IPV6_MULTICAST_ALL 0),
//     does not loop its own multicast back, and reports the received TTL or
//     hop limit, source, destination and interface for the receive checks
//     of RFC 3768 §7.1 and RFC 5798 §7.1, which [vrrp.Filter] performs.
//
// In unicast mode the group is not joined, so multicast advertisements are
// not received. The source check against the peer list is left to
// [vrrp.Filter], which counts what it drops.
package socket
