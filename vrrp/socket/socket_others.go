//go:build !linux

package socket

import (
	"fmt"
	"runtime"
)

// ListenIPv4 is implemented on Linux only.
func ListenIPv4(ifName string, cfg Config) (*Conn, error) {
	return nil, fmt.Errorf("socket: not implemented on %s", runtime.GOOS)
}

// ListenIPv6 is implemented on Linux only.
func ListenIPv6(ifName string, cfg Config) (*Conn, error) {
	return nil, fmt.Errorf("socket: not implemented on %s", runtime.GOOS)
}
