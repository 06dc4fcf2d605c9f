// Package dsrlab holds the direct-server-return lab: the XDP load balancer
// (ebpf/xdplb) on one controller of three, every controller a real server
// with the VIP on dummyvip0 or lo (lb/dsr), clients on several addresses,
// all in netlab namespaces on one bridged segment. Its tests check that
// requests through VIP:6443 reach every backend by the Maglev table and
// that the replies go straight from the backends to the clients (h1
// receives no more packets than its program handled, give or take ARP and
// NDP), with native XDP, pinned across a Close and across a SIGKILL of the
// process that attached it (the test binary re-executed as that process
// in h1's namespace), with what a worker brings on every controller
// (kube-proxy-style nftables DNAT and masquerade rules, conntrack on every
// packet), and as tcx under another XDP program. The backends'
// MACs come from lb/dsr's Neighbors, probed from h1.
//
// The client's veth computes its own TCP checksums (transmit offload off):
// ebpf/xdplb's doc says why.
//
// On a veth, a frame sent with XDP_TX (or redirected into the veth) is
// dropped unless the peer device runs an XDP program too (the veth's NAPI
// path is active only then; xdp-project/xdp-tutorial#167 and #399): the
// lab attaches a program that returns XDP_PASS to the bridge-side peer of
// the load balancer's veth. A real NIC needs nothing of the kind.
package dsrlab
