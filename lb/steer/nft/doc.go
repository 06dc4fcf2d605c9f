// Package nft steers TCP connections for VIP:port to a local proxy port
// with nftables NAT rules, programmed over netlink (github.com/google/nftables;
// no nft or iptables binary). It is the fallback of lb/steer for kernels
// without BPF sk_lookup (Linux < 5.9).
//
// [Attach] owns one table named [TableName] in each family it needs ("ip"
// for IPv4 VIPs, "ip6" for IPv6 VIPs; separate families rather than "inet",
// whose NAT chains need Linux 5.2). Each table has two NAT base chains at
// the dstnat priority (-100):
//
//	prerouting (hook prerouting): connections arriving from the network
//	output     (hook output):     connections originating on this host
//
// and in each chain one rule per VIP:
//
//	meta l4proto tcp ip daddr VIP tcp dport PORT counter redirect to :PROXYPORT comment "nlb steer ID"
//
// REDIRECT rewrites the destination to an address of the host (the
// primary address of the incoming interface in prerouting, 127.0.0.1 or ::1
// in output; nf_nat_redirect_ipv4/ipv6 in the kernel) and the port to
// PROXYPORT, so the proxy must listen on the wildcard address (":6444"),
// and its accepted connections show the rewritten local address, not the VIP.
//
// Attach deletes and recreates the tables in one netlink batch (one
// nftables transaction: all or nothing), so running it again, or after a
// crash that left the tables behind, always leaves exactly one set of rules.
// Every rule carries the comment "nlb steer ID", ID being random per
// Attach. [Rules.Close] deletes the tables unless their rules carry another
// Attach's ID (a later Attach replaced them and now owns them). A process
// killed by SIGKILL leaves its tables in place until the next Attach or
// [Remove].
package nft
