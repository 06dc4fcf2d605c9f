package vrrp

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestVIPLifetime(t *testing.T) {
	for _, tt := range []struct {
		version  Version
		interval time.Duration
		want     time.Duration
	}{
		// 3 s + 255/256 s -> 4 s, + 1 s.
		{Version2, time.Second, 5 * time.Second},
		{Version2, 2 * time.Second, 8 * time.Second},
		{Version2, 255 * time.Second, 767 * time.Second},
		// 30 ms + 9.96 ms -> 1 s, + 1 s.
		{Version3, 10 * time.Millisecond, 2 * time.Second},
		{Version3, 30 * time.Millisecond, 2 * time.Second},
		// 750 ms + 249 ms < 1 s: still 2 s; 10 ms more and it is 3 s.
		{Version3, 250 * time.Millisecond, 2 * time.Second},
		{Version3, 260 * time.Millisecond, 3 * time.Second},
		{Version3, time.Second, 5 * time.Second},
		{Version3, 40950 * time.Millisecond, 165 * time.Second},
	} {
		c := MachineConfig{Version: tt.version, AdvertInterval: tt.interval}
		got := VIPLifetime(c)
		if got != tt.want {
			t.Errorf("v%d %v: lifetime %v, want %v", tt.version, tt.interval, got, tt.want)
		}
		// A Master that dies just before an advert due to refresh last
		// refreshed N-1 adverts before its last one: its VIPs must
		// outlive the slowest Backup's takeover, counted from that last
		// advert, by most of a second.
		m := &Machine{cfg: c, priority: 1, masterAdverInterval: tt.interval}
		n := (vipRefreshGap(tt.interval) + tt.interval - 1) / tt.interval
		if slack := got - (n-1)*tt.interval - m.MasterDownInterval(); slack < 900*time.Millisecond {
			t.Errorf("v%d %v: lifetime %v outlives the slowest takeover (%v after the last advert) by %v only",
				tt.version, tt.interval, got, m.MasterDownInterval(), slack)
		}
	}
}

func TestVIPRefreshGap(t *testing.T) {
	for _, tt := range []struct{ interval, want time.Duration }{
		{10 * time.Millisecond, 95 * time.Millisecond},  // every 10th advert
		{30 * time.Millisecond, 75 * time.Millisecond},  // every 3rd
		{40 * time.Millisecond, 60 * time.Millisecond},  // every 2nd
		{100 * time.Millisecond, 50 * time.Millisecond}, // every advert
		{time.Second, 500 * time.Millisecond},
	} {
		if got := vipRefreshGap(tt.interval); got != tt.want {
			t.Errorf("%v: gap %v, want %v", tt.interval, got, tt.want)
		}
	}
}

func TestMachineLapse(t *testing.T) {
	t0 := time.Unix(1000, 0)
	m, err := NewMachine(v2cfg(150, addrA))
	if err != nil {
		t.Fatal(err)
	}
	if as := m.Lapse(t0, time.Minute); as != nil {
		t.Fatalf("Initialize: %v", as)
	}
	m.Startup(t0)
	if as := m.Lapse(t0, time.Minute); as != nil {
		t.Fatalf("Backup: %v", as)
	}
	t1 := m.NextDeadline()
	m.Expire(t1)
	if m.State() != Master {
		t.Fatal("not Master")
	}
	t2 := t1.Add(10 * time.Second)
	as := m.Lapse(t2, 6*time.Second)
	if len(as) != 2 || as[0].Kind != ActionStateChange || as[0].To != Backup || as[1].Kind != ActionRemoveVIPs {
		t.Fatalf("Lapse = %v, want StateChange(->Backup), RemoveVIPs", as)
	}
	if !strings.Contains(as[0].Reason, "lifetime ran out") || !strings.Contains(as[0].Reason, "6s") {
		t.Errorf("reason %q", as[0].Reason)
	}
	if m.State() != Backup || !m.NextDeadline().Equal(t2.Add(m.MasterDownInterval())) || m.MasterAddr().IsValid() {
		t.Errorf("after Lapse: %v, deadline %v, master %v", m.State(), m.NextDeadline(), m.MasterAddr())
	}
	// Nobody else: it wins the VIPs back after Master_Down_Interval.
	if as := m.Expire(m.NextDeadline()); len(as) != 4 || as[1].Kind != ActionAddVIPs {
		t.Errorf("Expire after Lapse = %v", as)
	}

	// The owner stays Master and adds the addresses again.
	o, err := NewMachine(v2cfg(255, addrA))
	if err != nil {
		t.Fatal(err)
	}
	o.Startup(t0)
	as = o.Lapse(t2, 6*time.Second)
	if len(as) != 3 || as[0].Kind != ActionAddVIPs || as[1].Kind != ActionSendAdvert || as[1].Priority != 255 || as[2].Kind != ActionAnnounce {
		t.Fatalf("owner Lapse = %v", as)
	}
	if o.State() != Master || !o.NextDeadline().Equal(t2.Add(time.Second)) {
		t.Errorf("owner after Lapse: %v, deadline %v", o.State(), o.NextDeadline())
	}
}

// startNodeFx is startNode with the caller's fxLog.
func startNodeFx(t *testing.T, h *hub, cfg InstanceConfig, fx *fxLog) *node {
	t.Helper()
	n := &node{port: h.port(cfg.Machine.Primary), fx: fx, done: make(chan error, 1), start: time.Now()}
	inst, err := NewInstance(cfg, n.port, fx.effects(), testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	n.inst = inst
	n.run()
	return n
}

// ops returns the op names of calls.
func ops(calls []fxCall) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c.op)
	}
	return out
}

// TestInstanceVIPLifetimeRefresh: a Master adds the VIPs with
// VIPLifetime and refreshes it with its adverts while Master, and only
// then: a Backup never refreshes, and the refreshes stop when it steps
// down.
func TestInstanceVIPLifetimeRefresh(t *testing.T) {
	for _, tt := range []struct {
		name     string
		cfg      func(prio uint8, a netip.Addr) InstanceConfig
		lifetime time.Duration
		every    int // adverts per refresh
	}{
		{"v2 1s", func(p uint8, a netip.Addr) InstanceConfig { return instCfg("n", p, a) }, 5 * time.Second, 1},
		{"v3 10ms", func(p uint8, a netip.Addr) InstanceConfig { return v3InstCfg(p, a, 10*time.Millisecond) }, 2 * time.Second, 10},
		{"v3 30ms", func(p uint8, a netip.Addr) InstanceConfig { return v3InstCfg(p, a, 30*time.Millisecond) }, 2 * time.Second, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHub()
				a := startNodeFx(t, h, tt.cfg(150, addrA), &fxLog{lifetimes: true})
				b := startNodeFx(t, h, tt.cfg(100, addrB), &fxLog{lifetimes: true})
				defer stopAll(t, a, b)
				sleep(10 * time.Second)
				wantState(t, a, Master)
				wantState(t, b, Backup)
				interval := tt.cfg(1, addrA).Machine.AdvertInterval

				calls := a.fx.since(a.start)
				var adds, refreshes []fxCall
				for _, c := range calls {
					switch c.op {
					case "add":
						adds = append(adds, c)
					case "refresh":
						refreshes = append(refreshes, c)
					}
				}
				if len(adds) != 1 || adds[0].lifetime != tt.lifetime {
					t.Fatalf("adds %v, want one with lifetime %v", adds, tt.lifetime)
				}
				if len(refreshes) < 2 {
					t.Fatalf("%d refreshes", len(refreshes))
				}
				prev := adds[0].at
				for _, r := range refreshes {
					if r.lifetime != tt.lifetime {
						t.Errorf("refresh with lifetime %v, want %v", r.lifetime, tt.lifetime)
					}
					// No timer of its own: each refresh is at an advert.
					if gap := r.at.Sub(prev); gap != time.Duration(tt.every)*interval {
						t.Errorf("refresh %v after the previous, want every %d adverts (%v)", gap, tt.every, time.Duration(tt.every)*interval)
					}
					prev = r.at
				}
				if got := b.fx.since(b.start); len(ops(got)) != 1 || got[0].op != "remove" {
					t.Errorf("backup effects %v, want only the start-up remove", ops(got))
				}

				// Preempted by a higher priority: the refreshes stop with
				// the remove.
				c := startNodeFx(t, h, tt.cfg(200, addrC), &fxLog{lifetimes: true})
				defer stopAll(t, c)
				sleep(5 * time.Second)
				wantState(t, c, Master)
				wantState(t, a, Backup)
				var removed time.Time
				for _, call := range a.fx.since(adds[0].at) {
					switch {
					case call.op == "remove":
						removed = call.at
					case call.op == "refresh" && !removed.IsZero() && call.at.After(removed):
						t.Errorf("refresh at %v after the remove at %v", call.at, removed)
					}
				}
				if removed.IsZero() {
					t.Error("the VIPs were not removed")
				}
			})
		})
	}
}

func v3InstCfg(prio uint8, addr netip.Addr, interval time.Duration) InstanceConfig {
	return InstanceConfig{
		Name: "v3",
		Machine: MachineConfig{Version: Version3, VRID: 1, Priority: prio, AdvertInterval: interval,
			Preempt: true, Primary: addr},
		Addresses:    []netip.Addr{vip4},
		Destinations: []netip.Addr{MulticastGroup(false)},
	}
}

// TestInstanceVIPLifetimeNoRefresh: without RefreshVIPs the addresses get
// no lifetime, as before lifetimes.
func TestInstanceVIPLifetimeNoRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		cfg := instCfg("a", 150, addrA)
		cfg.GARP.MasterRefresh = 10 * time.Second
		cfg.GARP.MasterDelay = -1
		a := startNode(t, h, cfg, nil)
		defer stopAll(t, a)
		sleep(5 * time.Second)
		wantState(t, a, Master)
		// Stalled far past what would be a lifetime: nothing changes.
		a.fx.mu.Lock()
		a.fx.stall = 30 * time.Second
		a.fx.mu.Unlock()
		sleep(40 * time.Second)
		wantState(t, a, Master)
		for _, c := range a.fx.since(a.start) {
			if c.op == "add" && c.lifetime != 0 {
				t.Errorf("add with lifetime %v, want 0", c.lifetime)
			}
		}
		if st := a.inst.Status(); st.Transitions != 2 {
			t.Errorf("%d transitions, want 2 (last %q)", st.Transitions, st.LastReason)
		}
	})
}

// TestInstanceVIPLifetimeStall: a Master whose loop does not run for
// longer than the lifetime (a stopped process, a wedged loop) finds the
// VIPs expired when it runs again. It neither refreshes nor adds them
// back: it steps down (the Backup took over meanwhile) and takes them
// back only by preempting after Master_Down_Interval.
func TestInstanceVIPLifetimeStall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		acfg := instCfg("a", 200, addrA)
		acfg.GARP.MasterRefresh = 10 * time.Second // an Announce that stalls, 10 s after the takeover
		acfg.GARP.MasterDelay = -1
		a := startNodeFx(t, h, acfg, &fxLog{lifetimes: true})
		b := startNodeFx(t, h, instCfg("b", 100, addrB), &fxLog{lifetimes: true})
		defer stopAll(t, a, b)
		sleep(5 * time.Second)
		wantState(t, a, Master)
		takeover := a.inst.Status().LastTransition

		a.fx.mu.Lock()
		a.fx.stall = 8 * time.Second // > lifetime 5 s > b's Master_Down_Interval 3.6 s
		a.fx.mu.Unlock()
		stallAt := takeover.Add(10 * time.Second)
		sleep(stallAt.Sub(time.Now()) + 4*time.Second)
		wantState(t, b, Master) // took over during the stall
		wantState(t, a, Master) // still stalled
		sleep(4*time.Second + 100*time.Millisecond)
		st := wantState(t, a, Backup)
		if !strings.Contains(st.LastReason, "lifetime ran out") {
			t.Errorf("reason %q", st.LastReason)
		}
		resumed := stallAt.Add(8 * time.Second)
		after := a.fx.since(resumed)
		if len(after) == 0 || after[0].op != "remove" {
			t.Errorf("effects after the stall %v, want remove first (no refresh, no add)", ops(after))
		}
		if ads := h.adverts(addrA); len(ads) > 0 {
			for _, ad := range ads {
				if ad.at.After(stallAt) && ad.at.Before(resumed.Add(time.Second)) {
					t.Errorf("advert at %v, during the stall or right after it", ad.at.Sub(stallAt))
				}
			}
		}

		// Priority 200 preempts b once its Master_Down_Timer runs out,
		// and only then adds the VIPs again.
		sleep(5 * time.Second)
		st = wantState(t, a, Master)
		wantState(t, b, Backup)
		if !strings.Contains(st.LastReason, "preempting lower priority 100") {
			t.Errorf("reason %q", st.LastReason)
		}
		after = a.fx.since(resumed)
		if len(after) < 2 || after[1].op != "add" || after[1].at.Sub(after[0].at) != 3218750*time.Microsecond {
			t.Errorf("effects after the stall %v, want remove, then add after Master_Down_Interval 3.21875s", after)
		}
	})
}

// TestInstanceVIPLifetimeStallInSend: stopped in the middle of sending an
// advert, the Master must not refresh the VIPs when the send returns,
// though the advert still goes out; it steps down at its next step.
func TestInstanceVIPLifetimeStallInSend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		a := startNodeFx(t, h, instCfg("a", 200, addrA), &fxLog{lifetimes: true})
		b := startNodeFx(t, h, instCfg("b", 100, addrB), &fxLog{lifetimes: true})
		defer stopAll(t, a, b)
		sleep(5 * time.Second)
		wantState(t, a, Master)
		h.mu.Lock()
		a.port.stall = 8 * time.Second
		h.mu.Unlock()
		stalled := time.Now()
		sleep(10 * time.Second)
		var refreshed, removed time.Time
		for _, c := range a.fx.since(stalled) {
			switch {
			case c.op == "refresh" && removed.IsZero():
				refreshed = c.at
			case c.op == "remove" && removed.IsZero():
				removed = c.at
			}
		}
		if removed.IsZero() || !refreshed.IsZero() {
			t.Errorf("after the stall: refreshed at %v, removed at %v; want a remove and no refresh before it", refreshed, removed)
		}
	})
}

// TestInstanceVIPLifetimeStallNoPreempt: with nopreempt the stalled
// Master stays Backup: the VIPs stay gone from it.
func TestInstanceVIPLifetimeStallNoPreempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		acfg := instCfg("a", 200, addrA)
		acfg.Machine.Preempt = false
		acfg.GARP.MasterRefresh = 10 * time.Second
		acfg.GARP.MasterDelay = -1
		a := startNodeFx(t, h, acfg, &fxLog{lifetimes: true})
		b := startNodeFx(t, h, instCfg("b", 100, addrB), &fxLog{lifetimes: true})
		defer stopAll(t, a, b)
		sleep(5 * time.Second)
		wantState(t, a, Master)
		a.fx.mu.Lock()
		a.fx.stall = 20 * time.Second
		a.fx.mu.Unlock()
		sleep(60 * time.Second)
		wantState(t, a, Backup)
		wantState(t, b, Master)
		var lastAdd, lastRemove time.Time
		for _, c := range a.fx.since(a.start) {
			switch c.op {
			case "add", "refresh":
				lastAdd = c.at
			case "remove":
				lastRemove = c.at
			}
		}
		if !lastRemove.After(lastAdd) {
			t.Errorf("last add/refresh %v after the last remove %v", lastAdd, lastRemove)
		}
	})
}

// TestInstanceVIPLifetimeRefreshFails: a failed refresh is retried with
// the next advert; when they keep failing the lifetime runs out and the
// Master steps down rather than claim VIPs the kernel removed.
func TestInstanceVIPLifetimeRefreshFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		fx := &fxLog{lifetimes: true, refreshErr: errors.New("netlink: no buffer space")}
		a := startNodeFx(t, h, instCfg("a", 150, addrA), fx)
		defer stopAll(t, a)
		sleep(3700 * time.Millisecond) // Master_Down_Interval 3.41 s
		wantState(t, a, Master)
		added := fx.times("add")[0]
		sleep(4 * time.Second)
		wantState(t, a, Master)
		if n := len(fx.times("refresh")); n < 3 {
			t.Errorf("%d refresh attempts, want one per advert", n)
		}
		sleep(time.Second + 100*time.Millisecond)
		st := wantState(t, a, Backup)
		// The advert at 4 s after the add finds 1 s left; the one at 5 s
		// is within vipLapseMargin of the end.
		if got := st.LastTransition.Sub(added); got != 5*time.Second {
			t.Errorf("stepped down %v after the add, want 5s", got)
		}
	})
}

// TestInstanceVIPLifetimeRelease: the priority-0 release refreshes the
// lifetime, so the VIPs last through the handover.
func TestInstanceVIPLifetimeRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHub()
		a := startNodeFx(t, h, instCfg("a", 150, addrA), &fxLog{lifetimes: true})
		defer stopAll(t, a)
		sleep(5 * time.Second)
		wantState(t, a, Master)
		sleep(300 * time.Millisecond) // between two adverts
		released := time.Now()
		a.inst.SetPriority(0)
		synctest.Wait()
		after := a.fx.since(released)
		if len(after) != 1 || after[0].op != "refresh" || !after[0].at.Equal(released) {
			t.Errorf("effects at the release %v, want a refresh", after)
		}
		sleep(10 * time.Second) // nobody takes over: removed after Master_Down_Interval
		if got := ops(a.fx.since(released)); len(got) != 2 || got[1] != "remove" {
			t.Errorf("effects after the release %v", got)
		}
	})
}
