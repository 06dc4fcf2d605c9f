package lb

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// backend is one upstream address and everything the proxy knows about it.
// Counters are atomics so that the data path never takes a lock.
type backend struct {
	addr string
	// ap is addr parsed when it is an IP literal without a zone: the
	// event loops connect to it themselves. Invalid for host names,
	// which are dialled through Go (and its resolver).
	ap netip.AddrPort

	healthy atomic.Bool // result of active checks after rise/fall
	// suspectSince is the UnixNano of the last failed dial, 0 when not
	// suspect. A passing active check clears it; without active checks it
	// expires after one check interval.
	suspectSince atomic.Int64
	removed      atomic.Bool
	// drainGen changes whenever a drain starts or is cancelled, so that a
	// drain goroutine notices it is stale.
	drainGen atomic.Uint64
	draining atomic.Bool

	active       atomic.Int64
	total        atomic.Uint64
	bytesIn      atomic.Uint64 // client → backend
	bytesOut     atomic.Uint64 // backend → client
	dialFailures atomic.Uint64
	checksOK     atomic.Uint64
	checksFailed atomic.Uint64

	mu         sync.Mutex
	stopChecks context.CancelFunc // nil when no checker runs
	th         threshold          // guarded by mu
}

func newBackend(addr string, rise, fall int) *backend {
	b := &backend{addr: addr, th: threshold{rise: rise, fall: fall, healthy: true}}
	if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Addr().Zone() == "" {
		b.ap = ap
	}
	// A new backend is presumed healthy: the proxy works at once, a dead
	// one is caught by the first failed dial (suspect) and then by the
	// checks, and a refused dial is retried on the next backend anyway.
	b.healthy.Store(true)
	return b
}

// suspect reports whether a recent dial failed and no check has passed since.
func (b *backend) suspect(now time.Time, expiry time.Duration) bool {
	s := b.suspectSince.Load()
	if s == 0 {
		return false
	}
	if expiry > 0 && now.UnixNano()-s > int64(expiry) {
		return false
	}
	return true
}

// eligible reports whether b may take new connections in normal operation.
func (b *backend) eligible(now time.Time, suspectExpiry time.Duration) bool {
	return !b.removed.Load() && b.healthy.Load() && !b.suspect(now, suspectExpiry)
}

// backendSet is an immutable snapshot of the configured backends, swapped
// atomically as a whole.
type backendSet struct {
	list []*backend
}
