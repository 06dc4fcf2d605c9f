//go:build !linux

package link

import (
	"errors"
	"net"
	"runtime"
)

// Resolver answers config.InterfaceResolver's questions; off Linux every
// method fails, as k0s's CPLB does (cplb_other.go).
type Resolver struct{}

// NewResolver returns the interface resolver of this system.
func NewResolver() Resolver { return Resolver{} }

func errUnsupported() error {
	return errors.New("link: interface resolution is only implemented on Linux, not " + runtime.GOOS)
}

// DefaultRouteInterface fails off Linux.
func (Resolver) DefaultRouteInterface() (string, error) { return "", errUnsupported() }

// InterfaceByMAC fails off Linux.
func (Resolver) InterfaceByMAC(net.HardwareAddr) (string, error) { return "", errUnsupported() }

// InterfaceExists fails off Linux.
func (Resolver) InterfaceExists(string) error { return errUnsupported() }
