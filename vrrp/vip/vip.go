package vip

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// DefaultAddressLabel is the RFC 6724 label given to IPv6 virtual
// addresses when Options.AddressLabel is 0, as k0s's addressLabel default.
const DefaultAddressLabel = 10000

// reservedLabel is the kernel's "no label" value (IPV6_ADDR_LABEL_DEFAULT),
// which RTM_NEWADDRLABEL refuses.
const reservedLabel = 0xffffffff

// Options tune how the virtual addresses are configured.
type Options struct {
	// NoPrefixRoute adds every address with IFA_F_NOPREFIXROUTE, so the
	// kernel adds no prefix route for any of them. Without it nlb sets the
	// flag only on an IPv4 address that a node address's subnet already
	// covers with a shorter prefix (see the package doc).
	NoPrefixRoute bool
	// AddressLabel is the RFC 6724 §2.1 label installed for each IPv6
	// virtual address (as a /128), so that source address selection
	// prefers the node's own addresses. 0 means DefaultAddressLabel;
	// 0xffffffff is reserved by the kernel. Unused for IPv4.
	AddressLabel uint32
	// Logger receives what the Manager repairs on its own while the
	// addresses are up (a virtual address removed or displaced by
	// someone else). nil discards.
	Logger *slog.Logger
}

// Manager adds and removes one instance's virtual addresses on one
// interface. Its methods may be called repeatedly in any order and from
// any goroutine.
type Manager struct {
	ifName string
	vips   []netip.Prefix
	opts   Options
	log    *slog.Logger

	mu    sync.Mutex
	up    bool        // between a successful Add and Remove: keep the VIPs in place
	fixes []time.Time // recent placement repairs, for repairLimit
	os    osState     // the netlink sockets and the link, kept between calls
	// until is when the valid lifetime given by the last AddFor or
	// Refresh runs out; zero: no lifetime (forever).
	until time.Time
	// lapseLogged: the watcher said once that the lifetime ran out.
	lapseLogged bool
	// checks counts the watcher's re-checks (for tests: a refresh must
	// not cause one).
	checks int
}

// lapseMargin is how long before the end of their lifetime the Manager
// takes the addresses for gone: its watcher no longer puts them back, and
// Refresh refuses to restart the lifetime (the kernel removes an address
// up to 20 ms early, ADDRCONF_TIMER_FUZZ_MINUS, and a refresh of an
// expired address would create it again).
const lapseMargin = 250 * time.Millisecond

// lapsed reports whether the lifetime ran out, or is about to, at now.
// Called with m.mu held.
func (m *Manager) lapsed(now time.Time) bool {
	return !m.until.IsZero() && !now.Before(m.until.Add(-lapseMargin))
}

// setLifetime starts a lifetime of d at start (0: forever). Called with
// m.mu held.
func (m *Manager) setLifetime(start time.Time, d time.Duration) {
	m.until = time.Time{}
	if d > 0 {
		m.until = start.Add(d)
	}
	m.lapseLogged = false
}

// remaining is the valid lifetime to give an address added now, in
// seconds rounded up: the rest of the current lifetime, 0 for forever.
// Called with m.mu held.
func (m *Manager) remaining(now time.Time) uint32 {
	if m.until.IsZero() {
		return 0
	}
	return lifetimeSeconds(m.until.Sub(now))
}

// lifetimeSeconds converts a lifetime to the kernel's whole seconds,
// rounding up, at least 1 (0 would be refused).
func lifetimeSeconds(d time.Duration) uint32 {
	s := (d + time.Second - 1) / time.Second
	return uint32(min(max(s, 1), 1<<31))
}

// New returns a Manager for the virtual addresses vips on the interface
// named ifName. It does no I/O: the first Add, Remove or Check opens the
// netlink sockets and looks the interface up, and later calls reuse them,
// so that a takeover costs a handful of netlink requests. If the
// interface goes away and comes back, it is looked up again. Close
// releases the sockets.
func New(ifName string, vips []netip.Prefix, opts Options) *Manager {
	if opts.AddressLabel == 0 {
		opts.AddressLabel = DefaultAddressLabel
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{ifName: ifName, vips: slices.Clone(vips), opts: opts, log: log}
}

// Validate checks the addresses without I/O: each must be a valid unicast
// address without a zone, and appear once. Check adds the checks against
// the host's addresses.
func (m *Manager) Validate() error {
	if m.ifName == "" {
		return fmt.Errorf("vip: no interface")
	}
	if m.opts.AddressLabel == reservedLabel {
		return fmt.Errorf("vip: address label %#x is reserved", m.opts.AddressLabel)
	}
	for i, p := range m.vips {
		a := p.Addr()
		switch {
		case !p.IsValid():
			return fmt.Errorf("vip: invalid prefix %v", p)
		case a.Zone() != "" || a.Is4In6():
			return fmt.Errorf("vip: %v: plain IPv4 or IPv6 address expected", p)
		case a.IsMulticast() || a.IsUnspecified() || a.IsLoopback():
			return fmt.Errorf("vip: %v is not a unicast address", p)
		}
		for _, q := range m.vips[:i] {
			if q.Addr() == a {
				return fmt.Errorf("vip: %v listed twice", a)
			}
		}
	}
	return nil
}

// isVIP reports whether a is one of the manager's addresses.
func (m *Manager) isVIP(a netip.Addr) bool {
	return slices.ContainsFunc(m.vips, func(p netip.Prefix) bool { return p.Addr() == a })
}

// Repairs of the IPv4 address order are rate-limited: a fight with another
// program that keeps re-adding its own addresses must not turn into a busy
// loop of deletions.
const (
	repairLimit  = 5
	repairWindow = time.Minute
)

// allowRepair reports whether another repair fits in the rate limit at
// now, and records it if so. Called with m.mu held.
func (m *Manager) allowRepair(now time.Time) bool {
	m.fixes = slices.DeleteFunc(m.fixes, func(t time.Time) bool { return now.Sub(t) >= repairWindow })
	if len(m.fixes) >= repairLimit {
		return false
	}
	m.fixes = append(m.fixes, now)
	return true
}
