/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The few kernel UAPI definitions nlb's BPF programs use, so that they build
 * with nothing but clang and the libbpf headers beside this file (no kernel
 * headers, no multiarch include paths). Values and layouts are copied from
 * include/uapi/linux/bpf.h, include/linux/socket.h and include/uapi/linux/in.h
 * and are part of the stable kernel ABI.
 */
#pragma once

typedef unsigned char __u8;
typedef short int __s16;
typedef short unsigned int __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long int __s64;
typedef long long unsigned int __u64;
typedef __u16 __le16;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u64 __be64;
typedef __u32 __wsum;

#include "bpf_helpers.h"

/* include/uapi/linux/bpf.h: enum bpf_map_type (the ones used). */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH         = 1,
	BPF_MAP_TYPE_ARRAY        = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_SOCKMAP      = 15,
	BPF_MAP_TYPE_SOCKHASH     = 18,
};

/* include/uapi/linux/bpf.h: return codes of sk_lookup (and sk_skb) programs. */
enum sk_action {
	SK_DROP = 0,
	SK_PASS = 1,
};

/* include/uapi/linux/bpf.h: flags of bpf_sk_assign() in sk_lookup programs. */
#define BPF_SK_LOOKUP_F_REPLACE (1ULL << 0)
#define BPF_SK_LOOKUP_F_NO_REUSEPORT (1ULL << 1)

/*
 * include/uapi/linux/bpf.h: the context of a BPF_PROG_TYPE_SK_LOOKUP program
 * (Linux 5.9). Only fields up to local_port are read: ingress_ifindex came in
 * 5.17, and remote_port changed from __u32 to __be16 + padding in 5.19
 * without moving the fields after it.
 */
struct bpf_sock;
struct bpf_sk_lookup {
	union {
		struct bpf_sock *sk; /* selected socket (pointers are 64-bit in BPF) */
		__u64 cookie;        /* set by BPF_PROG_TEST_RUN (5.14) */
	};
	__u32 family;       /* AF_INET, AF_INET6 */
	__u32 protocol;     /* IPPROTO_TCP, IPPROTO_UDP */
	__u32 remote_ip4;   /* network byte order */
	__u32 remote_ip6[4];/* network byte order */
	__u32 remote_port;  /* see above */
	__u32 local_ip4;    /* network byte order */
	__u32 local_ip6[4]; /* network byte order */
	__u32 local_port;   /* host byte order */
} __attribute__((aligned(8)));

/* include/linux/socket.h */
#define AF_INET 2
#define AF_INET6 10

/* include/uapi/linux/in.h */
#define IPPROTO_TCP 6
