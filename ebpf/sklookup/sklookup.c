//go:build ignore

/*
 * nlb's sk_lookup program: a TCP connection whose local address is one of
 * the virtual IPs and whose local port is the API port is handed to the
 * proxy's listening socket, without NAT, before the kernel's own socket
 * lookup would find the API server's listener on that port.
 *
 * BPF_PROG_TYPE_SK_LOOKUP runs on every TCP SYN and UDP packet whose
 * destination is local, in the network namespace the link is attached to
 * (Linux 5.9; Documentation/bpf/prog_sk_lookup.rst). The program returns
 * SK_PASS always: either with a socket assigned (the kernel delivers there)
 * or without one (the regular lookup runs, as if the program were not there).
 */

#include "common.h"

char __license[] SEC("license") = "Dual MIT/GPL";

/* Enough for every VIP of every VRRP instance of one controller. */
#define MAX_VIPS 64

/* The key of nlb_vips. Must match vipKey in sklookup_linux.go. */
struct vip_key {
	__u32 family;  /* AF_INET or AF_INET6 */
	__u32 port;    /* local port, host byte order like bpf_sk_lookup.local_port */
	__u32 addr[4]; /* local address, network byte order; IPv4 in addr[0], rest 0 */
};

/* The VIPs and the port to steer. The value is unused (set to 1). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_VIPS);
	__type(key, struct vip_key);
	__type(value, __u32);
} nlb_vips SEC(".maps");

/*
 * The proxy's listening sockets: slot 0 for an AF_INET listener, slot 1 for
 * an AF_INET6 one. An IPv4 lookup uses slot 0 and, when it is empty, the
 * IPv6 listener of slot 1, which the kernel accepts for IPv4 unless it is
 * IPV6_V6ONLY (bpf_sk_lookup_assign in net/core/filter.c returns
 * -EAFNOSUPPORT then). Go's ":6444" listener is such a dual-stack socket.
 */
enum { SLOT_V4 = 0, SLOT_V6 = 1, SLOTS = 2 };

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} nlb_listeners SEC(".maps");

/* Counters, per CPU. Must match the stat* constants in sklookup_linux.go. */
enum { STAT_STEERED = 0, STAT_NO_LISTENER = 1, STAT_ASSIGN_FAILED = 2, STATS = 3 };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STATS);
	__type(key, __u32);
	__type(value, __u64);
} nlb_stats SEC(".maps");

static __always_inline void count(__u32 stat) {
	__u64 *n = bpf_map_lookup_elem(&nlb_stats, &stat);
	if (n)
		*n += 1; /* per-CPU: no atomic needed */
}

SEC("sk_lookup")
int nlb_sk_lookup(struct bpf_sk_lookup *ctx) {
	struct vip_key key;
	__builtin_memset(&key, 0, sizeof(key));

	if (ctx->protocol != IPPROTO_TCP)
		return SK_PASS;

	key.family = ctx->family;
	key.port   = ctx->local_port;
	if (key.family == AF_INET) {
		key.addr[0] = ctx->local_ip4;
	} else if (key.family == AF_INET6) {
		key.addr[0] = ctx->local_ip6[0];
		key.addr[1] = ctx->local_ip6[1];
		key.addr[2] = ctx->local_ip6[2];
		key.addr[3] = ctx->local_ip6[3];
	} else {
		return SK_PASS;
	}
	if (!bpf_map_lookup_elem(&nlb_vips, &key))
		return SK_PASS;

	__u32 slot = key.family == AF_INET ? SLOT_V4 : SLOT_V6;
	struct bpf_sock *sk = bpf_map_lookup_elem(&nlb_listeners, &slot);
	if (!sk && key.family == AF_INET) {
		slot = SLOT_V6;
		sk = bpf_map_lookup_elem(&nlb_listeners, &slot);
	}
	if (!sk) {
		/* The proxy is not listening (yet, or any more): the regular
		 * lookup finds the API server itself, as without nlb. */
		count(STAT_NO_LISTENER);
		return SK_PASS;
	}
	long err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	count(err == 0 ? STAT_STEERED : STAT_ASSIGN_FAILED);
	return SK_PASS;
}
