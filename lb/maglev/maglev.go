package maglev

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// DefaultSize is the table size [New] uses when given 0: the prime 16381,
// Cilium's default. It keeps the paper's M > 100·N (§3.4) up to 163
// backends, far above the 3 to 7 API servers of a control plane, and gives
// a 7-backend table 2340 or 2341 entries per backend (a max/min ratio of
// 1.0004); as uint32 values it is 64 KiB of BPF map per service, built
// in about 0.3 ms for 7 backends (BenchmarkNew; [Table.Entries] with one
// down about 0.45 ms). 65537 (Katran's and Envoy's size) would cost
// 256 KiB and 1.2 ms for no better balance at this N; see [Sizes].
const DefaultSize = 16381

// NoBackend is the entry of a table in which no backend is healthy: an
// index no backend has. The data path compares the entry with the number of
// backends anyway (the BPF verifier asks for it) and passes such packets on.
const NoBackend = ^uint32(0)

// MaxKeyLen bounds a backend key's length in bytes.
const MaxKeyLen = 512

// Seed is the fixed prefix hashed before every backend key (the package
// documentation's "Determinism"). It is versioned: a change of the hashing
// or of the population must change it, so that nodes running different
// versions are known to build different tables.
const Seed = "nlb/maglev/v1\x00"

// Errors of [New], for errors.Is.
var (
	// ErrNoBackends: the backend list is empty.
	ErrNoBackends = errors.New("maglev: no backends")
	// ErrSize: the table size is not one of [Sizes].
	ErrSize = errors.New("maglev: table size not supported")
	// ErrTooManyBackends: more backends than [MaxBackends] allows for the size.
	ErrTooManyBackends = errors.New("maglev: too many backends for the table size")
	// ErrKey: a backend key is empty, too long or listed twice.
	ErrKey = errors.New("maglev: bad backend key")
)

// maxProblems bounds the problems one [New] error reports.
const maxProblems = 8

// Sizes returns the table sizes [New] accepts, ascending: Cilium's list of
// primes just below powers of two (251 ... 131071) and 65537, the size
// Katran and Envoy use. Each is prime, as the permutations need (§3.4:
// with M prime every skip in [1, M−1] is coprime with M, so each
// backend's preference list visits every slot once). The paper asks for
// M > 100·N for balance within 1 % ([MaxBackends]); the table costs 4·M
// bytes of BPF map as uint32 indices.
func Sizes() []int {
	return []int{251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 65537, 131071}
}

// MaxBackends is the largest number of backends a table of the given size
// takes: the largest N with size > 100·N (§3.4), which bounds the
// imbalance to 1 % (each backend has ⌊M/N⌋ or ⌈M/N⌉ entries).
func MaxBackends(size int) int {
	return (size - 1) / 100
}

// perm is one backend's preference list, the paper's
// permutation[i][j] = (offset + j·skip) mod M (§3.4), with the inverse of
// skip modulo M to find a slot's position in the list.
type perm struct {
	offset, skip, inv uint64
	h3                uint64 // the third hash word, for deep fallbacks
}

// pos returns the position j of slot s in the list: the j with
// (offset + j·skip) mod M = s, that is (s − offset)·skip⁻¹ mod M.
func (p perm) pos(s, m uint64) uint64 {
	return (s + m - p.offset) % m * p.inv % m
}

// Table is a Maglev lookup table for one backend set: the paper's table
// for the whole set (§3.4, Pseudocode 1) and, for a set of unhealthy
// backends, [Table.Entries] that refill only their slots. It is immutable
// and safe for concurrent use.
type Table struct {
	m        uint64
	backends []string // sorted; entries index into it
	perms    []perm
	full     []uint32 // the population of the whole set
}

// New builds the table of the given backends, identified by stable keys
// such as "192.0.2.11:6443", for a table of size entries (0 means
// [DefaultSize]). The keys are sorted first, so the order given does not
// matter: every node that discovers the same set builds the same table.
// An empty list, a size not in [Sizes], more than [MaxBackends] keys, and
// an empty, over-long ([MaxKeyLen]) or repeated key are errors.
func New(backends []string, size int) (*Table, error) {
	if size == 0 {
		size = DefaultSize
	}
	var problems []error
	add := func(err error) {
		if len(problems) < maxProblems {
			problems = append(problems, err)
		}
	}
	sizeOK := slices.Contains(Sizes(), size)
	if !sizeOK {
		add(fmt.Errorf("%w: %d (one of %v)", ErrSize, size, Sizes()))
	}
	if len(backends) == 0 {
		add(ErrNoBackends)
	} else if limit := MaxBackends(size); sizeOK && len(backends) > limit {
		add(fmt.Errorf("%w: %d backends, at most %d for size %d (the paper's M > 100·N)", ErrTooManyBackends, len(backends), limit, size))
	}
	keys := slices.Clone(backends)
	slices.Sort(keys)
	for i, k := range keys {
		switch {
		case k == "":
			if i == 0 {
				add(fmt.Errorf("%w: empty key", ErrKey))
			}
		case len(k) > MaxKeyLen:
			add(fmt.Errorf("%w: %q... is %d bytes, at most %d", ErrKey, k[:32], len(k), MaxKeyLen))
		}
		if i > 0 && k == keys[i-1] && (i < 2 || keys[i-2] != k) {
			add(fmt.Errorf("%w: %q listed more than once", ErrKey, k))
		}
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	m := uint64(size)
	t := &Table{m: m, backends: keys, perms: make([]perm, len(keys)), full: make([]uint32, size)}
	for i, k := range keys {
		t.perms[i] = permutation(k, m)
	}
	populate(t.full, t.perms, m)
	return t, nil
}

// permutation returns the preference list of the backend key in a table of
// size m: offset = h1 mod M, skip = h2 mod (M−1) + 1 (§3.4), where h1 and
// h2 are the first and second big-endian 64-bit words of
// SHA-256(Seed ‖ key): two independent hashes with a fixed seed, the same
// on every node and architecture.
func permutation(key string, m uint64) perm {
	d := sha256.Sum256([]byte(Seed + key))
	h1 := binary.BigEndian.Uint64(d[0:8])
	h2 := binary.BigEndian.Uint64(d[8:16])
	p := perm{offset: h1 % m, skip: h2%(m-1) + 1, h3: binary.BigEndian.Uint64(d[16:24])}
	p.inv = powmod(p.skip, m-2, m) // Fermat: skip^(M−2) = skip⁻¹ mod a prime M
	return p
}

// powmod returns b^e mod m for m < 2³².
func powmod(b, e, m uint64) uint64 {
	r := uint64(1)
	b %= m
	for ; e > 0; e >>= 1 {
		if e&1 == 1 {
			r = r * b % m
		}
		b = b * b % m
	}
	return r
}

// populate fills entry (of length m) with the paper's Pseudocode 1 (§3.4):
// the backends take turns, in index order, each claiming the next slot of
// its preference list that is still empty, until the table is full. Each
// backend claims one slot per round, so each ends with ⌊M/N⌋ or ⌈M/N⌉
// slots. The loops are bounded: a preference list visits every slot, so a
// backend always finds an empty one while the table is not full.
func populate(entry []uint32, perms []perm, m uint64) {
	for i := range entry {
		entry[i] = NoBackend
	}
	cur := make([]uint64, len(perms)) // the slot at next[i] in the paper
	for i, p := range perms {
		cur[i] = p.offset
	}
	filled := uint64(0)
	for {
		for i, p := range perms {
			c := cur[i]
			for entry[c] != NoBackend {
				c += p.skip
				if c >= m {
					c -= m
				}
			}
			entry[c] = uint32(i)
			cur[i] = c
			filled++
			if filled == m {
				return
			}
		}
	}
}

// Size returns the number of entries, M.
func (t *Table) Size() int { return int(t.m) }

// Backends returns the backend keys, sorted: the entries of the table are
// indices into this list (the order of the data path's backend array).
func (t *Table) Backends() []string { return slices.Clone(t.backends) }

// Index returns the index of the backend key in [Table.Backends].
func (t *Table) Index(key string) (int, bool) {
	return slices.BinarySearch(t.backends, key)
}

// String describes the table for logs.
func (t *Table) String() string {
	return fmt.Sprintf("maglev(M=%d, %s)", t.m, strings.Join(t.backends, ","))
}

// Entries is a lookup table: M backend indices (into [Table.Backends]), or
// [NoBackend] in every entry when no backend is healthy. The data path
// picks entries[hash(flow) mod M] (§3.4), the flow's hash being of the
// 5-tuple, or of the source address alone where persistence is asked for.
type Entries []uint32

// Lookup returns the backend index of the entry for a flow's hash, and
// false when there is none (an empty table or [NoBackend]).
func (e Entries) Lookup(hash uint64) (int, bool) {
	if len(e) == 0 {
		return -1, false
	}
	i := e[hash%uint64(len(e))]
	if i == NoBackend || int(i) < 0 { // the second on 32-bit only
		return -1, false
	}
	return int(i), true
}

// Count returns the number of entries of each of n backends; entries of
// no backend among them ([NoBackend]) are not counted.
func (e Entries) Count(n int) []int {
	c := make([]int, n)
	for _, i := range e {
		if uint64(i) < uint64(n) { // not int(i): NoBackend is −1 on 32-bit
			c[i]++
		}
	}
	return c
}
