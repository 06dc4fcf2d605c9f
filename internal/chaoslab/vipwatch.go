package chaoslab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nlb-dev/nlb/internal/netlab"
)

// VIPWatch polls, through netlink, which hosts hold an address, and keeps
// the intervals during which each held it.
type VIPWatch struct {
	vip     netip.Addr
	handles []*netlink.Handle

	mu         sync.Mutex
	held       [][]Interval
	lastChange time.Time
	lastErr    error

	stop chan struct{}
	done chan struct{}
}

// WatchVIP starts polling hosts every interval for vip, with a netlink
// socket of its own in each host's namespace. Close stops it.
func WatchVIP(hosts []*netlab.Host, vip netip.Addr, every time.Duration) (*VIPWatch, error) {
	w := &VIPWatch{vip: vip, held: make([][]Interval, len(hosts)), stop: make(chan struct{}), done: make(chan struct{})}
	for _, h := range hosts {
		ns, err := netns.GetFromName(h.NS)
		if err != nil {
			w.closeHandles()
			return nil, fmt.Errorf("chaoslab: namespace %s: %w", h.NS, err)
		}
		nl, err := netlink.NewHandleAt(ns)
		ns.Close()
		if err != nil {
			w.closeHandles()
			return nil, fmt.Errorf("chaoslab: netlink in %s: %w", h.NS, err)
		}
		w.handles = append(w.handles, nl)
	}
	w.poll(time.Now())
	go w.run(every)
	return w, nil
}

func (w *VIPWatch) run(every time.Duration) {
	defer close(w.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case now := <-t.C:
			w.poll(now)
		}
	}
}

func (w *VIPWatch) poll(now time.Time) {
	for i, nl := range w.handles {
		has, err := hasAddr(nl, w.vip)
		w.mu.Lock()
		if err != nil {
			w.lastErr = err
			w.mu.Unlock()
			continue
		}
		ivs := w.held[i]
		open := len(ivs) > 0 && ivs[len(ivs)-1].To.IsZero()
		switch {
		case has && !open:
			w.held[i] = append(ivs, Interval{From: now})
			w.lastChange = now
		case !has && open:
			ivs[len(ivs)-1].To = now
			w.lastChange = now
		}
		w.mu.Unlock()
	}
}

// hasAddr reports whether an interface of nl's namespace other than lo or
// a dummy holds a: where VRRP puts it. The copy nlb's fast path puts on lo
// or dummyvip0 on every controller (a real server's) does not hold the VIP
// for clients: it answers no ARP.
func hasAddr(nl *netlink.Handle, a netip.Addr) (bool, error) {
	family := netlink.FAMILY_V4
	if a.Is6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := nl.AddrList(nil, family)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return false, err
	}
	for _, x := range addrs {
		if ip, ok := netip.AddrFromSlice(x.IP); ok && ip.Unmap() == a {
			l, lerr := nl.LinkByIndex(x.LinkIndex)
			if lerr != nil {
				return false, lerr
			}
			if l.Attrs().Flags&net.FlagLoopback != 0 || l.Type() == "dummy" {
				continue
			}
			return true, nil
		}
	}
	return false, err
}

// Holders returns the indexes of the hosts holding the address at the
// last poll.
func (w *VIPWatch) Holders() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []int
	for i, ivs := range w.held {
		if len(ivs) > 0 && ivs[len(ivs)-1].To.IsZero() {
			out = append(out, i)
		}
	}
	return out
}

// Held returns a copy of every host's intervals; the open one of a host
// still holding the address has a zero To.
func (w *VIPWatch) Held() [][]Interval {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([][]Interval, len(w.held))
	for i, ivs := range w.held {
		out[i] = slices.Clone(ivs)
	}
	return out
}

// LastChange is when the set of holders last changed.
func (w *VIPWatch) LastChange() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastChange
}

// Err returns the last polling error, if any.
func (w *VIPWatch) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastErr
}

// Close stops polling and closes the netlink sockets.
func (w *VIPWatch) Close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
		<-w.done
	}
	w.closeHandles()
}

func (w *VIPWatch) closeHandles() {
	for _, nl := range w.handles {
		nl.Close()
	}
	w.handles = nil
}
