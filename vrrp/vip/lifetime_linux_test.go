//go:build linux

package vip

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// addrEvent is one address notification.
type addrEvent struct {
	del    bool
	prefix netip.Prefix
	at     time.Time
}

// addrWatch records the address notifications of a host's namespace.
type addrWatch struct {
	s    *nl.NetlinkSocket
	mu   sync.Mutex
	evs  []addrEvent
	wake chan struct{}
	done chan struct{}
}

// watchAddrs subscribes to h's IPv4 and IPv6 address notifications until
// the test ends.
func watchAddrs(t *testing.T, h *netlab.Host) *addrWatch {
	t.Helper()
	w := &addrWatch{wake: make(chan struct{}, 1), done: make(chan struct{})}
	hostRun(t, h, func() error {
		var err error
		w.s, err = nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR)
		return err
	})
	go func() {
		defer close(w.done)
		for {
			msgs, _, err := w.s.Receive()
			if err != nil && !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EAGAIN) {
				return
			}
			now := time.Now()
			w.mu.Lock()
			for _, m := range msgs {
				if m.Header.Type != unix.RTM_NEWADDR && m.Header.Type != unix.RTM_DELADDR {
					continue
				}
				if e, ok := parseAddr(m.Data); ok {
					w.evs = append(w.evs, addrEvent{del: m.Header.Type == unix.RTM_DELADDR, prefix: e.prefix, at: now})
				}
			}
			w.mu.Unlock()
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { w.s.Close(); <-w.done })
	return w
}

// events returns the notifications for address a so far.
func (w *addrWatch) events(a netip.Addr) []addrEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []addrEvent
	for _, e := range w.evs {
		if e.prefix.Addr() == a {
			out = append(out, e)
		}
	}
	return out
}

// waitDel waits for an RTM_DELADDR of a, at most limit (a safety bound).
func (w *addrWatch) waitDel(t *testing.T, a netip.Addr, limit time.Duration) addrEvent {
	t.Helper()
	deadline := time.After(limit)
	for {
		for _, e := range w.events(a) {
			if e.del {
				return e
			}
		}
		select {
		case <-w.wake:
		case <-deadline:
			t.Fatalf("%v: no RTM_DELADDR within %v", a, limit)
		}
	}
}

// lifetimes returns the valid and preferred lifetimes and flags of the
// address p on ifName, and whether it is there.
func lifetimes(t *testing.T, h *netlab.Host, ifName string, p netip.Prefix) (valid, preferred, flags int, ok bool) {
	t.Helper()
	hostRun(t, h, func() error {
		link, err := netlink.LinkByName(ifName)
		if err != nil {
			return err
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			ip, _ := netip.AddrFromSlice(a.IP)
			if ip.Unmap() == p.Addr() {
				valid, preferred, flags, ok = a.ValidLft, a.PreferedLft, a.Flags, true
			}
		}
		return nil
	})
	return valid, preferred, flags, ok
}

// syncLog is a slog handler's writer that can be read while written.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncLog) has(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Contains(s.b.String(), sub)
}

// TestLifetime: AddFor gives every VIP a finite valid lifetime (IPv4 and
// IPv6 preferred as long as valid, the IPv6 /128 deprecated, nodad kept);
// Refresh restarts it in place, so that refreshing for longer than the
// lifetime keeps the VIPs without a single RTM_DELADDR; once the
// refreshes stop the kernel removes them, and the watcher does not put
// them back.
func TestLifetime(t *testing.T) {
	l := netlab.NewT(t, "viplft", netlab.Options{Hosts: 1})
	h := l.Hosts[0]
	v4, v6, v6h := l.VIP4(1), l.VIP6(1), netip.PrefixFrom(l.VIP6(2).Addr(), 128)
	vips := []netip.Prefix{v4, v6, v6h}
	var logs syncLog
	m := New(h.IfName, vips, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	t.Cleanup(func() { _ = m.Close() })
	sysctl(t, h, "ipv6/conf/"+h.IfName+"/accept_dad", "1") // only IFA_F_NODAD keeps them usable
	w := watchAddrs(t, h)

	const lifetime = 3 * time.Second
	hostRun(t, h, func() error { return m.AddFor(lifetime) })
	for _, p := range vips {
		valid, preferred, flags, ok := lifetimes(t, h, h.IfName, p)
		if !ok {
			t.Fatalf("%v absent after AddFor", p)
		}
		if valid <= 0 || valid > 3 {
			t.Errorf("%v: valid_lft %d, want 1-3", p, valid)
		}
		wantPref := valid
		if p == v6h {
			wantPref = 0
		}
		if preferred != wantPref {
			t.Errorf("%v: preferred_lft %d, want %d", p, preferred, wantPref)
		}
		if flags&unix.IFA_F_PERMANENT != 0 || (p != v6h && flags&unix.IFA_F_DEPRECATED != 0) {
			t.Errorf("%v: flags %#x: want neither permanent nor deprecated", p, flags)
		}
		if p.Addr().Is6() && (flags&unix.IFA_F_NODAD == 0 || flags&unix.IFA_F_TENTATIVE != 0) {
			t.Errorf("%v: flags %#x: want nodad, not tentative", p, flags)
		}
	}

	// Refresh for twice the lifetime: the VIPs never leave, and the
	// watcher takes the refreshes for nothing to check.
	m.mu.Lock()
	checks := m.checks
	m.mu.Unlock()
	start := time.Now()
	refreshes := 0
	for time.Since(start) < 2*lifetime {
		time.Sleep(100 * time.Millisecond)
		hostRun(t, h, func() error { return m.Refresh(lifetime) })
		refreshes++
		for _, p := range vips {
			if _, _, _, ok := lifetimes(t, h, h.IfName, p); !ok {
				t.Fatalf("%v absent after %d refreshes", p, refreshes)
			}
		}
	}
	for _, p := range vips {
		valid, _, _, _ := lifetimes(t, h, h.IfName, p)
		if valid < 2 {
			t.Errorf("%v: valid_lft %d after a refresh, want 2-3", p, valid)
		}
		evs := w.events(p.Addr())
		news := 0
		for _, e := range evs {
			if e.del {
				t.Errorf("%v: RTM_DELADDR at %v, during the refreshes", p, e.at.Sub(start))
			} else {
				news++
			}
		}
		if news < refreshes/2 { // the kernel may coalesce nothing: one per refresh
			t.Errorf("%v: %d RTM_NEWADDR for %d refreshes: not refreshed in place?", p, news, refreshes)
		}
	}
	m.mu.Lock()
	checks = m.checks - checks
	m.mu.Unlock()
	if checks > 2 {
		t.Errorf("the watcher re-checked the addresses %d times during %d refreshes", checks, refreshes)
	}
	if logs.has("re-added") {
		t.Errorf("the watcher repaired during refreshes:\n%s", logs.b.String())
	}

	// The refreshes stop: the kernel removes them (3 s, and its
	// lifetime check runs at most a second late), and they stay gone.
	stopped := time.Now()
	for _, p := range vips {
		e := w.waitDel(t, p.Addr(), 30*time.Second)
		t.Logf("%v expired %v after the last refresh", p, e.at.Sub(stopped).Round(time.Millisecond))
	}
	eventually(t, "the watcher sees the expiry", func() string {
		if !logs.has("lifetime ran out") {
			return "no log"
		}
		return ""
	})
	addNode(t, h, h.IfName, netip.MustParsePrefix("192.0.2.250/24")) // one more event for the watcher
	if err := h.Run(func() error { return m.Refresh(lifetime) }); err == nil {
		t.Error("Refresh after the lifetime ran out succeeded")
	}
	for _, p := range vips {
		if _, _, _, ok := lifetimes(t, h, h.IfName, p); ok {
			t.Errorf("%v back after it expired", p)
		}
	}

	// AddFor puts them back.
	hostRun(t, h, func() error { return m.AddFor(lifetime) })
	for _, p := range vips {
		if _, _, _, ok := lifetimes(t, h, h.IfName, p); !ok {
			t.Errorf("%v absent after AddFor", p)
		}
	}
	hostRun(t, h, m.Remove)
}

// TestLifetimeExpiredWhileStopped: the VIPs expire while the process is
// stopped (the watcher cannot run: here its lock is held, as SIGSTOP
// would hold it); when it runs again, the expiry's RTM_DELADDRs wait in
// its socket, and it must not put the VIPs back.
func TestLifetimeExpiredWhileStopped(t *testing.T) {
	l := netlab.NewT(t, "viplftstop", netlab.Options{Hosts: 1})
	h := l.Hosts[0]
	vips := []netip.Prefix{l.VIP4(3), l.VIP6(3)}
	var logs syncLog
	m := New(h.IfName, vips, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	t.Cleanup(func() { _ = m.Close() })
	w := watchAddrs(t, h)
	hostRun(t, h, func() error { return m.AddFor(2 * time.Second) })

	m.mu.Lock() // "SIGSTOP"
	for _, p := range vips {
		w.waitDel(t, p.Addr(), 30*time.Second)
	}
	m.mu.Unlock() // "SIGCONT"
	eventually(t, "the watcher sees the expiry", func() string {
		if !logs.has("lifetime ran out") {
			return "no log"
		}
		return ""
	})
	for _, p := range vips {
		if _, _, _, ok := lifetimes(t, h, h.IfName, p); ok {
			t.Errorf("%v put back after it expired", p)
		}
	}
}

// TestLifetimeRestore: within the lifetime, a VIP someone deletes is put
// back, with what is left of the lifetime (never forever).
func TestLifetimeRestore(t *testing.T) {
	l := netlab.NewT(t, "viplftrest", netlab.Options{Hosts: 1})
	h := l.Hosts[0]
	vips := []netip.Prefix{l.VIP4(4), l.VIP6(4)}
	m := New(h.IfName, vips, Options{})
	t.Cleanup(func() { _ = m.Close() })
	hostRun(t, h, func() error { return m.AddFor(30 * time.Second) })
	for _, p := range vips {
		delAddr(t, h, h.IfName, p)
		eventually(t, "VIP restored", func() string {
			valid, _, flags, ok := lifetimes(t, h, h.IfName, p)
			switch {
			case !ok:
				return fmt.Sprintf("%v absent", p)
			case valid <= 0 || valid > 30 || flags&unix.IFA_F_PERMANENT != 0:
				return fmt.Sprintf("%v: valid_lft %d flags %#x, want 1-30 s", p, valid, flags)
			}
			return ""
		})
	}
	hostRun(t, h, m.Remove)
}
