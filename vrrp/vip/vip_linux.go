//go:build linux

package vip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// osState is the Linux side of a Manager, guarded by Manager.mu: the
// netlink sockets (opened in the caller's network namespace on first use),
// the link, what the kernel supports, and the address watcher.
type osState struct {
	h     *netlink.Handle
	r     *rtnl
	link  netlink.Link
	proto int8 // kernel keeps IFA_PROTO: 0 not known yet, 1 yes, -1 no
	watch *watcher
	// sent is how each virtual address was last added, so that Refresh
	// can update its lifetime with one request and no dump.
	sent map[netip.Addr]newAddr
}

// open opens the netlink sockets if needed.
func (m *Manager) open() error {
	if m.os.h == nil {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("vip: netlink: %w", err)
		}
		m.os.h = h
	}
	if m.os.r == nil {
		r, err := openRTNL()
		if err != nil {
			return fmt.Errorf("vip: netlink: %w", err)
		}
		m.os.r = r
	}
	return nil
}

// handle opens the sockets and looks the link up, on first use or after
// it was forgotten.
func (m *Manager) handle() (*rtnl, netlink.Link, error) {
	if err := m.open(); err != nil {
		return nil, nil, err
	}
	if m.os.link == nil {
		link, err := m.os.h.LinkByName(m.ifName)
		if err != nil {
			return m.os.r, nil, err
		}
		m.os.link = link
	}
	return m.os.r, m.os.link, nil
}

// stale reports whether err means the cached link is gone (the interface
// was removed, or recreated with another index): look it up again.
func stale(err error) bool {
	return errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EINVAL)
}

// owner returns the ownership rule for this host, given a fresh dump.
func (m *Manager) owner(addrs []addrEntry, ifIndex int) owner {
	if m.os.proto != 1 && slices.ContainsFunc(addrs, func(e addrEntry) bool { return e.hasProto }) {
		m.os.proto = 1
	}
	if m.os.proto == 0 {
		m.os.proto = -1
		if kernelHasAddrProto() {
			m.os.proto = 1
		}
	}
	o := owner{vips: m.vips, proto: m.os.proto == 1, ifIndex: ifIndex}
	for _, e := range addrs {
		if !o.proto || e.proto != RealServerAddrProto || slices.Contains(o.rsLinks, e.index) || m.os.h == nil {
			continue
		}
		// lb/dsr's mark counts only where lb/dsr puts its addresses.
		if l, err := m.os.h.LinkByIndex(e.index); err == nil && (l.Attrs().Flags&net.FlagLoopback != 0 || l.Type() == "dummy") {
			o.rsLinks = append(o.rsLinks, e.index)
		}
	}
	return o
}

// ifaceName names interface index for messages.
func (m *Manager) ifaceName(index int) string {
	if m.os.h != nil {
		if l, err := m.os.h.LinkByIndex(index); err == nil {
			return l.Attrs().Name
		}
	}
	return fmt.Sprintf("interface #%d", index)
}

// conflictError describes a node address equal to a virtual address.
func (m *Manager) conflictError(e addrEntry) error {
	name := m.ifaceName(e.index)
	return fmt.Errorf("vip: %v is already an address of %s that nlb did not add: a virtual IP must not be "+
		"a node's own address (if it is a leftover virtual IP, delete it: ip addr del %v dev %s)",
		e.prefix.Addr(), name, e.prefix, name)
}

// Check validates the addresses (Validate) and then checks them against
// the host: a virtual address that is already an address of any interface
// and was not added by nlb is a node's own address, and is an error naming
// the interface. Addresses nlb added earlier (a killed process, an older
// configuration) are not errors: Remove cleans them up. Every problem is
// reported.
func (m *Manager) Check() error {
	if err := m.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.open(); err != nil {
		return err
	}
	addrs, err := m.os.r.addrs()
	if err != nil {
		return fmt.Errorf("vip: list addresses: %w", err)
	}
	ifIndex := 0
	if link, err := m.os.h.LinkByName(m.ifName); err == nil {
		ifIndex = link.Attrs().Index
	}
	o := m.owner(addrs, ifIndex)
	var errs []error
	for _, e := range addrs {
		if o.conflict(e) {
			errs = append(errs, m.conflictError(e))
		}
	}
	return errors.Join(errs...)
}

// Close stops watching the addresses and releases the netlink sockets.
// IPv6 address labels whose virtual address is not configured are removed;
// a label stays with a virtual address still present, which would
// otherwise become a candidate source address (Remove takes both away).
// The Manager may be used again after Close; the next call opens new
// sockets.
func (m *Manager) Close() error {
	m.mu.Lock()
	w := m.stopWatch()
	var err error
	if m.os.r != nil {
		err = m.sweepLabels()
		m.os.r.close()
	}
	if m.os.h != nil {
		m.os.h.Close()
	}
	m.os = osState{}
	m.mu.Unlock()
	if w != nil {
		<-w.exited
	}
	return err
}

// sweepLabels removes the labels of IPv6 virtual addresses that are not
// configured on any interface.
func (m *Manager) sweepLabels() error {
	if !m.hasIPv6() {
		return nil
	}
	addrs, err := m.os.r.addrs()
	if err != nil {
		return fmt.Errorf("vip: list addresses: %w", err)
	}
	present := map[netip.Addr]bool{}
	for _, e := range addrs {
		if m.isVIP(e.prefix.Addr()) {
			present[e.prefix.Addr()] = true
		}
	}
	return m.removeLabels(func(a netip.Addr) bool { return !present[a] })
}

// removeLabels deletes every label entry for a virtual address's /128 for
// which sel is true, whatever its value or interface: entries nlb (or
// k0s's keepalived set-up) left with another label are stale too.
func (m *Manager) removeLabels(sel func(netip.Addr) bool) error {
	labels, err := m.os.r.labels()
	if err != nil {
		return fmt.Errorf("vip: list address labels: %w", err)
	}
	var errs []error
	for _, l := range labels {
		a := l.prefix.Addr()
		if l.prefix.Bits() != 128 || !a.Is6() || !m.isVIP(a) || !sel(a) {
			continue
		}
		if err := m.os.r.delLabel(l); err != nil {
			errs = append(errs, fmt.Errorf("vip: remove address label of %v: %w", a, err))
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) hasIPv6() bool {
	return slices.ContainsFunc(m.vips, func(p netip.Prefix) bool { return p.Addr().Is6() })
}

// Add configures every virtual address on the interface and keeps them
// there until Remove: IPv6 addresses get their address label first, IPv4
// addresses are placed behind the node's own (see the package doc), and
// a watcher repairs what others change later. Addresses already present
// are updated in place (flags, lifetimes), so Add is idempotent. A
// virtual address that is a node's own address (one nlb did not add) is
// left alone and reported. The addresses never expire: Add is AddFor(0).
func (m *Manager) Add() error { return m.AddFor(0) }

// AddFor is Add with a valid lifetime: unless Refresh restarts it, the
// kernel removes the addresses by itself once lifetime has passed (whole
// seconds, rounded up), also when this process was killed or stopped.
// The watcher puts back an address someone else deleted only while the
// lifetime runs, with what is left of it. 0 means forever.
func (m *Manager) AddFor(lifetime time.Duration) error {
	if err := m.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.up = true
	m.setLifetime(time.Now(), lifetime)
	_, err := m.ensure(true)
	if err != nil && stale(err) {
		m.os.link = nil // the interface changed under us: once more
		_, err = m.ensure(true)
	}
	if m.os.r != nil && m.os.watch == nil {
		if werr := m.startWatch(); werr != nil {
			m.log.Warn("vip: cannot watch addresses; displaced or removed VIPs will not be repaired",
				"iface", m.ifName, "err", werr)
		}
	}
	return err
}

// ensure puts the virtual addresses in place. With refresh, every address
// and label is (re)written; without, only what is missing is added back
// and the added addresses are returned. Called with m.mu held.
func (m *Manager) ensure(refresh bool) ([]netip.Prefix, error) {
	r, link, err := m.handle()
	if err != nil {
		return nil, fmt.Errorf("vip: interface %s: %w", m.ifName, err)
	}
	idx := link.Attrs().Index
	addrs, err := r.addrs()
	if err != nil {
		return nil, fmt.Errorf("vip: list addresses: %w", err)
	}
	o := m.owner(addrs, idx)
	var onLink []addrEntry
	for _, e := range addrs {
		if e.index == idx {
			onLink = append(onLink, e)
		}
	}
	var labels []addrLabel
	if m.hasIPv6() {
		if labels, err = r.labels(); err != nil {
			return nil, fmt.Errorf("vip: list address labels: %w", err)
		}
	}

	var errs []error
	var added []netip.Prefix
	for _, p := range m.vips {
		present, blocked := false, false
		for _, e := range addrs {
			switch {
			case e.prefix.Addr() != p.Addr():
			case o.conflict(e):
				errs = append(errs, m.conflictError(e))
				blocked = true
			case o.realServer(e):
				// lb/dsr's copy on lo or dummyvip0: it stays beside ours.
			case e.index == idx && e.prefix == p:
				present = true
			default:
				// Ours, with another prefix length or on another
				// interface: left by an older configuration.
				if err := m.deleteAddrs(r, o, addrs, []addrEntry{e}); err != nil {
					errs = append(errs, fmt.Errorf("vip: stale address: %w", err))
				}
			}
		}
		if blocked {
			continue
		}
		if p.Addr().Is6() {
			// The label goes first: the address is never a source
			// candidate without it.
			if err := m.ensureLabel(r, p.Addr(), labels); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if present && !refresh {
			continue
		}
		if err := m.addAddr(r, m.newAddr(idx, p, o, onLink)); err != nil {
			errs = append(errs, fmt.Errorf("vip: add %v to %s: %w", p, m.ifName, err))
			continue
		}
		if !present {
			added = append(added, p)
		}
	}
	if err := m.repair(r, idx); err != nil {
		errs = append(errs, err)
	}
	return added, errors.Join(errs...)
}

// ensureLabel makes the label table hold exactly one entry for a's /128:
// every interface, label m.opts.AddressLabel. labels is the current table.
//
// Other entries for the /128 (another value, one interface, duplicates)
// are deleted first. NLM_F_REPLACE cannot be relied on: the kernel's
// search for the entry to replace stops at the first global entry of the
// same prefix length (net/ipv6/addrlabel.c __ip6addrlbl_add), so with two
// virtual addresses a second add would insert a duplicate.
func (m *Manager) ensureLabel(r *rtnl, a netip.Addr, labels []addrLabel) error {
	want := addrLabel{prefix: netip.PrefixFrom(a, 128), label: m.opts.AddressLabel}
	var have []addrLabel
	for _, l := range labels {
		if l.prefix == want.prefix {
			have = append(have, l)
		}
	}
	if len(have) == 1 && have[0] == want {
		return nil
	}
	for _, l := range have {
		if err := r.delLabel(l); err != nil {
			return fmt.Errorf("vip: remove stale address label of %v: %w", a, err)
		}
	}
	if err := r.addLabel(want); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("vip: address label %d for %v: %w", want.label, a, err)
	}
	return nil
}

// newAddr is how virtual address p is added to interface idx, whose
// addresses are onLink.
func (m *Manager) newAddr(idx int, p netip.Prefix, o owner, onLink []addrEntry) newAddr {
	a := newAddr{index: idx, prefix: p, broadcast: p.Addr().Is4()}
	if m.opts.NoPrefixRoute || o.noPrefixRoute(p, onLink) {
		a.flags |= flagNoPrefixRoute
	}
	if p.Addr().Is6() {
		// RFC 4862 §5.4: no DAD, the address is never tentative.
		a.flags |= flagNoDAD
		// A /128 is deprecated at once (preferred lifetime 0): never
		// chosen as a source address (RFC 6724 rule 3).
		a.deprecated = p.Bits() == 128
	}
	// Any other address is preferred as long as it is valid: an IPv4
	// address with preferred lifetime 0 would be flagged deprecated.
	a.valid = m.remaining(time.Now())
	return a
}

// addAddr adds a and remembers it for Refresh. Called with m.mu held.
func (m *Manager) addAddr(r *rtnl, a newAddr) error {
	if err := r.addAddr(a); err != nil {
		return err
	}
	if m.os.sent == nil {
		m.os.sent = map[netip.Addr]newAddr{}
	}
	m.os.sent[a.prefix.Addr()] = a
	return nil
}

// Refresh restarts the valid lifetime of the addresses AddFor configured:
// lifetime from now (0: forever). Each address is updated in place, with
// one RTM_NEWADDR (NLM_F_REPLACE) and no dump: it is never removed, not
// even for a moment, and the watchers of other programs see one address
// update. Refresh fails, changing nothing, when the current lifetime has
// run out (or is within a quarter second of it): the kernel is removing
// the addresses, and updating one it removed would add it again; only
// AddFor puts them back. A failed update is retried as AddFor does it.
func (m *Manager) Refresh(lifetime time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.up {
		return fmt.Errorf("vip: refresh of %s: the addresses are not up", m.ifName)
	}
	now := time.Now()
	if m.lapsed(now) {
		return fmt.Errorf("vip: refresh of %s: their lifetime ran out at %s", m.ifName, m.until.Format(time.RFC3339Nano))
	}
	m.setLifetime(now, lifetime)
	valid := uint32(0)
	if lifetime > 0 {
		valid = lifetimeSeconds(lifetime)
	}
	var err error
	if m.os.r == nil || len(m.os.sent) == 0 {
		err = errors.New("nothing added yet") // after Close: the full way
	}
	for _, p := range m.vips {
		a, ok := m.os.sent[p.Addr()]
		if !ok || err != nil {
			continue // not added (a node's address, reported by Add)
		}
		a.valid = valid
		if err = m.addAddr(m.os.r, a); err != nil {
			break
		}
	}
	if err == nil {
		return nil
	}
	// The interface changed (recreated) or the request failed: once
	// more the full way, which looks everything up again.
	m.os.link = nil
	if _, err2 := m.ensure(true); err2 != nil {
		return fmt.Errorf("vip: refresh on %s: %w", m.ifName, errors.Join(err, err2))
	}
	return nil
}

// repair re-adds the IPv4 virtual addresses the kernel would prefer over
// a node address (owner.misplaced), at most repairLimit times per
// repairWindow. Called with m.mu held.
func (m *Manager) repair(r *rtnl, idx int) error {
	if !slices.ContainsFunc(m.vips, func(p netip.Prefix) bool { return p.Addr().Is4() }) {
		return nil
	}
	v4, o, err := m.linkV4(r, idx)
	if err != nil {
		return err
	}
	fix := o.misplaced(v4)
	if len(fix) == 0 {
		return nil
	}
	var names []string
	for _, e := range fix {
		names = append(names, e.prefix.String())
	}
	if !m.allowRepair(time.Now()) {
		m.log.Warn("vip: VIP ahead of a node address, not repaired: too many repairs in a row",
			"iface", m.ifName, "vips", names, "limit", repairLimit, "window", repairWindow.String())
		return nil
	}
	// A node address secondary to a VIP is promoted, not deleted.
	err = m.deleteAddrs(r, o, v4, fix)
	for _, e := range fix {
		if aerr := m.addAddr(r, m.newAddr(idx, e.prefix, o, v4)); aerr != nil {
			err = errors.Join(err, fmt.Errorf("vip: re-add %v to %s: %w", e.prefix, m.ifName, aerr))
		}
	}
	if err != nil {
		return err
	}
	m.log.Info("vip: re-added VIPs that had moved ahead of the node's address", "iface", m.ifName, "vips", names)
	if v4, o, err = m.linkV4(r, idx); err == nil {
		if fix := o.misplaced(v4); len(fix) > 0 {
			m.log.Warn("vip: VIP still ahead of a node address after re-adding it", "iface", m.ifName, "vips", names)
		}
	}
	return nil
}

// deleteAddrs deletes del, addresses of ours, from a host whose
// addresses are all. Where that would also delete a node address
// secondary to one of them, promote_secondaries is turned on for the
// interface during the deletion and restored after, so that the kernel
// promotes the node address instead (owner.promoteNeeded). Called with
// m.mu held.
func (m *Manager) deleteAddrs(r *rtnl, o owner, all, del []addrEntry) error {
	for _, idx := range o.promoteNeeded(all, del) {
		on, err := r.promoteSecondaries(idx)
		if err != nil {
			return fmt.Errorf("vip: %s: read promote_secondaries: %w", m.ifaceName(idx), err)
		}
		if on {
			continue
		}
		if err := r.setPromoteSecondaries(idx, true); err != nil {
			return fmt.Errorf("vip: %s: set promote_secondaries: %w", m.ifaceName(idx), err)
		}
		defer func() {
			if err := r.setPromoteSecondaries(idx, false); err != nil {
				m.log.Error("vip: cannot restore promote_secondaries", "iface", m.ifaceName(idx), "err", err)
			}
		}()
	}
	var errs []error
	for _, e := range del {
		if err := r.delAddr(e); err != nil {
			errs = append(errs, fmt.Errorf("vip: remove %v from %s: %w", e.prefix, m.ifaceName(e.index), err))
		}
	}
	return errors.Join(errs...)
}

// linkV4 dumps the interface's IPv4 addresses, in kernel order.
func (m *Manager) linkV4(r *rtnl, idx int) ([]addrEntry, owner, error) {
	addrs, err := r.addrs()
	if err != nil {
		return nil, owner{}, fmt.Errorf("vip: list addresses: %w", err)
	}
	o := m.owner(addrs, idx)
	var v4 []addrEntry
	for _, e := range addrs {
		if e.index == idx && e.prefix.Addr().Is4() {
			v4 = append(v4, e)
		}
	}
	return v4, o, nil
}

// Remove deletes every virtual address nlb added, on any interface and
// whatever its prefix length, then their IPv6 address labels. Absent
// addresses and an absent interface are not errors, so Remove is
// idempotent and also removes stale addresses left by an earlier run. A
// node's own address equal to a virtual address is never removed.
func (m *Manager) Remove() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.up = false
	m.until = time.Time{}
	m.stopWatch()
	if err := m.open(); err != nil {
		return err
	}
	ifIndex := 0
	m.os.link = nil // the interface as it is now (it may have been recreated)
	if _, link, err := m.handle(); err == nil {
		ifIndex = link.Attrs().Index
	}
	addrs, err := m.os.r.addrs()
	if err != nil {
		return fmt.Errorf("vip: list addresses: %w", err)
	}
	o := m.owner(addrs, ifIndex)
	var del []addrEntry
	for _, e := range addrs {
		switch {
		case o.ours(e):
			del = append(del, e)
		case o.conflict(e):
			m.log.Warn("vip: not removing a node's own address equal to a VIP", "addr", e.prefix.String(),
				"iface", m.ifaceName(e.index))
		}
	}
	var errs []error
	if err := m.deleteAddrs(m.os.r, o, addrs, del); err != nil {
		errs = append(errs, err)
	}
	if m.hasIPv6() {
		if err := m.removeLabels(func(netip.Addr) bool { return true }); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Present returns the virtual addresses configured on the interface now,
// with the prefix length they have there, whoever added them.
func (m *Manager) Present() ([]netip.Prefix, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.os.link = nil // always the interface as it is now
	r, link, err := m.handle()
	if err != nil {
		return nil, fmt.Errorf("vip: interface %s: %w", m.ifName, err)
	}
	addrs, err := r.addrs()
	if err != nil {
		return nil, fmt.Errorf("vip: list addresses of %s: %w", m.ifName, err)
	}
	var out []netip.Prefix
	for _, e := range addrs {
		if e.index == link.Attrs().Index && m.isVIP(e.prefix.Addr()) {
			out = append(out, e.prefix)
		}
	}
	return out, nil
}
