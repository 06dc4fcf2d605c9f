//go:build ignore

/*
 * nlb's XDP load balancer: TCP to a configured VIP:port, IPv4 and IPv6, is
 * sent to a backend by direct server return at layer 2 (the IPVS "DR" /
 * "gatewaying" method, keepalived's lb_kind DR): only the Ethernet
 * addresses are rewritten (destination: the backend's MAC, source: ours) and
 * the frame leaves through the interface it came in on (XDP_TX). The IP
 * packet is untouched, so no checksum changes; the backend holds the VIP on
 * a non-ARPing device and answers the client directly.
 *
 * A backend is chosen by, in order:
 *   1. the flow table (nlb_flows): 5-tuple -> backend slot, for any packet
 *      but a SYN;
 *   2. else the service's Maglev lookup table (Eisenbud et al., NSDI 2016,
 *      §3.4) indexed by jhash(flow) % M, where the flow is the 5-tuple, or
 *      the client address alone for a persistent service (IPVS
 *      persistence). The result is stored in the flow table, except for an
 *      RST. A SYN counts as a new flow, any other packet that misses as
 *      re-hashed (the table evicted it, or another node was Master when the
 *      flow began): Maglev gives the same backend as long as the service's
 *      backends are unchanged.
 *
 * The flow table is set-associative: an array of sets of FLOW_WAYS flows,
 * the set chosen by the 5-tuple's jhash, and within a set the least
 * recently used flow is replaced (each set counts its lookups; a flow
 * remembers the count at its last packet). Inserting a flow is one array
 * write: the kernel's LRU hash, which evicts by deleting from a hash table
 * under its locks, cost about 390 ns per new flow once full. The array is
 * shared by the CPUs, so a flow whose packets change CPU (veth, generic
 * XDP and tc run on the sender's) keeps its entry. Writers take no lock: a
 * flow's check word (its hash ^ backend) is written last and verified on
 * every hit, so an entry torn by two CPUs replacing the same way at once
 * reads as a miss, which Maglev answers.
 *
 * The defined behaviours (every one counted in nlb_events, except plain
 * non-VIP traffic, which is passed at the cost of a parse and one hash
 * lookup):
 *   - not IPv4/IPv6 (ARP, VLAN-tagged, ...), not TCP or ICMP, not a VIP:port:
 *     XDP_PASS, uncounted;
 *   - a truncated or malformed Ethernet/IP/TCP header (IPv4 version or IHL
 *     wrong, total length beyond the frame or below the headers, TCP data
 *     offset below 5 or beyond the frame): XDP_PASS, EV_MALFORMED; the
 *     kernel drops it and counts it in its own statistics;
 *   - IPv4 options: the header length (IHL) is honoured, the packet is
 *     balanced like any other;
 *   - IPv6 hop-by-hop and destination options headers (at most
 *     MAX_EXT_HEADERS of them) are skipped, the packet is balanced; a routing
 *     header or any other extension header: XDP_PASS, uncounted (the kernel
 *     processes it);
 *   - fragments (IPv4 MF or a fragment offset, an IPv6 fragment header) of
 *     TCP or ICMP: XDP_PASS, EV_FRAGMENT. Only the first fragment has the
 *     ports, so they cannot be balanced consistently; the local stack
 *     reassembles what is addressed to it. TCP to a VIP is sent with DF and
 *     PMTU discovery, so this does not happen in practice;
 *   - an ICMP destination unreachable (including "fragmentation needed",
 *     RFC 1191) or ICMPv6 destination unreachable / packet too big (RFC 8201)
 *     whose quoted packet is TCP from a VIP:port: sent to the backend that
 *     owns the quoted flow (the flow table for the reversed tuple, else
 *     Maglev; nothing is inserted nor counted as new or re-hashed),
 *     EV_ICMP_FORWARDED. Without this the backend, which sent the packet,
 *     would never learn the path MTU. Other ICMP: XDP_PASS;
 *   - VIP traffic while not the VRRP Master (nlb_config.master == 0), from a
 *     MAC that is not guarded: EV_BACKUP, and forwarded by the same tables
 *     as the Master would. Only a client whose ARP entry still names this
 *     node sends it (after a VIP move, or when two Backups take over at once
 *     and the later gratuitous ARP falls in the client's ARP locktime);
 *     passed to the local stack, which holds the VIP as a real server, it
 *     would be answered with RSTs for every flow of another backend. Before
 *     our MAC is set (a program just loaded): XDP_PASS;
 *   - VIP traffic whose source MAC is in nlb_guard (every backend's MAC and
 *     any other given): XDP_PASS, EV_LOOP_GUARD. Such a frame was already
 *     forwarded by a load balancer, or is a backend talking to the VIP
 *     itself: it is never forwarded again, so even two Masters (a split
 *     brain) cannot bounce a frame between them;
 *   - the chosen backend is this node (BE_F_LOCAL): XDP_PASS, EV_LOCAL;
 *   - no usable backend (empty table, inactive slot): XDP_PASS,
 *     EV_NO_BACKEND.
 */

#include "common.h"
#include "bpf_endian.h"

char __license[] SEC("license") = "Dual MIT/GPL";

/* include/uapi/linux/bpf.h bits that common.h does not have. */

/* include/uapi/linux/bpf.h: the context of an XDP program. */
struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

/* include/uapi/linux/bpf.h: enum xdp_action. */
enum xdp_action {
	XDP_ABORTED = 0,
	XDP_DROP,
	XDP_PASS,
	XDP_TX,
	XDP_REDIRECT,
};

/* include/uapi/linux/if_ether.h, in.h, ip.h, icmp.h, icmpv6.h */
#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_ICMP 1
#define IPPROTO_ICMPV6 58
#define IPPROTO_HOPOPTS 0
#define IPPROTO_FRAGMENT 44
#define IPPROTO_DSTOPTS 60
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF
#define ICMP_DEST_UNREACH 3
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PKT_TOOBIG 2
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10

/* Extension headers skipped before TCP or ICMPv6. */
#define MAX_EXT_HEADERS 4

/* Set by the loader before loading (Options in xdplb_linux.go). */
volatile const __u32 max_table = 16381;  /* M: entries per Maglev table half */
volatile const __u32 max_backends = 128; /* backend slots per service */
volatile const __u32 flow_sets = 32768;  /* sets in nlb_flows */

/* Families in keys (not AF_*: the Go side fills them). */
#define FAMILY_IPV4 4
#define FAMILY_IPV6 6

/* nlb_config[0]. Must match config in xdplb_linux.go. */
struct config {
	__u32 master; /* 1: VRRP Master; 0: Backup, which forwards only misdirected frames (counted) */
	__u32 seed;   /* jhash initval; the same on every node */
	__u8 mac[6];  /* our own MAC: the source of forwarded frames */
	__u16 pad;
};

/* A VIP:port. Addresses and port in network byte order; IPv4 in addr[0]. */
struct service_key {
	__u32 addr[4];
	__u16 port;
	__u8 family;
	__u8 pad;
};

#define SVC_F_PERSIST 1 /* hash the client address only */

struct service {
	__u32 id;        /* index of the service's counters, tables and backends */
	__u32 flags;     /* SVC_F_* */
	__u32 table_len; /* M of its Maglev table, 0 < table_len <= max_table, or 0 */
	__u32 half;      /* which of its two tables is in use (0 or 1) */
};

#define BE_F_ACTIVE 1
#define BE_F_LOCAL 2

/* nlb_backends[id * max_backends + i]: one slot of a service. */
struct backend {
	__u8 mac[6];
	__u8 flags; /* BE_F_*; a slot without BE_F_ACTIVE is empty */
	__u8 pad;
};

/* client -> VIP; addresses and ports in network byte order. */
struct flow_key {
	__u32 src[4];
	__u32 dst[4];
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 pad[3];
};

/* Flows per set of nlb_flows. Must match flowWays in xdplb_linux.go. */
#define FLOW_WAYS 4

/* One way of a flow set. */
struct flow {
	struct flow_key key; /* key.family 0: an empty way */
	__u32 backend;       /* global slot: id * max_backends + i */
	__u32 check;         /* the 5-tuple's hash ^ backend, written last */
	__u32 used;          /* the set's clock at the flow's last packet */
};

/* nlb_flows[hash * flow_sets >> 32]. */
struct flow_set {
	__u32 clock; /* counts the set's lookups: a flow's age is clock - used */
	struct flow way[FLOW_WAYS];
};

struct mac_key {
	__u8 addr[6];
};

struct counters {
	__u64 packets;
	__u64 bytes; /* Ethernet header + IP packet (its length fields) */
	__u64 new_flows;
	__u64 rehashed;
};

/* nlb_events. Must match the ev* constants in xdplb_linux.go. */
enum {
	EV_MALFORMED = 0,
	EV_FRAGMENT,
	EV_BACKUP,
	EV_LOOP_GUARD,
	EV_LOCAL,
	EV_NO_BACKEND,
	EV_ICMP_FORWARDED,
	EVENTS,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} nlb_config SEC(".maps");

/* Sizes of the following maps are set by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct service_key);
	__type(value, struct service);
} nlb_services SEC(".maps");

/* Two halves per service: (id * 2 + half) * max_table + hash % table_len. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16 * 2 * 16381);
	__type(key, __u32);
	__type(value, __u32); /* global backend slot */
} nlb_maglev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16 * 128);
	__type(key, __u32);
	__type(value, struct backend);
} nlb_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, struct flow_set);
} nlb_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16 * 128 + 64);
	__type(key, struct mac_key);
	__type(value, __u32);
} nlb_guard SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct counters);
} nlb_svc_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 16 * 128);
	__type(key, __u32);
	__type(value, struct counters);
} nlb_be_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EVENTS);
	__type(key, __u32);
	__type(value, __u64);
} nlb_events SEC(".maps");

struct ethhdr {
	__u8 dst[6];
	__u8 src[6];
	__be16 proto;
};

struct iphdr {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__be32 saddr;
	__be32 daddr;
};

struct ipv6hdr {
	__u8 ver_tc;
	__u8 tc_flow[3];
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u32 saddr[4];
	__u32 daddr[4];
};

struct tcphdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__u8 doff_res; /* data offset in the high nibble */
	__u8 flags;
	__be16 window;
	__u16 check;
	__be16 urg_ptr;
};

/* What the parser found: a TCP segment or an ICMP error about one. */
struct packet {
	struct flow_key key; /* client -> VIP */
	__u32 bytes;
	__u8 tcp_flags;
	__u8 icmp;
};

/* Parser results besides XDP_* verdicts: BALANCE, go on; MALFORMED, a
 * header is truncated or inconsistent (passed, and counted by the entry
 * point: for tc, only once the headers were made linear). */
#define BALANCE (-1)
#define MALFORMED (-2)

static __always_inline void event(__u32 ev) {
	__u64 *n = bpf_map_lookup_elem(&nlb_events, &ev);
	if (n)
		*n += 1; /* per-CPU: no atomic needed */
}

static __always_inline int malformed(void) {
	return MALFORMED;
}

/*
 * jhash2 of include/linux/jhash.h (Bob Jenkins' lookup3) over exactly nine
 * words: two mixes and the final. The Go twin is jhash9 in hash.go.
 */
#define JHASH_INITVAL 0xdeadbeef

static __always_inline __u32 rol32(__u32 w, __u32 s) {
	return (w << s) | (w >> (32 - s));
}

#define jhash_mix(a, b, c)                  \
	{                                   \
		a -= c; a ^= rol32(c, 4);  c += b; \
		b -= a; b ^= rol32(a, 6);  a += c; \
		c -= b; c ^= rol32(b, 8);  b += a; \
		a -= c; a ^= rol32(c, 16); c += b; \
		b -= a; b ^= rol32(a, 19); a += c; \
		c -= b; c ^= rol32(b, 4);  b += a; \
	}

#define jhash_final(a, b, c)            \
	{                               \
		c ^= b; c -= rol32(b, 14); \
		a ^= c; a -= rol32(c, 11); \
		b ^= a; b -= rol32(a, 25); \
		c ^= b; c -= rol32(b, 16); \
		a ^= c; a -= rol32(c, 4);  \
		b ^= a; b -= rol32(a, 14); \
		c ^= b; c -= rol32(b, 24); \
	}

/*
 * The hash of a flow: jhash2 over the client address (four words, each the
 * big-endian value of four address bytes; IPv4 in the first, the others 0),
 * the VIP (likewise) and client port << 16 | VIP port. A persistent service
 * hashes the client address with the rest zero. Defined on values, not on
 * memory, so that nodes of either byte order choose alike.
 */
static __always_inline __u32 flow_hash(const struct flow_key *k, __u32 persist, __u32 seed) {
	__u32 a, b, c;
	a = b = c = JHASH_INITVAL + (9 << 2) + seed;
	a += bpf_ntohl(k->src[0]);
	b += bpf_ntohl(k->src[1]);
	c += bpf_ntohl(k->src[2]);
	jhash_mix(a, b, c);
	a += bpf_ntohl(k->src[3]);
	if (!persist) {
		b += bpf_ntohl(k->dst[0]);
		c += bpf_ntohl(k->dst[1]);
	}
	jhash_mix(a, b, c);
	if (!persist) {
		a += bpf_ntohl(k->dst[2]);
		b += bpf_ntohl(k->dst[3]);
		c += ((__u32)bpf_ntohs(k->sport) << 16) | bpf_ntohs(k->dport);
	}
	jhash_final(a, b, c);
	return c;
}

/* A TCP header at l4 whose fixed part and options lie in the frame. */
static __always_inline int parse_tcp(void *l4, void *end, struct packet *p) {
	struct tcphdr *th = l4;
	if ((void *)(th + 1) > end)
		return malformed();
	__u32 doff = th->doff_res >> 4;
	if (doff < 5)
		return malformed();
	if (l4 + doff * 4 > end)
		return malformed();
	p->key.sport = th->source;
	p->key.dport = th->dest;
	p->tcp_flags = th->flags;
	return BALANCE;
}

/*
 * The quoted ports of an ICMP error: its packet was sent by a backend from
 * VIP:port to the client, so the flow is the reverse.
 */
static __always_inline int quoted_ports(void *l4, void *end, struct packet *p) {
	__be16 *ports = l4;
	if ((void *)(ports + 2) > end)
		return malformed(); /* RFC 792 and 4443 quote at least 8 bytes */
	p->key.sport = ports[1];
	p->key.dport = ports[0];
	p->icmp = 1;
	return BALANCE;
}

static __always_inline int parse_icmp4(void *l4, void *end, struct packet *p) {
	__u8 *icmp = l4;
	if ((void *)(icmp + 8) > end)
		return malformed();
	if (icmp[0] != ICMP_DEST_UNREACH)
		return XDP_PASS;
	struct iphdr *in = (void *)(icmp + 8);
	if ((void *)(in + 1) > end)
		return malformed();
	if ((in->ver_ihl >> 4) != 4)
		return malformed();
	__u32 hlen = (in->ver_ihl & 0xF) * 4;
	if (hlen < sizeof(*in))
		return malformed();
	if (in->protocol != IPPROTO_TCP || (in->frag_off & bpf_htons(IP_OFFSET)))
		return XDP_PASS;
	p->key.src[0] = in->daddr;
	p->key.dst[0] = in->saddr;
	return quoted_ports((void *)in + hlen, end, p);
}

/*
 * The parsers read headers in [data, end) and take the packet's length
 * from len: the whole frame for XDP, but for tc only the headers are
 * sure to be linear (the payload may lie in pages beyond end).
 */
static __always_inline int parse_ipv4(void *data, void *end, __u32 len, struct packet *p) {
	struct iphdr *ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > end)
		return malformed();
	if ((ip->ver_ihl >> 4) != 4)
		return malformed();
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_ICMP)
		return XDP_PASS;
	__u32 hlen = (ip->ver_ihl & 0xF) * 4;
	__u32 tot = bpf_ntohs(ip->tot_len);
	__u32 l4min = ip->protocol == IPPROTO_TCP ? sizeof(struct tcphdr) : 8;
	if (hlen < sizeof(*ip) || tot < hlen + l4min || ETH_HLEN + tot > len)
		return malformed();
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) {
		event(EV_FRAGMENT);
		return XDP_PASS;
	}
	p->key.family = FAMILY_IPV4;
	p->bytes = ETH_HLEN + tot;
	void *l4 = (void *)ip + hlen;
	if (ip->protocol == IPPROTO_ICMP)
		return parse_icmp4(l4, end, p);
	p->key.src[0] = ip->saddr;
	p->key.dst[0] = ip->daddr;
	return parse_tcp(l4, end, p);
}

static __always_inline int parse_icmp6(void *l4, void *end, struct packet *p) {
	__u8 *icmp = l4;
	if ((void *)(icmp + 8) > end)
		return malformed();
	if (icmp[0] != ICMPV6_DEST_UNREACH && icmp[0] != ICMPV6_PKT_TOOBIG)
		return XDP_PASS;
	struct ipv6hdr *in = (void *)(icmp + 8);
	if ((void *)(in + 1) > end)
		return malformed();
	if ((in->ver_tc >> 4) != 6)
		return malformed();
	if (in->nexthdr != IPPROTO_TCP)
		return XDP_PASS; /* extension headers in the quote: not ours */
	__builtin_memcpy(p->key.src, in->daddr, 16);
	__builtin_memcpy(p->key.dst, in->saddr, 16);
	return quoted_ports(in + 1, end, p);
}

static __always_inline int parse_ipv6(void *data, void *end, __u32 len, struct packet *p) {
	struct ipv6hdr *ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > end)
		return malformed();
	if ((ip->ver_tc >> 4) != 6)
		return malformed();
	__u32 plen = bpf_ntohs(ip->payload_len);
	if (ETH_HLEN + sizeof(*ip) + plen > len)
		return malformed();
	__u8 nh = ip->nexthdr;
	__u8 *l4 = (void *)(ip + 1);
#pragma unroll
	for (int i = 0; i < MAX_EXT_HEADERS; i++) {
		if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_DSTOPTS)
			break;
		if ((void *)(l4 + 8) > end)
			return malformed();
		nh = l4[0];
		l4 += (l4[1] + 1) * 8;
	}
	if (nh == IPPROTO_FRAGMENT) {
		event(EV_FRAGMENT);
		return XDP_PASS;
	}
	if (nh != IPPROTO_TCP && nh != IPPROTO_ICMPV6)
		return XDP_PASS;
	p->key.family = FAMILY_IPV6;
	p->bytes = ETH_HLEN + sizeof(*ip) + plen;
	if (nh == IPPROTO_ICMPV6)
		return parse_icmp6(l4, end, p);
	__builtin_memcpy(p->key.src, ip->saddr, 16);
	__builtin_memcpy(p->key.dst, ip->daddr, 16);
	return parse_tcp(l4, end, p);
}

static __always_inline void add(struct counters *c, __u32 bytes, __u32 is_new, __u32 rehashed) {
	c->packets += 1;
	c->bytes += bytes;
	c->new_flows += is_new;
	c->rehashed += rehashed;
}

/* same_flow compares two keys word by word, the ports first: they tell
 * apart the connections of one client. */
static __always_inline int same_flow(const struct flow_key *a, const struct flow_key *b) {
	const __u32 *x = (const void *)a, *y = (const void *)b;
	if (x[8] != y[8])
		return 0;
#pragma unroll
	for (int i = 0; i < 8; i++)
		if (x[i] != y[i])
			return 0;
	return x[9] == y[9];
}

/*
 * flow_find looks key (whose hash is h) up in set. It returns the way that
 * holds it, with its backend in *backend and 1 in *hit, or else the way to
 * replace: the first empty one, else the least recently used (a way whose
 * check fails, torn by two writers, is replaced too).
 */
static __always_inline struct flow *flow_find(struct flow_set *set, const struct flow_key *key, __u32 h,
					      __u32 *backend, int *hit) {
	struct flow *victim = &set->way[0];
	__u32 now = set->clock, oldest = 0;
	int empty = 0;
	*hit = 0;
#pragma unroll
	for (int i = 0; i < FLOW_WAYS; i++) {
		struct flow *w = &set->way[i];
		if (w->key.family == 0) {
			if (!empty)
				victim = w;
			empty = 1;
			continue;
		}
		if (same_flow(&w->key, key)) {
			__u32 be = w->backend;
			if (w->check != (h ^ be))
				return w;
			*backend = be;
			*hit = 1;
			return w;
		}
		__u32 age = now - w->used;
		if (!empty && age >= oldest) {
			oldest = age;
			victim = w;
		}
	}
	return victim;
}

/* flow_put writes key's flow into way w; the check word last. */
static __always_inline void flow_put(struct flow *w, const struct flow_key *key, __u32 h, __u32 backend, __u32 now) {
	w->check = 0;
	w->key = *key;
	w->backend = backend;
	w->used = now;
	asm volatile("" ::: "memory");
	w->check = h ^ backend;
}

/* balance decides for a parsed VIP packet; for XDP_TX it writes the new
 * destination and source MACs to macs (the entry point rewrites the
 * frame: tc must not write packet data directly, see nlb_tc_lb). */
static __always_inline int balance(struct ethhdr *eth, struct packet *p, __u8 *macs) {
	struct service_key sk;
	__builtin_memset(&sk, 0, sizeof(sk));
	__builtin_memcpy(sk.addr, p->key.dst, 16);
	sk.port = p->key.dport;
	sk.family = p->key.family;
	struct service *svc = bpf_map_lookup_elem(&nlb_services, &sk);
	if (!svc)
		return XDP_PASS;

	__u32 zero = 0;
	struct config *cfg = bpf_map_lookup_elem(&nlb_config, &zero);
	if (!cfg)
		return XDP_PASS;
	if (bpf_map_lookup_elem(&nlb_guard, eth->src)) {
		event(EV_LOOP_GUARD);
		return XDP_PASS;
	}
	if (!cfg->master) {
		event(EV_BACKUP);
		if (!(cfg->mac[0] | cfg->mac[1] | cfg->mac[2] | cfg->mac[3] | cfg->mac[4] | cfg->mac[5]))
			return XDP_PASS;
	}

	__u32 slot = 0, is_new = 0, rehashed = 0;
	struct backend *be = 0;
	/* A SYN opens a flow: Maglev chooses (an entry left by an earlier
	 * connection on the same 5-tuple is replaced). A retransmitted SYN is
	 * chosen the same way while the table is unchanged, and nothing is
	 * established before the handshake. */
	int syn = !p->icmp && (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
	__u32 fh = flow_hash(&p->key, 0, cfg->seed);
	__u32 si = ((__u64)fh * flow_sets) >> 32;
	struct flow_set *set = bpf_map_lookup_elem(&nlb_flows, &si);
	struct flow *way = 0;
	__u32 now = 0;
	if (set) {
		int hit;
		now = set->clock + 1;
		set->clock = now;
		way = flow_find(set, &p->key, fh, &slot, &hit);
		if (hit && !syn) {
			be = bpf_map_lookup_elem(&nlb_backends, &slot);
			/* The backend was removed, or the slot is another
			 * service's (this VIP:port was deleted and added
			 * again): choose again. */
			if (be && (!(be->flags & BE_F_ACTIVE) || slot - svc->id * max_backends >= max_backends))
				be = 0;
			if (be)
				way->used = now;
		}
	}
	if (!be) {
		__u32 len = svc->table_len;
		if (len == 0) {
			event(EV_NO_BACKEND);
			return XDP_PASS;
		}
		__u32 h = svc->flags & SVC_F_PERSIST ? flow_hash(&p->key, 1, cfg->seed) : fh;
		__u32 idx = (svc->id * 2 + (svc->half & 1)) * max_table + h % len;
		__u32 *s = bpf_map_lookup_elem(&nlb_maglev, &idx);
		if (!s) {
			event(EV_NO_BACKEND);
			return XDP_PASS;
		}
		slot = *s;
		be = bpf_map_lookup_elem(&nlb_backends, &slot);
		if (!be || !(be->flags & BE_F_ACTIVE)) {
			event(EV_NO_BACKEND);
			return XDP_PASS;
		}
		if (!p->icmp) {
			if (syn)
				is_new = 1;
			else
				rehashed = 1;
			if (way && !(p->tcp_flags & TCP_FLAG_RST))
				flow_put(way, &p->key, fh, slot, now);
		}
	}

	__u32 id = svc->id;
	struct counters *c = bpf_map_lookup_elem(&nlb_svc_stats, &id);
	if (c)
		add(c, p->bytes, is_new, rehashed);
	c = bpf_map_lookup_elem(&nlb_be_stats, &slot);
	if (c)
		add(c, p->bytes, is_new, rehashed);

	if (be->flags & BE_F_LOCAL) {
		event(EV_LOCAL);
		return XDP_PASS;
	}
	__builtin_memcpy(macs, be->mac, 6);
	__builtin_memcpy(macs + 6, cfg->mac, 6);
	if (p->icmp)
		event(EV_ICMP_FORWARDED);
	return XDP_TX;
}

/* verdict parses the frame of len bytes whose headers lie in [data, end)
 * and decides, as XDP verdicts: XDP_TX (to be forwarded with the MACs
 * written to macs), XDP_PASS, or MALFORMED. Both entry points use it. */
static __always_inline int verdict(void *data, void *end, __u32 len, __u8 *macs) {
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_PASS;

	struct packet p;
	__builtin_memset(&p, 0, sizeof(p));
	int ret;
	if (eth->proto == bpf_htons(ETH_P_IP))
		ret = parse_ipv4(data, end, len, &p);
	else if (eth->proto == bpf_htons(ETH_P_IPV6))
		ret = parse_ipv6(data, end, len, &p);
	else
		return XDP_PASS;
	if (ret != BALANCE)
		return ret;
	return balance(eth, &p, macs);
}

SEC("xdp")
int nlb_xdp_lb(struct xdp_md *ctx) {
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 macs[12];
	int v = verdict(data, end, end - data, macs);
	if (v == MALFORMED) {
		event(EV_MALFORMED);
		return XDP_PASS;
	}
	if (v == XDP_TX) {
		struct ethhdr *eth = data;
		if ((void *)(eth + 1) > end)
			return XDP_PASS;
		__builtin_memcpy(eth->dst, macs, 6);
		__builtin_memcpy(eth->src, macs + 6, 6);
	}
	return v;
}

/*
 * The same load balancer as a tcx ingress program (BPF_PROG_TYPE_SCHED_CLS,
 * Linux 6.6), for an interface whose XDP hook another program already
 * holds (a CNI's prefilter): the parse and the choice are the XDP
 * program's; XDP_TX becomes a redirect to the egress of the interface the
 * packet came in on, XDP_PASS becomes TCX_NEXT (the next tcx program, or
 * the stack). It runs after the kernel built the skb, so it costs more per
 * packet than XDP.
 */

/* include/uapi/linux/bpf.h: the start of the context of a tc program (the
 * verifier rewrites accesses by offset; only these fields are read). */
struct __sk_buff {
	__u32 len;
	__u32 pkt_type;
	__u32 mark;
	__u32 queue_mapping;
	__u32 protocol;
	__u32 vlan_present;
	__u32 vlan_tci;
	__u32 vlan_proto;
	__u32 priority;
	__u32 ingress_ifindex;
	__u32 ifindex;
	__u32 tc_index;
	__u32 cb[5];
	__u32 hash;
	__u32 tc_classid;
	__u32 data;
	__u32 data_end;
};

/* include/uapi/linux/bpf.h: enum tcx_action_base. */
#define TCX_NEXT -1

/* Bytes made linear when the headers are not (an IPv6 extension header,
 * TCP options or an ICMP error's quote beyond the skb's linear part):
 * Ethernet, IPv6 with extension headers, TCP with options, or a quote. */
#define TC_PULL 256

/*
 * The packet is read where it lies: the headers of a frame the stack
 * built, or a driver received, are in the skb's linear part, and are made
 * so (bpf_skb_pull_data) only when the parse finds them cut off there. The
 * program never writes packet data directly, since then the kernel would
 * make every packet's head writable before the program runs, and for the
 * clones TCP sends (it keeps the original for retransmission) that is a
 * copy of the head, for VIP traffic or not; the MACs of a forwarded frame
 * are written with bpf_skb_store_bytes, which copies only that frame's.
 */
SEC("tc")
int nlb_tc_lb(struct __sk_buff *skb) {
	__u8 macs[12];
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	int v = verdict(data, end, skb->len, macs);
	if (v == MALFORMED && (__u32)(end - data) < skb->len) {
		__u32 pull = skb->len < TC_PULL ? skb->len : TC_PULL;
		if (bpf_skb_pull_data(skb, pull) < 0)
			return TCX_NEXT;
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
		v = verdict(data, end, skb->len, macs);
	}
	if (v == MALFORMED) {
		event(EV_MALFORMED);
		return TCX_NEXT;
	}
	if (v != XDP_TX)
		return TCX_NEXT;
	if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0)
		return TCX_NEXT;
	return bpf_redirect(skb->ifindex, 0);
}
