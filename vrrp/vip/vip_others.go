//go:build !linux

package vip

import (
	"fmt"
	"net/netip"
	"runtime"
	"time"
)

// osState is empty off Linux.
type osState struct{}

// Close releases nothing off Linux.
func (m *Manager) Close() error { return nil }

// Check validates the addresses; the host checks are implemented on Linux
// only.
func (m *Manager) Check() error {
	if err := m.Validate(); err != nil {
		return err
	}
	return errUnimplemented()
}

// Add is implemented on Linux only.
func (m *Manager) Add() error { return errUnimplemented() }

// Remove is implemented on Linux only.
func (m *Manager) Remove() error { return errUnimplemented() }

// Present is implemented on Linux only.
func (m *Manager) Present() ([]netip.Prefix, error) { return nil, errUnimplemented() }

// CheckPermission is implemented on Linux only.
func CheckPermission() error { return errUnimplemented() }

func errUnimplemented() error { return fmt.Errorf("vip: not implemented on %s", runtime.GOOS) }

// AddFor is implemented on Linux only.
func (m *Manager) AddFor(time.Duration) error { return errUnimplemented() }

// Refresh is implemented on Linux only.
func (m *Manager) Refresh(time.Duration) error { return errUnimplemented() }
