//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
	"github.com/nlb-dev/nlb/internal/observe"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Privileged end-to-end tests of the VIP lifetime (issue 10): a Master
// gives its VIPs a finite valid lifetime and refreshes it with its
// adverts, so that the VIP of a killed or stopped nlb goes away by itself
// soon after a Backup takes over, instead of answering ARP beside the new
// Master's forever.

const (
	// lifetimeWait bounds the wait for a dead Master's VIP to expire: 2 s
	// of lifetime at 100 ms intervals, the kernel's check up to a second
	// late, and a busy machine.
	lifetimeWait = 30 * time.Second
	// arpReplies is how many ARP replies the bystander must see, from the
	// new Master only, once the old node's VIP is gone.
	arpReplies = 20
)

// addrWatch records the address notifications for one address in a
// host's namespace (RTNLGRP_IPV4_IFADDR).
type addrWatch struct {
	mu         sync.Mutex
	news, dels int
	firstDel   time.Time
	done       chan struct{}
}

func watchVIP(t *testing.T, h *netlab.Host, vip netip.Addr) *addrWatch {
	t.Helper()
	ns, err := netns.GetFromName(h.NS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	ch := make(chan netlink.AddrUpdate, 1024)
	stop := make(chan struct{})
	w := &addrWatch{done: make(chan struct{})}
	overflow := make(chan error, 1)
	err = netlink.AddrSubscribeWithOptions(ch, stop, netlink.AddrSubscribeOptions{
		Namespace: &ns,
		ErrorCallback: func(err error) {
			if !errors.Is(err, syscall.ENOBUFS) {
				return // EAGAIN when the subscription ends
			}
			select {
			case overflow <- err:
			default:
			}
		},
		ReceiveBufferSize: 1 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(w.done)
		for u := range ch {
			ip, ok := netip.AddrFromSlice(u.LinkAddress.IP)
			if !ok || ip.Unmap() != vip {
				continue
			}
			w.mu.Lock()
			if u.NewAddr {
				w.news++
			} else {
				w.dels++
				if w.firstDel.IsZero() {
					w.firstDel = time.Now()
				}
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-w.done
		select {
		case err := <-overflow:
			t.Errorf("address watch of %s: %v (notifications lost: the test saw not everything)", h.NS, err)
		default:
		}
	})
	return w
}

func (w *addrWatch) counts() (news, dels int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.news, w.dels
}

// onlyAnswers waits for arpReplies ARP replies for the VIP from index from
// on and checks that every one came from mac.
func onlyAnswers(t *testing.T, o *observe.Observer, from int, mac net.HardwareAddr, others ...*netlab.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), lifetimeWait)
	defer cancel()
	for range arpReplies {
		e, i, err := o.WaitFor(ctx, from, func(e observe.Event) bool { return e.Kind == observe.ARPReply })
		if err != nil {
			t.Fatalf("ARP replies for the VIP: %v", err)
		}
		if e.MAC.String() != mac.String() {
			names := []string{}
			for _, h := range others {
				if h.MAC.String() == e.MAC.String() {
					names = append(names, h.Name)
				}
			}
			t.Fatalf("ARP reply from %v %v, want only %v", e.MAC, names, mac)
		}
		from = i + 1
	}
}

// TestLabVIPLifetime: the Master nlb is killed (SIGKILL) or stopped
// (SIGSTOP). The Backup takes over; the old node's VIP, which nothing
// removes, expires within its lifetime, and from then on only the new
// Master answers ARP for it. A stopped Master that resumes (SIGCONT)
// finds the lifetime over: it does not put the VIP back, steps down, and
// takes the VIP back only by preempting; with preempt off it stays
// Backup.
func TestLabVIPLifetime(t *testing.T) {
	netlab.Require(t)
	for _, tc := range []struct {
		name    string
		sig     syscall.Signal
		preempt bool
	}{
		{"kill", syscall.SIGKILL, true},
		{"stop-nopreempt", syscall.SIGSTOP, false},
		{"stop-preempt", syscall.SIGSTOP, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lab := netlab.NewT(t, "", netlab.Options{Hosts: 3})
			vip := lab.VIP4(0)
			h1, h2, by := lab.Hosts[0], lab.Hosts[1], lab.Hosts[2]
			c := startClusterMasterFirst(t, lab.Hosts[:2], vip, 0, func(i int, _ *netlab.Host) vrrpOpts {
				return vrrpOpts{Priority: []int{150, 100}[i], Preempt: boolPtr(tc.preempt)}.fast()
			})
			old, backup := c.nodes[0], c.nodes[1]
			nlbtest.Eventually(t, fastWait, "h1 Master, h2 Backup", func() error { return c.exactlyMaster(old, h1.Addr4) })

			ctx, cancel := context.WithCancel(context.Background())
			o, err := observe.Listen(ctx, observe.Config{Netns: by.NS, Interface: by.IfName, VIP: vip.Addr(), ProbeInterval: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cancel(); o.Wait() })
			w := watchVIP(t, h1, vip.Addr())

			old.signal(tc.sig)
			signalled := time.Now()
			if tc.sig == syscall.SIGSTOP {
				t.Cleanup(func() { _ = old.proc.Signal(syscall.SIGCONT, false, 0) })
			}
			nlbtest.Eventually(t, fastWait, "h2 takes over", all(wantState(backup, vrid, "Master"), hasVIP(h2, vip, true)))
			// Nothing removes h1's VIP but its lifetime.
			nlbtest.Eventually(t, lifetimeWait, "the VIP leaves h1", hasVIP(h1, vip, false))
			t.Logf("h1's VIP expired %v after %v", time.Since(signalled).Round(10*time.Millisecond), tc.sig)
			// The notification reaches the watch's goroutine after the
			// dump that saw the address gone: wait for it, bounded.
			nlbtest.Eventually(t, fastWait, "an RTM_DELADDR for h1's VIP", func() error {
				if _, dels := w.counts(); dels == 0 {
					return errors.New("none seen")
				}
				return nil
			})
			// From now on (a reply h1 sent just before the expiry took
			// microseconds over the veths and is in already).
			onlyAnswers(t, o, o.Len(), h2.MAC, h1)

			if tc.sig != syscall.SIGSTOP {
				return
			}
			newsBefore, _ := w.counts()
			old.signal(syscall.SIGCONT)
			nlbtest.Eventually(t, fastWait, "h1 steps down", func() error {
				in, err := old.inst(vrid)
				if err != nil {
					return err
				}
				if !strings.Contains(in.LastReason, "lifetime ran out") && in.Transitions < 4 {
					return fmt.Errorf("h1 %s (%q)", in.State, in.LastReason)
				}
				return nil
			})
			// The log comes through a pipe: it may lag behind /status.
			nlbtest.Eventually(t, fastWait, "h1 logs that the lifetime ran out", func() error {
				if !strings.Contains(old.log(), "lifetime ran out") {
					return errors.New("not in the log")
				}
				return nil
			})
			if !tc.preempt {
				// It stays Backup: the VIP never comes back to it.
				nlbtest.Consistently(t, 2*time.Second, "h2 stays the only Master", func() error { return c.exactlyMaster(backup, h2.Addr4) })
				if news, _ := w.counts(); news != newsBefore {
					t.Errorf("%d RTM_NEWADDR for h1's VIP after it expired: put back", news-newsBefore)
				}
				onlyAnswers(t, o, o.Len(), h2.MAC, h1)
				return
			}
			// Priority 150 preempts h2 after Master_Down_Interval, as a
			// new Master: one Master, one holder.
			nlbtest.Eventually(t, fastWait, "h1 Master again", func() error { return c.exactlyMaster(old, h1.Addr4) })
			onlyAnswers(t, o, o.Len(), h1.MAC, h2)
		})
	}
}

// TestLabVIPLifetimeLongMaster: a Master at a 30 ms interval (lifetime
// 2 s, a refresh every third advert) keeps its VIP through hundreds of
// refreshes: an address watch sees them as RTM_NEWADDR updates and never
// an RTM_DELADDR, so the VIP was never absent. Alone, the Master can lose
// the VIP only by its lifetime running out, not to a Backup on a busy
// machine.
func TestLabVIPLifetimeLongMaster(t *testing.T) {
	netlab.Require(t)
	const refreshes = 300
	lab := netlab.NewT(t, "", netlab.Options{Hosts: 1})
	h := lab.Hosts[0]
	vip := lab.VIP4(0)
	w := watchVIP(t, h, vip.Addr())
	n := startNLB(t, h, renderNLB(h.IfName, vrrpOpts{VRID: vrid, VIPs: []netip.Prefix{vip}, Version: 3, Interval: 30 * time.Millisecond}))
	nlbtest.Eventually(t, fastWait, "Master", all(wantState(n, vrid, "Master"), hasVIP(h, vip, true)))
	start := time.Now()
	nlbtest.Eventually(t, 10*time.Minute, fmt.Sprintf("%d refreshes", refreshes), func() error {
		news, dels := w.counts()
		if dels > 0 {
			t.Fatalf("RTM_DELADDR for the VIP after %d refreshes", news)
		}
		if news < refreshes {
			return fmt.Errorf("%d refreshes", news)
		}
		return nil
	})
	t.Logf("%d refreshes in %v", refreshes, time.Since(start).Round(time.Second))
	in, err := n.inst(vrid)
	if err != nil {
		t.Fatal(err)
	}
	if in.State != "Master" || in.Transitions != 2 || !in.VIPsConfigured {
		t.Errorf("after the refreshes: %+v, want Master since the start (2 transitions)", in)
	}
	if err := hasVIP(h, vip, true)(); err != nil {
		t.Error(err)
	}
	if strings.Contains(n.log(), "re-added") {
		t.Error("the watcher repaired the VIP during the refreshes")
	}
}
