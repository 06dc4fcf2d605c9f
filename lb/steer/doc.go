// Package steer hands TCP connections for the control plane's virtual IPs
// on the API port (VIP:6443) to nlb's proxy listening on
// userSpaceProxyBindPort (6444), the job k0s does with
// `iptables -t nat -A PREROUTING -p tcp -d VIP --dport 6443 -j REDIRECT --to-port 6444`.
// It needs no iptables or nft binary.
//
// Two methods, chosen by [Config.Mode]:
//
//   - "sklookup" (package ebpf/sklookup): a BPF sk_lookup program attached
//     to the network namespace (Linux 5.9) assigns connections to VIP:Port
//     to the proxy's listening socket itself. Nothing is rewritten: the
//     proxy sees the VIP as the local address, and the API server keeps
//     its own listener on the port.
//   - "nftables" (package lb/steer/nft): NAT rules in tables named "nlb"
//     (ip and ip6 families) redirect VIP:Port to ProxyPort over netlink.
//     The proxy sees a rewritten local address (an address of the
//     incoming interface, or loopback), so it must listen on the wildcard
//     address.
//   - "auto" (the default): sklookup, and nftables if that fails (kernel
//     too old, BPF not permitted, no listener given). The reason is
//     logged.
//
// Semantics shared by both methods:
//
//   - Steering is installed on every controller when nlb starts and stays
//     installed until [Steering.Close]; it does not follow VRRP state. It
//     only has an effect on the node where a VIP is a local address (the
//     VRRP master): elsewhere no packet for the VIP is delivered locally,
//     so there is nothing to steer.
//   - Only VIP:Port is steered. The node's own addresses on Port still
//     reach the API server directly, as do other ports on the VIP.
//   - Connections to VIP:Port that originate on the holder itself (a
//     kubelet or kubectl on the master) are steered to the proxy as well:
//     sk_lookup sees every local delivery, and the nftables method has an
//     output chain besides prerouting. This differs from k0s, whose
//     PREROUTING-only rule lets local clients reach the local API server
//     directly.
//   - Attach is idempotent and crash-safe: it replaces whatever an earlier
//     Attach left in the namespace, by either method, so exactly one set of
//     steering exists afterwards. The sk_lookup link is not pinned: it dies
//     with the process, even on SIGKILL. The nftables tables outlive a
//     killed process and are replaced by the next Attach. Close removes
//     everything Attach installed, except what a later Attach has already
//     replaced: closing a replaced Steering leaves the newer one working.
//
// Only ebpf/sklookup imports cilium/ebpf; this package reaches it through
// that package's API.
package steer
