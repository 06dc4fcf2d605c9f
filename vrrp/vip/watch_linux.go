//go:build linux

package vip

import (
	"errors"
	"slices"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// watcher follows the kernel's address notifications (RTNLGRP_IPV4_IFADDR,
// RTNLGRP_IPV6_IFADDR) while the virtual addresses are up, and puts them
// back in place when someone else changes the interface: a VIP deleted
// (by hand, or by the kernel with the primary address it was secondary
// to), or a node address deleted and added again behind the VIP (DHCP).
// The socket is opened by Add, in the caller's network namespace; the
// repairs use the Manager's request socket, opened there too.
type watcher struct {
	s      *nl.NetlinkSocket
	done   chan struct{} // closed by stop
	exited chan struct{} // closed when the goroutine returns
}

// startWatch subscribes and starts the goroutine. Called with m.mu held.
func (m *Manager) startWatch() error {
	s, err := nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR)
	if err != nil {
		return err
	}
	w := &watcher{s: s, done: make(chan struct{}), exited: make(chan struct{})}
	m.os.watch = w
	go m.watchLoop(w)
	return nil
}

// stopWatch stops the watcher, if any, and returns it so that the caller
// may wait for w.exited once it has released m.mu. Called with m.mu held.
func (m *Manager) stopWatch() *watcher {
	w := m.os.watch
	if w == nil {
		return nil
	}
	m.os.watch = nil
	close(w.done)
	w.s.Close() // wakes Receive
	return w
}

func (m *Manager) watchLoop(w *watcher) {
	defer close(w.exited)
	for {
		msgs, _, err := w.s.Receive()
		select {
		case <-w.done:
			return
		default:
		}
		var indexes []int
		switch {
		case errors.Is(err, unix.ENOBUFS):
			// Notifications were lost: look at everything.
			indexes = nil
		case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			m.log.Warn("vip: address watch stopped; displaced or removed VIPs will not be repaired",
				"iface", m.ifName, "err", err)
			return
		default:
			if indexes = changedLinks(msgs); len(indexes) == 0 {
				continue
			}
		}
		m.onChange(w, indexes)
	}
}

// changedLinks returns the interface indexes of the address notifications
// in msgs.
func changedLinks(msgs []syscall.NetlinkMessage) []int {
	var out []int
	for _, msg := range msgs {
		if msg.Header.Type != unix.RTM_NEWADDR && msg.Header.Type != unix.RTM_DELADDR {
			continue
		}
		if len(msg.Data) < unix.SizeofIfAddrmsg {
			continue
		}
		out = append(out, int(nl.DeserializeIfAddrmsg(msg.Data).Index))
	}
	return out
}

// onChange re-checks the addresses after a change on one of the
// interfaces indexes (nil: unknown, after lost notifications).
func (m *Manager) onChange(w *watcher, indexes []int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.os.watch != w || !m.up {
		return
	}
	m.os.link = nil // the interface as it is now (it may have been recreated)
	if _, link, err := m.handle(); err == nil && indexes != nil && !slices.Contains(indexes, link.Attrs().Index) {
		return // another interface
	}
	added, err := m.ensure(false)
	if len(added) > 0 {
		m.log.Info("vip: re-added VIPs removed by someone else", "iface", m.ifName, "vips", added)
	}
	if err != nil {
		m.log.Error("vip: keeping the VIPs in place", "iface", m.ifName, "err", err)
	}
}
