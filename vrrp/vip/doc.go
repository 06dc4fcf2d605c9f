// Package vip configures an instance's virtual addresses on an interface
// with netlink: the Linux side of the Master state's "add the virtual
// addresses" and of leaving it (RFC 3768 §6.4.3 and §6.4.2, RFC 5798 §6.4.3
// and §6.4.2).
//
// Behaviour follows keepalived:
//
//   - Addresses are added with RTM_NEWADDR and NLM_F_REPLACE, so adding is
//     idempotent; removal ignores addresses that are already gone, so
//     removing is idempotent too.
//   - IPv6 virtual addresses skip Duplicate Address Detection (IFA_F_NODAD,
//     RFC 4862 §5.4): the address is usable at once, never tentative, and a
//     backup that still holds it cannot make it fail DAD. A /128 is added
//     with preferred lifetime 0, so the kernel does not pick it as the
//     source of outgoing connections.
//   - IPv4 virtual addresses are added with their configured prefix length
//     (for k0s, the node network's CIDR). When the node already has an
//     address in that subnet the VIP becomes a secondary address and adds
//     no route; otherwise the kernel adds the subnet's prefix route, which is
//     what makes replies to on-link clients leave directly. Options.
//     NoPrefixRoute suppresses that route (IFA_F_NOPREFIXROUTE); use it only
//     when another address already covers the subnet, or on-link clients
//     will be answered through the default gateway.
//   - Removal deletes every address on the interface equal to a virtual
//     address, whatever its prefix length, so removing at startup also
//     cleans up a VIP left behind by a killed process or by an older
//     configuration with another prefix length.
package vip
