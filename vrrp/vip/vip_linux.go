//go:build linux

package vip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// osState is the Linux side of a Manager: a netlink handle and the link,
// guarded by Manager.mu.
type osState struct {
	h    *netlink.Handle
	link netlink.Link
}

// handle returns the netlink handle and the link, opening and looking them
// up on first use or after forget.
func (m *Manager) handle() (*netlink.Handle, netlink.Link, error) {
	if m.os.h == nil {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return nil, nil, fmt.Errorf("vip: netlink: %w", err)
		}
		m.os.h = h
	}
	if m.os.link == nil {
		link, err := m.os.h.LinkByName(m.ifName)
		if err != nil {
			return m.os.h, nil, err
		}
		m.os.link = link
	}
	return m.os.h, m.os.link, nil
}

// stale reports whether err means the cached link is gone (the interface
// was removed, or recreated with another index): look it up again.
func stale(err error) bool {
	return errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EINVAL)
}

// Close releases the netlink socket. The Manager may be used again after
// it; the next call opens a new socket.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.os.h != nil {
		m.os.h.Close()
	}
	m.os = osState{}
	return nil
}

// Add configures every virtual address on the interface; addresses already
// present are updated in place (flags, lifetimes), so Add is idempotent.
func (m *Manager) Add() error {
	if err := m.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, p := range m.vips {
		err := m.addOne(p)
		if err != nil && stale(err) {
			m.os.link = nil // the interface changed under us: once more
			err = m.addOne(p)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("vip: add %v to %s: %w", p, m.ifName, err))
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) addOne(p netip.Prefix) error {
	h, link, err := m.handle()
	if err != nil {
		return err
	}
	return h.AddrReplace(link, m.addr(p))
}

// addr is the netlink form of virtual address p.
func (m *Manager) addr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if m.opts.NoPrefixRoute {
		a.Flags |= unix.IFA_F_NOPREFIXROUTE
	}
	if p.Addr().Is6() {
		// RFC 4862 §5.4: no DAD, the address is never tentative.
		a.Flags |= unix.IFA_F_NODAD
		if p.Bits() == 128 {
			// Deprecated at once: never chosen as a source address.
			// netlink sends lifetimes only when one is non-zero, so
			// the valid lifetime is set to "forever".
			a.PreferedLft = 0
			a.ValidLft = forever()
		}
	}
	return a
}

// forever is the infinite address lifetime (0xffffffff) as an int, or the
// longest positive one where int has 32 bits.
func forever() int {
	all := ^uint32(0)
	if v := int(all); v > 0 {
		return v
	}
	return 1<<31 - 1
}

// Remove deletes from the interface every address equal to one of the
// virtual addresses, whatever its prefix length. Absent addresses and an
// absent interface are not errors, so Remove is idempotent and also
// removes stale addresses left by an earlier run.
func (m *Manager) Remove() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	err := m.remove()
	if err != nil && stale(err) {
		m.os.link = nil
		err = m.remove()
	}
	return err
}

func (m *Manager) remove() error {
	h, link, err := m.handle()
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("vip: interface %s: %w", m.ifName, err)
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("vip: list addresses of %s: %w", m.ifName, err)
	}
	var errs []error
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || !m.isVIP(ip.Unmap()) {
			continue
		}
		if err := h.AddrDel(link, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("vip: remove %v from %s: %w", a.IPNet, m.ifName, err))
		}
	}
	return errors.Join(errs...)
}

// Present returns the virtual addresses configured on the interface now,
// with the prefix length they have there.
func (m *Manager) Present() ([]netip.Prefix, error) {
	link, err := netlink.LinkByName(m.ifName)
	if err != nil {
		return nil, fmt.Errorf("vip: interface %s: %w", m.ifName, err)
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("vip: list addresses of %s: %w", m.ifName, err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || !m.isVIP(ip.Unmap()) {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
	}
	return out, nil
}
