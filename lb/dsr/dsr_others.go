//go:build !linux

package dsr

import "errors"

type osState struct{}

func errNotLinux() error { return errors.New("dsr: direct server return needs Linux") }

// Link returns the link the VIPs would go on.
func (s *RealServer) Link() string { return s.cfg.Link }

// Up needs Linux.
func (s *RealServer) Up() error { return errNotLinux() }

// Down needs Linux.
func (s *RealServer) Down() error { return errNotLinux() }

// Close does nothing.
func (s *RealServer) Close() error { return nil }
