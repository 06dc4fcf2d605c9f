package maglev

import (
	"math/bits"
	"slices"
)

// balancedDepth is the number of fallback ranks [Table.Entries] fills with
// a balanced (Maglev) population; deeper ranks, needed only when more than
// balancedDepth of one slot's first choices are unhealthy, follow
// rendezvous hashing. It bounds the work to about balancedDepth·N·M·log M
// however many backends are down (231 ms for 162 of 163 down, M = 16381,
// against 9.5 s without the bound), and deeper balanced ranks measured no
// better balance.
const balancedDepth = 3

// Entries returns the lookup table with the backends for which healthy
// returns false taken out (healthy is called once per backend, in the
// order of [Table.Backends]; nil means all healthy; with none healthy
// every entry is [NoBackend]). Only the unhealthy backends' slots change:
// each slot has a fixed order of preference over all backends, which does
// not depend on health, and gets the first healthy backend in it. So two nodes
// that disagree about one backend's health differ in the slots that
// backend holds on the node that thinks it healthy, and in no other slot;
// no table that drops the backend can differ in fewer.
//
// The order of slot s: first its owner in the paper's table of the whole
// set (§3.4, Pseudocode 1); then, among the slots S of one owner X, the
// other backends run the same population restricted to S (each backend's
// preference list filtered to S, turns in index order from a start chosen
// by a hash of the choices before: here X), which gives each slot of S its second choice and each
// backend ⌊|S|/(N−1)⌋ or ⌈|S|/(N−1)⌉ of them; the slots of X whose second
// choice is Y are divided among the rest in the same way for the third
// choice, and so on for balancedDepth (3) ranks. Deeper ranks, reached
// only when a slot's first four choices are all down, follow rendezvous
// hashing (the highest of a hash of slot and backend). So the table stays
// balanced with backends down: with one of N down, every other backend
// holds its ⌊M/N⌋ or ⌈M/N⌉ slots plus ⌊|S|/(N−1)⌋ or ⌈|S|/(N−1)⌉ of the
// slots S it left; the tests bound the imbalance for more.
//
// Why not rebuild the table with the healthy backends, as the paper does
// when the set changes: the population is then run again, and because
// every backend's turn comes at a different point, some slots move between
// backends that both stayed (the paper's "minimal disruption" is not zero;
// the tests measure it). Two nodes that disagree about one backend's
// health would then also send some flows of the backends they agree on to
// different places. The discovered set, which every node sees the same, is
// the input of [New]; health, which nodes may see differently for a
// while, only ever takes slots away from the backends it concerns.
func (t *Table) Entries(healthy func(key string) bool) Entries {
	out := Entries(slices.Clone(t.full))
	if healthy == nil {
		return out
	}
	n := len(t.backends)
	ok := make([]bool, n)
	up := 0
	for i, k := range t.backends {
		if healthy(k) {
			ok[i] = true
			up++
		}
	}
	switch up {
	case n:
		return out
	case 0:
		for i := range out {
			out[i] = NoBackend
		}
		return out
	}

	// Groups of slots that share the prefix of their order, all of whose
	// backends are unhealthy: first the slots of each unhealthy owner.
	type group struct {
		prefix []uint32
		slots  []uint32
	}
	owned := make([][]uint32, n)
	for s, i := range t.full {
		if !ok[i] {
			owned[i] = append(owned[i], uint32(s))
		}
	}
	var queue []group
	for i, slots := range owned {
		if len(slots) > 0 {
			queue = append(queue, group{prefix: []uint32{uint32(i)}, slots: slots})
		}
	}
	// Each group's slots leave it or go to groups one rank deeper, and a
	// prefix has at most n backends: the loop ends.
	for len(queue) > 0 {
		g := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if len(g.prefix) > balancedDepth {
			for _, s := range g.slots {
				out[s] = t.firstByScore(uint64(s), ok)
			}
			continue
		}
		// The candidates take turns in index order, starting at one chosen
		// by a hash of the prefix: the extra slot that ⌈|S|/c⌉ gives some
		// of them, and in a group smaller than the number of candidates
		// the only one, must not go to the same backends in every group.
		cands := make([]uint32, 0, 2*(n-len(g.prefix)))
		for i := range n {
			if !slices.Contains(g.prefix, uint32(i)) {
				cands = append(cands, uint32(i))
			}
		}
		h := uint64(0)
		for _, i := range g.prefix {
			h = mix64(h ^ t.perms[i].h3)
		}
		start := int(h % uint64(len(cands)))
		cands = append(cands, cands[:start]...)[start:]
		next := t.restricted(g.slots, cands)
		sub := make([][]uint32, n)
		for k, s := range g.slots {
			if c := next[k]; ok[c] {
				out[s] = c
			} else {
				sub[c] = append(sub[c], s)
			}
		}
		for c, slots := range sub {
			if len(slots) > 0 {
				queue = append(queue, group{prefix: append(slices.Clip(g.prefix), uint32(c)), slots: slots})
			}
		}
	}
	return out
}

// restricted runs the population of Pseudocode 1 (§3.4) over the given
// slots only, among the candidate backends (in their order): each claims,
// in turn, the first slot still free in its preference list filtered to
// the slots. It returns the backend of each slot, in the order of slots.
func (t *Table) restricted(slots, cands []uint32) []uint32 {
	ns := len(slots)
	// Each candidate's filtered list: the indices (into slots) of the
	// slots in the order of its preference list. A large group walks the
	// list (M steps); a small one sorts the slots by their position in it.
	lists := make([]uint64, len(cands)*ns)
	walk := uint64(ns)*uint64(bits.Len(uint(ns))) > t.m
	var index []int32
	if walk {
		index = make([]int32, t.m)
		for k := range index {
			index[k] = -1
		}
		for k, s := range slots {
			index[s] = int32(k)
		}
	}
	for ci, c := range cands {
		l := lists[ci*ns : (ci+1)*ns]
		p := t.perms[c]
		if walk {
			l = l[:0]
			for j, s := uint64(0), p.offset; j < t.m; j++ {
				if k := index[s]; k >= 0 {
					l = append(l, uint64(k))
				}
				if s += p.skip; s >= t.m {
					s -= t.m
				}
			}
			continue
		}
		for k, s := range slots {
			l[k] = p.pos(uint64(s), t.m)<<32 | uint64(k)
		}
		slices.Sort(l)
	}
	assign := make([]uint32, ns)
	for k := range assign {
		assign[k] = NoBackend
	}
	next := make([]int, len(cands))
	filled := 0
	// Bounded: each candidate's list holds every slot, so while one is free
	// the inner loop stops before the list's end.
	for {
		for ci, c := range cands {
			l := lists[ci*ns : (ci+1)*ns]
			k := l[next[ci]] & 0xffffffff
			for assign[k] != NoBackend {
				next[ci]++
				k = l[next[ci]] & 0xffffffff
			}
			assign[k] = c
			next[ci]++
			filled++
			if filled == ns {
				return assign
			}
		}
	}
}

// firstByScore returns the healthy backend with the highest score for slot
// s (rendezvous hashing): a hash of the slot and the backend's third hash
// word, independent of the preference lists, so that the slots that reach
// this rank, which the lists' population left over, are spread evenly.
// Of two equal scores the lower index wins.
func (t *Table) firstByScore(s uint64, ok []bool) uint32 {
	best, bestScore := NoBackend, uint64(0)
	for i, p := range t.perms {
		if !ok[i] {
			continue
		}
		if sc := mix64(p.h3 ^ s); best == NoBackend || sc > bestScore {
			best, bestScore = uint32(i), sc
		}
	}
	return best
}

// mix64 is SplitMix64's finalizer (Steele, Lea and Flood, "Fast Splittable
// Pseudorandom Number Generators", OOPSLA 2014): a bijection on 64 bits
// whose output bits each depend on every input bit.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
