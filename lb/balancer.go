package lb

import (
	"fmt"
	"sync/atomic"
)

// Policy names a balancing algorithm. The names are lowerCamelCase, as
// k0s's and Kubernetes' enumerations are spelled; there is no other
// spelling.
type Policy string

const (
	// RoundRobin hands each new connection to the next backend in turn, as
	// the k0s CPLB proxy does, but with an atomic counter so that concurrent
	// accepts neither race nor skew the rotation.
	RoundRobin Policy = "roundRobin"
	// LeastConnections picks two random candidates and takes the one with
	// fewer active connections (power of two choices, like Envoy's
	// LEAST_REQUEST with choice_count 2).
	LeastConnections Policy = "leastConnections"
)

// valid reports whether p names a known policy.
func (p Policy) valid() bool { return p == RoundRobin || p == LeastConnections }

// balancer picks candidates by index. It knows nothing about sockets: the
// caller describes the candidates with n, a skip predicate (already tried or
// not eligible) and a load function (active connections), which keeps it
// table-testable over plain slices.
type balancer struct {
	policy Policy
	next   atomic.Uint64
	// rand returns a pseudo-random integer in [0, n). It is a field so that
	// tests can make leastConnections deterministic.
	rand func(n int) int
}

func newBalancer(p Policy, rand func(n int) int) (*balancer, error) {
	if !p.valid() {
		return nil, fmt.Errorf("lb: unknown balancing policy %q", p)
	}
	return &balancer{policy: p, rand: rand}, nil
}

// first chooses the backend for a new connection, or returns -1 when every
// candidate is skipped.
func (b *balancer) first(n int, skip func(int) bool, load func(int) int64) int {
	if n <= 0 {
		return -1
	}
	switch b.policy {
	case LeastConnections:
		return b.twoChoices(n, skip, load)
	default:
		start := int((b.next.Add(1) - 1) % uint64(n))
		return scanFrom(start, n, skip)
	}
}

// retry chooses the backend to try after prev failed, or returns -1 when
// every candidate is skipped. Round robin moves on to the next backend in
// ring order; leastConnections takes the least loaded remaining one.
func (b *balancer) retry(prev, n int, skip func(int) bool, load func(int) int64) int {
	if n <= 0 {
		return -1
	}
	if b.policy == LeastConnections {
		return leastLoaded(n, skip, load)
	}
	return scanFrom((prev+1)%n, n, skip)
}

func scanFrom(start, n int, skip func(int) bool) int {
	for k := 0; k < n; k++ {
		if i := (start + k) % n; !skip(i) {
			return i
		}
	}
	return -1
}

func leastLoaded(n int, skip func(int) bool, load func(int) int64) int {
	best := -1
	var bestLoad int64
	for i := 0; i < n; i++ {
		if skip(i) {
			continue
		}
		if l := load(i); best < 0 || l < bestLoad {
			best, bestLoad = i, l
		}
	}
	return best
}

// twoChoices samples two distinct usable candidates and keeps the less
// loaded; with fewer than two usable candidates it degrades to a scan.
func (b *balancer) twoChoices(n int, skip func(int) bool, load func(int) int64) int {
	usable := 0
	for i := 0; i < n; i++ {
		if !skip(i) {
			usable++
		}
	}
	switch usable {
	case 0:
		return -1
	case 1:
		return scanFrom(0, n, skip)
	}
	x := b.rand(usable)
	y := b.rand(usable - 1)
	if y >= x {
		y++
	}
	i, j := nthUsable(x, n, skip), nthUsable(y, n, skip)
	if load(j) < load(i) {
		return j
	}
	return i
}

// nthUsable returns the index of the k-th (0-based) candidate not skipped.
func nthUsable(k, n int, skip func(int) bool) int {
	for i := 0; i < n; i++ {
		if skip(i) {
			continue
		}
		if k == 0 {
			return i
		}
		k--
	}
	return -1
}

// threshold applies rise/fall hysteresis to health check results: a healthy
// backend turns unhealthy after fall consecutive failures, an unhealthy one
// turns healthy after rise consecutive successes.
type threshold struct {
	rise, fall int
	healthy    bool
	run        int // consecutive results contradicting the current state
}

// observe records one check result and reports whether the state changed.
func (t *threshold) observe(ok bool) bool {
	if ok == t.healthy {
		t.run = 0
		return false
	}
	t.run++
	need := t.fall
	if !t.healthy {
		need = t.rise
	}
	if t.run < need {
		return false
	}
	t.healthy, t.run = ok, 0
	return true
}
