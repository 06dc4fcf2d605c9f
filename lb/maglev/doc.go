// Package maglev builds Maglev lookup tables: the consistent hashing of
// Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
// Balancer", NSDI 2016, §3.4, for nlb's XDP fast path, which stands in for
// keepalived's IPVS virtual servers. It is pure Go (standard library only)
// and does no I/O.
//
// Typical use, on every node, from the discovered backend set:
//
//	t, err := maglev.New([]string{"192.0.2.11:6443", "192.0.2.12:6443", "192.0.2.13:6443"}, maglev.DefaultSize)
//	entries := t.Entries(func(key string) bool { return healthy[key] })
//	// write t.Backends() to the backend array and entries to the table map;
//	// the data path picks entries[hash(flow) % M].
//
// # The data path
//
// As in the paper (§3.3), the XDP program looks a flow up in its flow
// (connection tracking) table first and only a new flow, or one the table
// lost, goes to the Maglev table: entry hash(flow) mod M, an index into
// [Table.Backends]. The hash (ebpf/xdplb's FlowHash, not this package's)
// is of the addresses and ports, or of the client address alone where
// persistence is asked for (k0s's persistence_timeout 360).
// [NoBackend] in an entry (no backend is healthy) means "no backend": the
// program passes the packet on.
//
// # The table (§3.4)
//
// Each backend i has a preference list over the M slots,
// permutation[i][j] = (offset + j·skip) mod M with offset = h1 mod M and
// skip = h2 mod (M−1) + 1. M is prime, so every skip is coprime with M and
// the list visits each slot once. The backends take turns, in the order of
// their sorted keys, each claiming the next free slot of its list, until
// the table is full (Pseudocode 1). Each backend therefore holds ⌊M/N⌋ or
// ⌈M/N⌉ slots: with M > 100·N ([MaxBackends]) the imbalance is under 1 %.
// M is one of [Sizes]; [DefaultSize] is 16381 (why: its comment).
//
// Minimal disruption (§3.4, measured in §5.3): when a backend leaves the
// set and the table is rebuilt, its slots go to the others and only a few
// other slots move between backends that stayed. The paper gives no closed
// bound; the tests measure it for N = 2..16 and hold it to 1 % of M at
// M = 16381 and 65537 (at most 0.81 % measured, 132 of 16381 slots).
//
// # Determinism
//
// The table depends only on the set of keys and M: [New] sorts the keys,
// and the hashes are fixed. h1, h2 and h3 are the first three big-endian
// 64-bit words of SHA-256([Seed] ‖ key): two (three) independent hashes
// with a fixed seed, defined byte by byte, so the same on every node and
// architecture (a golden test pins the tables; it passes on amd64, 386
// and ARMv7 under qemu).
// SHA-256 rather than FNV-1a because keys of a set differ in a byte or two
// ("192.0.2.11:6443", "192.0.2.12:6443"), which FNV mixes poorly, and
// hash/maphash has no fixed seed; the cost, N hashes per build, is nothing.
// A change of the scheme must change [Seed].
//
// # Health
//
// The table is built from the discovered set, the same on every node;
// health, which nodes may see differently for a while, only takes slots
// away from the backends it concerns ([Table.Entries]): each slot has a
// fixed order of preference over all backends and gets the first healthy
// one. Nodes that disagree about one backend's health differ only in that
// backend's slots, so they send only its flows to different places.
package maglev
