//go:build !linux

package announce

import (
	"fmt"
	"net/netip"
	"runtime"
)

// Announcer sends gratuitous ARPs and unsolicited Neighbor Advertisements;
// implemented on Linux only.
type Announcer struct{}

// Dial is implemented on Linux only.
func Dial(ifName string) (*Announcer, error) {
	return nil, fmt.Errorf("announce: not implemented on %s", runtime.GOOS)
}

// Announce is implemented on Linux only.
func (a *Announcer) Announce(vips []netip.Addr) error {
	return fmt.Errorf("announce: not implemented on %s", runtime.GOOS)
}

// Close is implemented on Linux only.
func (a *Announcer) Close() error { return nil }
