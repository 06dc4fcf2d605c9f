//go:build linux

package vip

import (
	"errors"
	"slices"
	"syscall"
	"time"

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
//
// Two kinds of change are not repaired. The update of an address nlb
// added (a lifetime refresh, any Manager's) tells nothing new and is
// skipped without a dump. And once the addresses' lifetime has run out
// (the instance stopped refreshing it: this process was stopped, or its
// loop stalled), an expired address is not put back: the kernel removed
// it because its owner stopped advertising, and a Backup has taken over.
// Only a new AddFor puts it back. Within the lifetime, an address someone
// deleted is put back with what is left of the lifetime.
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
			if indexes = m.changedLinks(msgs); len(indexes) == 0 {
				continue
			}
		}
		m.onChange(w, indexes)
	}
}

// changedLinks returns the interface indexes of the address notifications
// in msgs that may need a repair. An RTM_NEWADDR of an address nlb added
// (IFA_PROTO) or of one of this Manager's addresses is skipped: it is a
// lifetime refresh or an add of nlb's own, and adding a VIP never puts
// it ahead of a node address that was there (a VIP promoted by a node
// address's deletion comes with that RTM_DELADDR).
func (m *Manager) changedLinks(msgs []syscall.NetlinkMessage) []int {
	var out []int
	for _, msg := range msgs {
		if msg.Header.Type != unix.RTM_NEWADDR && msg.Header.Type != unix.RTM_DELADDR {
			continue
		}
		if len(msg.Data) < unix.SizeofIfAddrmsg {
			continue
		}
		if msg.Header.Type == unix.RTM_NEWADDR {
			if e, ok := parseAddr(msg.Data); ok && (e.proto == AddrProto || m.isVIP(e.prefix.Addr())) {
				continue
			}
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
	m.checks++
	if m.lapsed(time.Now()) {
		if !m.lapseLogged {
			m.lapseLogged = true
			m.log.Warn("vip: the VIPs' lifetime ran out (nlb was stopped or stalled): not putting them back",
				"iface", m.ifName, "expired", m.until.Format(time.RFC3339Nano))
		}
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
