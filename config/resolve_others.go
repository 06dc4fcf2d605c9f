//go:build !linux

package config

import (
	"errors"
	"net"
	"runtime"
)

// LinuxResolver is the Linux InterfaceResolver; elsewhere every method
// fails, as k0s's CPLB does (cplb_other.go).
type LinuxResolver struct{}

// NewLinuxResolver returns the Linux InterfaceResolver.
func NewLinuxResolver() LinuxResolver { return LinuxResolver{} }

func errUnsupported() error {
	return errors.New("config: interface resolution is only implemented on Linux, not " + runtime.GOOS)
}

// DefaultRouteInterface fails off Linux.
func (LinuxResolver) DefaultRouteInterface() (string, error) { return "", errUnsupported() }

// InterfaceByMAC fails off Linux.
func (LinuxResolver) InterfaceByMAC(net.HardwareAddr) (string, error) { return "", errUnsupported() }

// InterfaceExists fails off Linux.
func (LinuxResolver) InterfaceExists(string) error { return errUnsupported() }
