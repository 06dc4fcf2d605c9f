// Package netlab builds throw-away network-namespace labs for privileged
// tests, the demo and the benchmarks.
//
// A [Lab] is one "switch" namespace holding a Linux bridge per segment and
// N host namespaces, each attached to every bridge by a veth pair. Hosts get
// addresses from the documentation ranges only (RFC 5737 and RFC 3849):
// segment 0 uses 192.0.2.0/24 and 2001:db8::/64, segment 1 198.51.100.0/24
// and 2001:db8:1::/64, segment 2 203.0.113.0/24 and 2001:db8:2::/64. Host i
// (1-based) is .1i / ::1i (for example 192.0.2.11); addresses from .100 up
// are left free for virtual addresses (see [Lab.VIP4] and [Lab.VIP6]).
//
// Every name the lab creates starts with "nlb" and a random suffix, so
// concurrently running test binaries never collide, and every interface is
// created directly inside a lab namespace: the host's own interfaces are
// never touched. [Lab.Close] removes everything and tolerates a partially
// built lab.
//
// Privileged tests start with [Require], which skips without root unless
// NLB_PRIVILEGED=1 asks for a failure instead.
package netlab
