package vip

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
)

// Options tune how the virtual addresses are configured.
type Options struct {
	// NoPrefixRoute adds the addresses with IFA_F_NOPREFIXROUTE, so the
	// kernel adds no prefix route for them (see the package doc for when
	// that is safe).
	NoPrefixRoute bool
}

// Manager adds and removes one instance's virtual addresses on one
// interface. Its methods may be called repeatedly in any order.
type Manager struct {
	ifName string
	vips   []netip.Prefix
	opts   Options

	mu sync.Mutex
	os osState // the netlink socket and the link, kept between calls
}

// New returns a Manager for the virtual addresses vips on the interface
// named ifName. It does no I/O: the first Add or Remove opens a netlink
// socket and looks the interface up, and later calls reuse both, so that a
// takeover costs one netlink request per address. If the interface goes
// away and comes back, it is looked up again. Close releases the socket.
func New(ifName string, vips []netip.Prefix, opts Options) *Manager {
	return &Manager{ifName: ifName, vips: slices.Clone(vips), opts: opts}
}

// Validate checks the addresses without I/O: each must be a valid unicast
// address without a zone, and appear once.
func (m *Manager) Validate() error {
	if m.ifName == "" {
		return fmt.Errorf("vip: no interface")
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
