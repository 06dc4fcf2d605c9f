package vrrp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The tests in this file run Instances under testing/synctest: time is
// fake and only advances when every goroutine of the bubble is blocked, so
// failover times can be asserted exactly against the RFC formulas.

var vip4 = netip.MustParseAddr("192.0.2.100")

// hub is an in-memory LAN: what one port writes to the multicast group
// reaches every other open port; unicast reaches the port with that
// address. It records every advert written.
type hub struct {
	mu       sync.Mutex
	ports    []*hubPort
	lastFrom map[netip.Addr]time.Time // last delivery per source
	wire     []wireAdvert
}

type wireAdvert struct {
	at       time.Time
	src, dst netip.Addr
	prio     uint8
}

type hubFrame struct {
	b    []byte
	info PacketInfo
}

type hubPort struct {
	hub    *hub
	addr   netip.Addr
	in     chan hubFrame
	closed chan struct{}
	once   sync.Once
	muted  bool          // guarded by hub.mu: writes are lost (a crashed node)
	stall  time.Duration // guarded by hub.mu: the next write sleeps this long first
}

func newHub() *hub { return &hub{lastFrom: map[netip.Addr]time.Time{}} }

func (h *hub) port(addr netip.Addr) *hubPort {
	p := &hubPort{hub: h, addr: addr, in: make(chan hubFrame, 256), closed: make(chan struct{})}
	h.mu.Lock()
	h.ports = append(h.ports, p)
	h.mu.Unlock()
	return p
}

func (h *hub) mute(p *hubPort, muted bool) {
	h.mu.Lock()
	p.muted = muted
	h.mu.Unlock()
}

func (h *hub) last(src netip.Addr) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastFrom[src]
}

// adverts returns the adverts src put on the wire.
func (h *hub) adverts(src netip.Addr) []wireAdvert {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []wireAdvert
	for _, w := range h.wire {
		if w.src == src {
			out = append(out, w)
		}
	}
	return out
}

func (p *hubPort) ReadFrom(b []byte) (int, PacketInfo, error) {
	select {
	case f := <-p.in:
		return copy(b, f.b), f.info, nil
	case <-p.closed:
		return 0, PacketInfo{}, net.ErrClosed
	}
}

func (p *hubPort) WriteTo(b []byte, dst netip.Addr) error {
	select {
	case <-p.closed:
		return net.ErrClosed
	default:
	}
	h := p.hub
	h.mu.Lock()
	stall := p.stall
	p.stall = 0
	h.mu.Unlock()
	time.Sleep(stall) // wedged in sendmsg, or stopped there
	h.mu.Lock()
	defer h.mu.Unlock()
	if p.muted {
		return nil
	}
	ad, err := ParseAdvertisement(b, p.addr, dst)
	if err != nil {
		return err
	}
	now := time.Now()
	h.wire = append(h.wire, wireAdvert{at: now, src: p.addr, dst: dst, prio: ad.Priority})
	h.lastFrom[p.addr] = now
	for _, q := range h.ports {
		if q == p || (!dst.IsMulticast() && q.addr != dst) {
			continue
		}
		q.inject(b, PacketInfo{Src: p.addr, Dst: dst, TTL: TTL, IfIndex: 1})
	}
	return nil
}

// inject delivers a packet as if received from the network.
func (p *hubPort) inject(b []byte, info PacketInfo) {
	select {
	case <-p.closed:
	case p.in <- hubFrame{b: append([]byte(nil), b...), info: info}:
	default: // queue full: lost
	}
}

func (p *hubPort) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

// fxLog records effect calls; AddVIPs fails addFails times first.
type fxLog struct {
	mu          sync.Mutex
	calls       []fxCall
	addFails    int
	removeFails int
	announceErr error
	// With lifetimes, the effects include RefreshVIPs (recorded as
	// "refresh"); refreshErr makes it fail. The next Announce sleeps for
	// stall first: a wedged loop, or a stopped process.
	lifetimes  bool
	refreshErr error
	stall      time.Duration
}

type fxCall struct {
	at       time.Time
	op       string
	lifetime time.Duration // of add and refresh
}

func (f *fxLog) record(op string) {
	f.recordLifetime(op, 0)
}

func (f *fxLog) recordLifetime(op string, lifetime time.Duration) {
	f.mu.Lock()
	f.calls = append(f.calls, fxCall{time.Now(), op, lifetime})
	f.mu.Unlock()
}

func (f *fxLog) effects() Effects {
	fx := Effects{
		AddVIPs: func(_ context.Context, lifetime time.Duration) error {
			f.recordLifetime("add", lifetime)
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.addFails > 0 {
				f.addFails--
				return errors.New("netlink: operation not permitted")
			}
			return nil
		},
		RemoveVIPs: func(context.Context) error {
			f.record("remove")
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.removeFails > 0 {
				f.removeFails--
				return errors.New("netlink: no such device")
			}
			return nil
		},
		Announce: func(context.Context) error {
			f.record("announce")
			f.mu.Lock()
			stall := f.stall
			f.stall = 0
			f.mu.Unlock()
			time.Sleep(stall)
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.announceErr
		},
	}
	if f.lifetimes {
		fx.RefreshVIPs = func(_ context.Context, lifetime time.Duration) error {
			f.recordLifetime("refresh", lifetime)
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.refreshErr
		}
	}
	return fx
}

// since returns the calls at or after t.
func (f *fxLog) since(t time.Time) []fxCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fxCall
	for _, c := range f.calls {
		if !c.at.Before(t) {
			out = append(out, c)
		}
	}
	return out
}

func (f *fxLog) times(op string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []time.Time
	for _, c := range f.calls {
		if c.op == op {
			out = append(out, c.at)
		}
	}
	return out
}

func (f *fxLog) ops() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.op)
	}
	return out
}

type node struct {
	inst   *Instance
	port   *hubPort
	fx     *fxLog
	cancel context.CancelFunc
	done   chan error
	start  time.Time
}

// instCfg is a k0s-like VRRPv2 instance: PASS auth, 1 s adverts.
func instCfg(name string, prio uint8, addr netip.Addr) InstanceConfig {
	return InstanceConfig{
		Name:         name,
		Machine:      v2cfg(prio, addr),
		Filter:       Filter{AuthType: AuthPassword, AuthData: [8]byte{'s', 'e', 'c', 'r', 'e', 't'}},
		Addresses:    []netip.Addr{vip4},
		Destinations: []netip.Addr{MulticastGroup(false)},
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() && os.Getenv("NLB_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

func startNode(t *testing.T, h *hub, cfg InstanceConfig, m *Metrics) *node {
	t.Helper()
	n := &node{port: h.port(cfg.Machine.Primary), fx: &fxLog{}, done: make(chan error, 1), start: time.Now()}
	inst, err := NewInstance(cfg, n.port, n.fx.effects(), testLogger(t), m)
	if err != nil {
		t.Fatal(err)
	}
	n.inst = inst
	n.run()
	return n
}

func (n *node) run() {
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { n.done <- n.inst.Run(ctx) }()
	synctest.Wait()
}

// stop cancels the node's Run (a graceful stop) and returns its error.
func (n *node) stop() error {
	n.cancel()
	return <-n.done
}

func stopAll(t *testing.T, ns ...*node) {
	t.Helper()
	for _, n := range ns {
		select {
		case <-n.done: // already stopped
			continue
		default:
		}
		if err := n.stop(); err != nil {
			t.Errorf("%s: Run = %v", n.inst.name, err)
		}
	}
}

func sleep(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func wantState(t *testing.T, n *node, want State) InstanceStatus {
	t.Helper()
	st := n.inst.Status()
	if st.State != want {
		t.Fatalf("%s: state %v, want %v (last: %q)", st.Name, st.State, want, st.LastReason)
	}
	return st
}

func TestInstanceElection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		t0 := time.Now()
		a := startNode(t, h, instCfg("a", 100, addrA), nil)
		b := startNode(t, h, instCfg("b", 150, addrB), nil)
		c := startNode(t, h, instCfg("c", 120, addrC), nil)
		defer stopAll(t, a, b, c)
		sleep(10 * time.Second)

		st := wantState(t, b, Master)
		// No Master: the highest priority's Master_Down_Interval runs out
		// first: 3 + (256-150)/256 s.
		if got := st.LastTransition.Sub(t0); got != 3414062500 {
			t.Errorf("b became Master at +%v, want +3.4140625s", got)
		}
		if st.Master != addrB || st.Transitions != 2 || !st.VIPsConfigured || st.Priority != 150 {
			t.Errorf("b status %+v", st)
		}
		if r := st.Recent; len(r) != 2 || r[0].From != Initialize || r[0].To != Backup ||
			r[1].From != Backup || r[1].To != Master || !r[1].At.Equal(st.LastTransition) || r[1].Reason != st.LastReason {
			t.Errorf("b recent transitions %+v", r)
		}
		for _, n := range []*node{a, c} {
			if st := wantState(t, n, Backup); st.Master != addrB || st.Transitions != 1 || st.VIPsConfigured {
				t.Errorf("%s status %+v", st.Name, st)
			}
		}
		// Stale VIPs are removed once at start, before anything else.
		if got := a.fx.ops(); len(got) != 1 || got[0] != "remove" || !a.fx.times("remove")[0].Equal(t0) {
			t.Errorf("a effects %v", got)
		}
		if got := b.fx.ops(); len(got) < 3 || got[0] != "remove" || got[1] != "add" || got[2] != "announce" {
			t.Errorf("b effects %v", got)
		}
		// The Master advertises every second.
		ads := h.adverts(addrB)
		if len(ads) != 7 {
			t.Errorf("b sent %d adverts in 10s, want 7", len(ads))
		}
		for k, w := range ads {
			if want := t0.Add(3414062500 + time.Duration(k)*time.Second); !w.at.Equal(want) || w.prio != 150 {
				t.Errorf("advert %d at +%v prio %d, want +%v prio 150", k, w.at.Sub(t0), w.prio, want.Sub(t0))
			}
		}
		if len(h.adverts(addrA))+len(h.adverts(addrC)) != 0 {
			t.Errorf("backups advertised")
		}
	})
}

// TestInstanceElectionEqualPriority: k0s runs every node at priority 200;
// all time out together and the highest primary address wins (RFC 9568
// §6.4.3 tie-break).
func TestInstanceElectionEqualPriority(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		a := startNode(t, h, instCfg("a", 200, addrA), nil)
		c := startNode(t, h, instCfg("c", 200, addrC), nil)
		b := startNode(t, h, instCfg("b", 200, addrB), nil)
		defer stopAll(t, a, b, c)
		sleep(10 * time.Second)
		wantState(t, c, Master)
		for _, n := range []*node{a, b} {
			if st := wantState(t, n, Backup); st.Master != addrC || st.VIPsConfigured {
				t.Errorf("%s status %+v", st.Name, st)
			}
		}
	})
}

// TestInstanceMasterCrash: the Master stops sending (crash, cable); the
// Backup takes over Master_Down_Interval after the last advert it heard,
// then the two Masters heal when the old one is heard again.
func TestInstanceMasterCrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		a := startNode(t, h, instCfg("a", 200, addrB), nil)
		b := startNode(t, h, instCfg("b", 100, addrA), nil)
		defer stopAll(t, a, b)
		sleep(10 * time.Second)
		wantState(t, a, Master)

		h.mute(a.port, true)
		lastHeard := h.last(addrB)
		sleep(10 * time.Second)
		st := wantState(t, b, Master)
		// Master_Down_Interval for priority 100: 3 + 156/256 s.
		if got := st.LastTransition.Sub(lastHeard); got != 3609375*time.Microsecond {
			t.Errorf("takeover %v after the last advert, want 3.609375s", got)
		}
		if want := "master down timer expired (no advertisement for 3.609s)"; st.LastReason != want {
			t.Errorf("reason %q, want %q", st.LastReason, want)
		}
		wantState(t, a, Master) // split brain while partitioned

		h.mute(a.port, false)
		sleep(2 * time.Second)
		wantState(t, a, Master)
		if st := wantState(t, b, Backup); st.LastReason != "higher priority 200 from 192.0.2.2" {
			t.Errorf("b reason %q", st.LastReason)
		}
		if ops := b.fx.ops(); ops[len(ops)-1] != "remove" {
			t.Errorf("b effects %v", ops)
		}
	})
}

// TestInstanceGracefulStop: cancelling Run sends a priority-0 advert; the
// Backup takes over after Skew_Time (RFC 3768 §6.4.2).
func TestInstanceGracefulStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		met, _ := NewMetrics(nil)
		a := startNode(t, h, instCfg("a", 200, addrB), met)
		b := startNode(t, h, instCfg("b", 100, addrA), met)
		defer stopAll(t, b)
		sleep(10 * time.Second)
		wantState(t, a, Master)

		stopAt := time.Now()
		if err := a.stop(); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		ads := h.adverts(addrB)
		if last := ads[len(ads)-1]; last.prio != 0 || !last.at.Equal(stopAt) {
			t.Errorf("last advert %+v, want priority 0 at the stop", last)
		}
		if ops := a.fx.ops(); ops[len(ops)-1] != "remove" || !a.fx.times("remove")[1].Equal(stopAt) {
			t.Errorf("a effects %v", ops)
		}
		select {
		case <-a.port.closed:
		default:
			t.Error("conn not closed")
		}
		if st := a.inst.Status(); st.State != Initialize || st.VIPsConfigured {
			t.Errorf("a status %+v", st)
		}
		if got := testutil.ToFloat64(met.state.WithLabelValues("a", "51")); got != 0 {
			t.Errorf("a state gauge %v", got)
		}

		sleep(2 * time.Second)
		st := wantState(t, b, Master)
		// Skew_Time for priority 100: 156/256 s.
		if got := st.LastTransition.Sub(stopAt); got != 609375*time.Microsecond {
			t.Errorf("takeover %v after the release, want 0.609375s", got)
		}
		if !strings.HasPrefix(st.LastReason, "priority 0 release from 192.0.2.2") {
			t.Errorf("reason %q", st.LastReason)
		}
		if got := testutil.ToFloat64(met.transitions.WithLabelValues("b", "51", "Backup", "Master")); got != 1 {
			t.Errorf("b Backup->Master transitions %v", got)
		}
		if got := testutil.ToFloat64(met.state.WithLabelValues("b", "51")); got != 2 {
			t.Errorf("b state gauge %v", got)
		}
	})
}

// TestInstanceHandoverOnShutdown: with HandoverOnShutdown a Master that is
// stopped sends its priority-0 advert but keeps the VIPs until the Backup
// speaks (after its Skew_Time), and only then returns; alone, it waits at
// most the Master_Down_Interval of priority 0.
func TestInstanceHandoverOnShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		cfg := instCfg("a", 200, addrB)
		cfg.HandoverOnShutdown = true
		a := startNode(t, h, cfg, nil)
		b := startNode(t, h, instCfg("b", 100, addrA), nil)
		defer stopAll(t, b)
		sleep(10 * time.Second)
		wantState(t, a, Master)

		stopAt := time.Now()
		a.cancel()
		synctest.Wait()
		select {
		case err := <-a.done:
			t.Fatalf("Run returned (%v) before a new Master spoke", err)
		default:
		}
		if st := a.inst.Status(); !st.VIPsConfigured {
			t.Errorf("a gave up its VIPs at the stop: %+v", st)
		}
		if ads := h.adverts(addrB); ads[len(ads)-1].prio != 0 {
			t.Errorf("last advert %+v, want priority 0", ads[len(ads)-1])
		}
		var err error
		select {
		case err = <-a.done:
		case <-time.After(time.Minute):
			t.Fatal("Run did not return after the handover")
		}
		returned := time.Now()
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
		st := wantState(t, b, Master)
		// Skew_Time for priority 100: 156/256 s; a stops as b's first
		// advert arrives.
		if got := st.LastTransition.Sub(stopAt); got != 609375*time.Microsecond {
			t.Errorf("b took over %v after the stop, want 0.609375s", got)
		}
		removed := a.fx.times("remove")
		if len(removed) < 2 || !removed[1].Equal(st.LastTransition) || !returned.Equal(st.LastTransition) {
			t.Errorf("a removed its VIPs at %v and returned at %v, want when b took over at %v", removed, returned, st.LastTransition)
		}
		if st := a.inst.Status(); st.State != Initialize || st.VIPsConfigured {
			t.Errorf("a status after Run %+v", st)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		cfg := instCfg("alone", 200, addrB)
		cfg.HandoverOnShutdown = true
		a := startNode(t, h, cfg, nil)
		sleep(10 * time.Second)
		wantState(t, a, Master)
		stopAt := time.Now()
		a.cancel()
		var err error
		select {
		case err = <-a.done:
		case <-time.After(time.Minute):
			t.Fatal("Run did not return with nobody to hand over to")
		}
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
		// The Master_Down_Interval of a priority-0 router at 1 s:
		// 3 + 256/256 s, longer than any Backup's.
		if got := time.Since(stopAt); got != 4*time.Second {
			t.Errorf("alone, Run returned %v after the stop, want 4s", got)
		}
		if st := a.inst.Status(); st.VIPsConfigured {
			t.Errorf("VIPs left: %+v", st)
		}
	})
}

func TestInstancePreemption(t *testing.T) {
	for _, preempt := range []bool{true, false} {
		t.Run(map[bool]string{true: "preempt", false: "nopreempt"}[preempt], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHub()
				b := startNode(t, h, instCfg("b", 100, addrA), nil)
				sleep(5 * time.Second)
				wantState(t, b, Master)

				cfg := instCfg("a", 200, addrB)
				cfg.Machine.Preempt = preempt
				a := startNode(t, h, cfg, nil)
				defer stopAll(t, a, b)
				sleep(10 * time.Second)
				if !preempt {
					wantState(t, a, Backup)
					wantState(t, b, Master)
					return
				}
				st := wantState(t, a, Master)
				// b's lower adverts are discarded, so a's first
				// Master_Down_Interval (3 + 56/256 s) runs out.
				if got := st.LastTransition.Sub(a.start); got != 3218750*time.Microsecond {
					t.Errorf("a took over %v after start, want 3.21875s", got)
				}
				if !strings.HasPrefix(st.LastReason, "preempting lower priority 100 from 192.0.2.1") {
					t.Errorf("reason %q", st.LastReason)
				}
				if st := wantState(t, b, Backup); st.Transitions != 3 {
					t.Errorf("b transitions %d", st.Transitions)
				}
			})
		})
	}
}

func TestInstanceGARPSchedule(t *testing.T) {
	const iv = DefaultGARPInterval
	rel := func(t0 time.Time, ts []time.Time) []time.Duration {
		var out []time.Duration
		for _, x := range ts {
			out = append(out, x.Sub(t0))
		}
		return out
	}
	tests := []struct {
		name string
		garp GARPConfig
		want []time.Duration
	}{
		{"keepalived defaults", GARPConfig{}, []time.Duration{
			0, iv, 2 * iv, 3 * iv, 4 * iv,
			5 * time.Second, 5*time.Second + iv, 5*time.Second + 2*iv, 5*time.Second + 3*iv, 5*time.Second + 4*iv,
		}},
		{"one burst, back to back", GARPConfig{MasterDelay: -1, MasterRepeat: 3, Interval: -1}, []time.Duration{0, 0, 0}},
		{"refresh", GARPConfig{MasterDelay: -1, MasterRepeat: 1, MasterRefresh: 2 * time.Second, MasterRefreshRepeat: 2, Interval: 100 * ms},
			[]time.Duration{0, 2 * time.Second, 2100 * ms, 4 * time.Second, 4100 * ms, 6 * time.Second, 6100 * ms, 8 * time.Second, 8100 * ms}},
		{"second burst and refresh", GARPConfig{MasterDelay: 3 * time.Second, MasterRepeat: 2, MasterRefresh: 4 * time.Second},
			[]time.Duration{0, iv, 3 * time.Second, 3*time.Second + iv, 4 * time.Second, 8 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHub()
				cfg := instCfg("owner", 255, addrA)
				cfg.GARP = tt.garp
				t0 := time.Now()
				n := startNode(t, h, cfg, nil)
				defer stopAll(t, n)
				sleep(9 * time.Second)
				got := rel(t0, n.fx.times("announce"))
				if len(got) != len(tt.want) {
					t.Fatalf("announcements at %v, want %v", got, tt.want)
				}
				for k := range got {
					if got[k] != tt.want[k] {
						t.Fatalf("announcements at %v, want %v", got, tt.want)
					}
				}
			})
		})
	}
}

// TestInstanceGARPCancelled: leaving Master cancels the second burst and the
// refreshes.
func TestInstanceGARPCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		cfg := instCfg("a", 100, addrA)
		cfg.GARP.MasterRefresh = time.Second
		a := startNode(t, h, cfg, nil)
		sleep(4 * time.Second) // Master at 3.609375 s
		wantState(t, a, Master)
		b := startNode(t, h, instCfg("b", 200, addrB), nil)
		defer stopAll(t, a, b)
		sleep(20 * time.Second) // b preempts at 7.21875 s
		st := wantState(t, a, Backup)
		ann := a.fx.times("announce")
		// Burst of 5 from 3.609375 s, refreshes at 4.6, 5.6 and 6.6 s.
		if len(ann) != 8 {
			t.Errorf("%d announcements, want 8", len(ann))
		}
		if last := ann[len(ann)-1]; !last.Before(st.LastTransition) {
			t.Errorf("announcement at %v after leaving Master at %v", last, st.LastTransition)
		}
	})
}

// TestInstanceReannounce: two Backups of equal priority whose timers run
// out together both become Master and both announce the VIP; the winner
// (higher address) hears the loser's advert and announces again, one
// burst, so that clients that heard the loser last come back to it.
func TestInstanceReannounce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		garp := GARPConfig{MasterDelay: -1, MasterRepeat: 2, Interval: 100 * ms}
		ca, cb := instCfg("a", 100, addrA), instCfg("b", 100, addrB)
		ca.GARP, cb.GARP = garp, garp
		a := startNode(t, h, ca, nil)
		b := startNode(t, h, cb, nil)
		defer stopAll(t, a, b)
		sleep(10 * time.Second)
		wantState(t, a, Backup)
		st := wantState(t, b, Master)
		if st.Transitions != 2 {
			t.Fatalf("b: %d transitions, want Initialize->Backup->Master", st.Transitions)
		}
		ann := b.fx.times("announce")
		// The loser's advert arrives as b becomes Master: b's own burst
		// (t1, +100ms), one answer at once, one at ReannounceEcho, and a
		// burst of 2 after ReannounceDelay (+100ms, +200ms).
		t1 := st.LastTransition
		want := []time.Time{t1, t1, t1.Add(ReannounceEcho), t1.Add(100 * ms), t1.Add(ReannounceDelay), t1.Add(ReannounceDelay + 100*ms)}
		if len(ann) != len(want) {
			t.Fatalf("b announced at %v, want %v", ann, want)
		}
		for k := range want {
			if !ann[k].Equal(want[k]) {
				t.Fatalf("b announced at %v, want %v", ann, want)
			}
		}
		if la := a.fx.times("announce"); len(la) != 1 || !la[0].Equal(t1) {
			t.Errorf("a, the loser, announced at %v, want once at %v before stepping down", la, t1)
		}
	})
}

// TestInstanceDrops: packets that fail the Filter are counted by reason and
// do not reset the Master_Down_Timer.
func TestInstanceDrops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		met, err := NewMetrics(nil)
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		a := startNode(t, h, instCfg("a", 100, addrA), met)
		defer stopAll(t, a)

		good := func(mod func(*Advertisement)) []byte {
			ad := &Advertisement{Version: Version2, VRID: 51, Priority: 200, Interval: time.Second,
				AuthType: AuthPassword, AuthData: [8]byte{'s', 'e', 'c', 'r', 'e', 't'}, Addresses: []netip.Addr{vip4}}
			if mod != nil {
				mod(ad)
			}
			b, err := ad.Marshal(addrB, MulticastGroup(false), ChecksumPseudoHeader)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		info := PacketInfo{Src: addrB, Dst: MulticastGroup(false), TTL: TTL}
		badSum := good(nil)
		badSum[6] ^= 0xff
		bad := []struct {
			reason DropReason
			b      []byte
			info   PacketInfo
		}{
			{DropTTL, good(nil), PacketInfo{Src: addrB, Dst: MulticastGroup(false), TTL: 64}},
			{DropChecksum, badSum, info},
			{DropVRID, good(func(ad *Advertisement) { ad.VRID = 52 }), info},
			{DropAuth, good(func(ad *Advertisement) { ad.AuthData = [8]byte{'w', 'r', 'o', 'n', 'g'} }), info},
			{DropInterval, good(func(ad *Advertisement) { ad.Interval = 2 * time.Second }), info},
			{DropShort, []byte{0x21, 51, 200}, info},
			{DropVersion, []byte{0x31, 51, 200, 1, 0, 100, 0, 0, 192, 0, 2, 100}, info},
		}
		for range 3 { // three rounds, one per second
			for _, p := range bad {
				a.port.inject(p.b, p.info)
			}
			sleep(time.Second)
		}
		sleep(2 * time.Second)
		st := wantState(t, a, Master)
		if got := st.LastTransition.Sub(t0); got != 3609375*time.Microsecond {
			t.Errorf("took over at +%v despite dropped adverts, want +3.609375s", got)
		}
		for _, p := range bad {
			if got := testutil.ToFloat64(met.dropped.WithLabelValues("a", "51", string(p.reason))); got != 3 {
				t.Errorf("dropped{reason=%q} = %v, want 3", p.reason, got)
			}
		}
		if got := testutil.ToFloat64(met.received.WithLabelValues("a", "51")); got != 0 {
			t.Errorf("received = %v", got)
		}
		// A good advert is counted and obeyed.
		a.port.inject(good(nil), info)
		synctest.Wait()
		wantState(t, a, Backup)
		if got := testutil.ToFloat64(met.received.WithLabelValues("a", "51")); got != 1 {
			t.Errorf("received = %v", got)
		}
		if got := testutil.ToFloat64(met.sent.WithLabelValues("a", "51")); got != 2 {
			t.Errorf("sent = %v, want 2 (at 3.6 and 4.6 s)", got)
		}
	})
}

func TestInstanceSetPriority(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		a := startNode(t, h, instCfg("a", 200, addrB), nil)
		b := startNode(t, h, instCfg("b", 100, addrA), nil)
		defer stopAll(t, a, b)
		sleep(10 * time.Second)
		wantState(t, a, Master)

		// 0: release; b takes over after its Skew_Time.
		at := time.Now()
		a.inst.SetPriority(0)
		synctest.Wait()
		// Make before break: a keeps the VIPs until b speaks.
		if st := wantState(t, a, Backup); st.Priority != 0 || !st.VIPsConfigured {
			t.Errorf("a status %+v", st)
		}
		sleep(10 * time.Second)
		st := wantState(t, b, Master)
		if st.LastTransition.Sub(at) != 609375*time.Microsecond {
			t.Errorf("b took over %v after the release", st.LastTransition.Sub(at))
		}
		if sa := wantState(t, a, Backup); sa.VIPsConfigured { // dormant, VIPs gone
			t.Errorf("a status %+v", sa)
		}
		removed := a.fx.times("remove")
		if len(removed) == 0 || !removed[len(removed)-1].Equal(st.LastTransition) {
			t.Errorf("a removed its VIPs at %v, want when b took over at %v", removed, st.LastTransition)
		}

		// Back to 200: a preempts after a full Master_Down_Interval.
		at = time.Now()
		a.inst.SetPriority(200)
		sleep(10 * time.Second)
		if st := wantState(t, a, Master); st.LastTransition.Sub(at) != 3218750*time.Microsecond {
			t.Errorf("a took over %v after the restore, want 3.21875s", st.LastTransition.Sub(at))
		}
		wantState(t, b, Backup)

		// Lowered below b: a advertises 50 at once; b preempts when its
		// timer, last reset by a priority-200 advert, runs out.
		a.inst.SetPriority(50)
		sleep(10 * time.Second)
		wantState(t, b, Master)
		if st := wantState(t, a, Backup); st.Priority != 50 {
			t.Errorf("a priority %d", st.Priority)
		}
	})
}

func TestInstanceSetPriorityBeforeRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		n := &node{port: h.port(addrA), fx: &fxLog{}, done: make(chan error, 1)}
		inst, err := NewInstance(instCfg("a", 255, addrA), n.port, n.fx.effects(), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		n.inst = inst
		inst.SetPriority(100) // no longer the owner: starts as Backup
		n.run()
		defer stopAll(t, n)
		if st := wantState(t, n, Backup); st.Priority != 100 {
			t.Errorf("priority %d", st.Priority)
		}
	})
}

// TestInstanceAddVIPsRetry: a Master whose AddVIPs fails retries it every
// advert interval and only announces once the addresses are up.
func TestInstanceAddVIPsRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		met, _ := NewMetrics(nil)
		t0 := time.Now()
		n := &node{port: h.port(addrA), fx: &fxLog{addFails: 2}, done: make(chan error, 1)}
		inst, err := NewInstance(instCfg("owner", 255, addrA), n.port, n.fx.effects(), nil, met)
		if err != nil {
			t.Fatal(err)
		}
		n.inst = inst
		n.run()
		defer stopAll(t, n)
		if st := wantState(t, n, Master); st.VIPsConfigured {
			t.Errorf("VIPs configured after a failed AddVIPs")
		}
		sleep(3 * time.Second)
		adds := n.fx.times("add")
		if len(adds) != 3 || adds[1].Sub(t0) != time.Second || adds[2].Sub(t0) != 2*time.Second {
			t.Errorf("AddVIPs at %v", adds)
		}
		ann := n.fx.times("announce")
		if len(ann) == 0 || ann[0].Sub(t0) != 2*time.Second {
			t.Errorf("first announcement at %v, want +2s", ann)
		}
		if !n.inst.Status().VIPsConfigured {
			t.Error("VIPs not configured after the retry")
		}
		if got := testutil.ToFloat64(met.effectErrors.WithLabelValues("owner", effectAddVIPs)); got != 2 {
			t.Errorf("effect errors %v", got)
		}
	})
}

// TestInstanceIPv6Crash: VRRPv3 over IPv6 at 10 cs: the Backup takes over
// 360.9375 ms after the last advert (vrrp.md §5: 360.9 ms).
func TestInstanceIPv6Crash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		ll1, ll2 := netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fe80::2")
		cfg := func(name string, prio uint8, primary netip.Addr) InstanceConfig {
			return InstanceConfig{
				Name:         name,
				Machine:      v3cfg(prio, 100*ms, primary),
				Addresses:    []netip.Addr{netip.MustParseAddr("2001:db8::100")},
				Destinations: []netip.Addr{MulticastGroup(true)},
			}
		}
		a := startNode(t, h, cfg("a", 200, ll2), nil)
		b := startNode(t, h, cfg("b", 100, ll1), nil)
		defer stopAll(t, a, b)
		sleep(2 * time.Second)
		wantState(t, a, Master)
		if st := wantState(t, b, Backup); st.MasterDownInterval != 360937500 || st.MasterAdverInterval != 100*ms {
			t.Errorf("b timers %v %v", st.MasterAdverInterval, st.MasterDownInterval)
		}
		h.mute(a.port, true)
		last := h.last(ll2)
		sleep(time.Second)
		if st := wantState(t, b, Master); st.LastTransition.Sub(last) != 360937500 {
			t.Errorf("takeover after %v", st.LastTransition.Sub(last))
		}
	})
}

// TestInstanceUnicast: VRRPv3 over IPv4 with unicast peers and the RFC 9568
// message-only checksum.
func TestInstanceUnicast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		cfg := func(name string, prio uint8, self, peer netip.Addr) InstanceConfig {
			return InstanceConfig{
				Name:         name,
				Machine:      v3cfg(prio, time.Second, self),
				Filter:       Filter{Unicast: true, Peers: []netip.Addr{peer}},
				Addresses:    []netip.Addr{vip4},
				Destinations: []netip.Addr{peer},
				ChecksumForm: ChecksumMessageOnly,
			}
		}
		a := startNode(t, h, cfg("a", 150, addrA, addrB), nil)
		b := startNode(t, h, cfg("b", 100, addrB, addrA), nil)
		c := startNode(t, h, cfg("c", 250, addrC, addrA), nil) // not a's peer
		defer stopAll(t, a, b, c)
		sleep(10 * time.Second)
		wantState(t, a, Master)
		wantState(t, b, Backup)
		for _, w := range h.adverts(addrA) {
			if w.dst != addrB {
				t.Fatalf("advert to %v", w.dst)
			}
		}
	})
}

func TestInstanceReadError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		n := startNode(t, h, instCfg("owner", 255, addrA), nil)
		sleep(time.Second)
		n.port.Close() // the socket goes away under the instance
		err := <-n.done
		if err == nil || !strings.HasPrefix(err.Error(), "vrrp: ") || !errors.Is(err, net.ErrClosed) {
			t.Errorf("Run = %v", err)
		}
		if ops := n.fx.ops(); ops[len(ops)-1] != "remove" {
			t.Errorf("effects %v", ops)
		}
		if err := n.inst.Run(context.Background()); err == nil {
			t.Error("second Run succeeded")
		}
	})
}

func TestNewInstanceErrors(t *testing.T) {
	conn := newHub().port(addrA)
	tests := []struct {
		name string
		mod  func(*InstanceConfig)
		conn Conn
		want string
	}{
		{"bad machine", func(c *InstanceConfig) { c.Machine.VRID = 0 }, conn, "VRID 0"},
		{"nil conn", func(*InstanceConfig) {}, nil, "nil Conn"},
		{"no destinations", func(c *InstanceConfig) { c.Destinations = nil }, conn, "no destinations"},
		{"no addresses", func(c *InstanceConfig) { c.Addresses = nil }, conn, "no addresses"},
		{"ipv6 vip in v2", func(c *InstanceConfig) { c.Addresses = []netip.Addr{netip.MustParseAddr("2001:db8::1")} }, conn, "not IPv4"},
		{"filter vrid", func(c *InstanceConfig) { c.Filter.VRID = 52 }, conn, "disagrees"},
		{"filter interval", func(c *InstanceConfig) { c.Filter.Interval = 2 * time.Second }, conn, "disagrees"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := instCfg("x", 100, addrA)
			tt.mod(&cfg)
			_, err := NewInstance(cfg, tt.conn, Effects{}, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "vrrp: ") {
				t.Fatalf("err = %v, want a vrrp: error containing %q", err, tt.want)
			}
		})
	}
	cfg := instCfg("", 100, addrA)
	i, err := NewInstance(cfg, conn, Effects{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st := i.Status(); st.Name != "vrid-51" || st.State != Initialize || st.Priority != 100 || st.MasterDownInterval != 3609375*time.Microsecond {
		t.Errorf("status %+v", st)
	}
}

func TestRateLimiter(t *testing.T) {
	var r rateLimiter
	if ok, n := r.allow("ttl", t0); !ok || n != 0 {
		t.Fatal("first event suppressed")
	}
	for range 5 {
		if ok, _ := r.allow("ttl", t0.Add(time.Second)); ok {
			t.Fatal("event within the period allowed")
		}
	}
	if ok, _ := r.allow("auth", t0.Add(time.Second)); !ok {
		t.Fatal("other key suppressed")
	}
	if ok, n := r.allow("ttl", t0.Add(dropLogEvery)); !ok || n != 5 {
		t.Fatalf("after the period: %v %d, want true 5", ok, n)
	}
}

// failingConn fails every write.
type failingConn struct{ *hubPort }

func (failingConn) WriteTo([]byte, netip.Addr) error { return errors.New("sendmsg: no buffer space") }

// TestInstanceEffectErrors: failures are counted and never stop the loop; a
// failed RemoveVIPs is retried on the next advert.
func TestInstanceEffectErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		met, _ := NewMetrics(nil)
		master := startNode(t, h, instCfg("m", 200, addrB), nil)

		n := &node{port: h.port(addrA), fx: &fxLog{removeFails: 2}, done: make(chan error, 1)}
		inst, err := NewInstance(instCfg("b", 100, addrA), n.port, n.fx.effects(), nil, met)
		if err != nil {
			t.Fatal(err)
		}
		n.inst = inst
		n.run()
		sleep(5 * time.Second)
		wantState(t, n, Backup)
		// Stale removal at start failed, first retry (at the first advert)
		// failed, the second succeeded; no more after that.
		if got := len(n.fx.times("remove")); got != 3 {
			t.Errorf("RemoveVIPs called %d times, want 3", got)
		}
		if got := testutil.ToFloat64(met.effectErrors.WithLabelValues("b", effectRemoveVIPs)); got != 2 {
			t.Errorf("remove errors %v", got)
		}
		stopAll(t, master, n)

		// Sends and announcements that fail.
		o := &node{port: h.port(addrC), fx: &fxLog{announceErr: errors.New("arp: EPERM")}, done: make(chan error, 1)}
		inst, err = NewInstance(instCfg("o", 255, addrC), failingConn{o.port}, o.fx.effects(), nil, met)
		if err != nil {
			t.Fatal(err)
		}
		o.inst = inst
		o.run()
		sleep(2500 * ms)
		st := wantState(t, o, Master)
		if !st.VIPsConfigured {
			t.Error("VIPs not configured")
		}
		if err := o.stop(); err != nil {
			t.Fatal(err)
		}
		// Adverts at 0, 1, 2 s and the release at 2.5 s.
		if got := testutil.ToFloat64(met.effectErrors.WithLabelValues("o", effectSend)); got != 4 {
			t.Errorf("send errors %v, want 4", got)
		}
		if got := testutil.ToFloat64(met.effectErrors.WithLabelValues("o", effectAnnounce)); got != 5 {
			t.Errorf("announce errors %v, want 5", got)
		}
	})
}

// TestInstanceNilEffects: Effects funcs may be nil.
func TestInstanceNilEffects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		inst, err := NewInstance(instCfg("o", 255, addrA), h.port(addrA), Effects{}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- inst.Run(ctx) }()
		sleep(6 * time.Second)
		if st := inst.Status(); st.State != Master || !st.VIPsConfigured {
			t.Errorf("status %+v", st)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestInstanceFineSleep: with FineSleep the runner wakes FineSleepLead before
// a deadline and sleeps the rest with FineSleep; the takeover still happens
// exactly at Master_Down_Interval.
func TestInstanceFineSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu   sync.Mutex
			naps []time.Duration
			bcfg = instCfg("b", 100, addrA)
		)
		bcfg.FineSleep = func(d time.Duration) {
			mu.Lock()
			naps = append(naps, d)
			mu.Unlock()
			time.Sleep(d)
		}
		h := newHub()
		a := startNode(t, h, instCfg("a", 200, addrB), nil)
		b := startNode(t, h, bcfg, nil)
		defer stopAll(t, a, b)
		sleep(10 * time.Second)
		wantState(t, a, Master)

		h.mute(a.port, true)
		lastHeard := h.last(addrB)
		sleep(10 * time.Second)
		st := wantState(t, b, Master)
		if got := st.LastTransition.Sub(lastHeard); got != 3609375*time.Microsecond {
			t.Errorf("takeover %v after the last advert, want 3.609375s", got)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(naps) == 0 {
			t.Fatal("FineSleep was never called")
		}
		for _, d := range naps {
			if d <= 0 || d > FineSleepLead {
				t.Errorf("FineSleep(%v), want 0 < d <= %v", d, FineSleepLead)
			}
		}
	})
}

// TestInstanceFault: the interface going down takes the VIPs off at once;
// back up, the node is a Backup again.
func TestInstanceFault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		a := startNode(t, h, instCfg("a", 200, addrB), nil)
		b := startNode(t, h, instCfg("b", 100, addrA), nil)
		defer stopAll(t, a, b)
		sleep(10 * time.Second)
		wantState(t, a, Master)
		h.mute(a.port, true) // the link is down: nothing a sends arrives
		down := time.Now()
		a.inst.SetFault(true)
		synctest.Wait()
		if st := wantState(t, a, Backup); !st.Fault || st.VIPsConfigured {
			t.Errorf("a status after the fault %+v", st)
		}
		if rm := a.fx.times("remove"); len(rm) == 0 || !rm[len(rm)-1].Equal(down) {
			t.Errorf("a removed its VIPs at %v, want at once (%v)", rm, down)
		}
		sleep(10 * time.Second)
		wantState(t, b, Master)
		h.mute(a.port, false)
		a.inst.SetFault(false)
		sleep(10 * time.Second)
		// a has the higher priority: it preempts b after Master_Down_Interval.
		if st := wantState(t, a, Master); st.Fault {
			t.Errorf("a status after the link came back %+v", st)
		}
		wantState(t, b, Backup)
	})
}
