package vrrp

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

const ms = time.Millisecond

var (
	addrA = netip.MustParseAddr("192.0.2.1")
	addrB = netip.MustParseAddr("192.0.2.2")
	addrC = netip.MustParseAddr("192.0.2.3")
)

func v2cfg(prio uint8, primary netip.Addr) MachineConfig {
	return MachineConfig{Version: Version2, VRID: 51, Priority: prio, AdvertInterval: time.Second, Preempt: true, Primary: primary}
}

func v3cfg(prio uint8, iv time.Duration, primary netip.Addr) MachineConfig {
	return MachineConfig{Version: Version3, VRID: 51, Priority: prio, AdvertInterval: iv, Preempt: true, Primary: primary}
}

func mustMachine(t *testing.T, cfg MachineConfig) *Machine {
	t.Helper()
	m, err := NewMachine(cfg)
	if err != nil {
		t.Fatalf("NewMachine(%+v): %v", cfg, err)
	}
	return m
}

func ad(v Version, prio uint8, iv time.Duration) *Advertisement {
	return &Advertisement{Version: v, VRID: 51, Priority: prio, Interval: iv, Addresses: []netip.Addr{netip.MustParseAddr("192.0.2.100")}}
}

// kinds summarises actions for comparison, reasons left out.
func kinds(as []Action) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		if a.Kind == ActionStateChange {
			out = append(out, "StateChange("+a.From.String()+"->"+a.To.String()+")")
			continue
		}
		out = append(out, a.String())
	}
	return out
}

func wantActions(t *testing.T, got []Action, want ...string) {
	t.Helper()
	if !slices.Equal(kinds(got), want) {
		t.Fatalf("actions = %v, want %v", got, want)
	}
}

// becomeMasterActions is the ordering contract for a new Master.
func becomeMasterActions(prio uint8) []string {
	return []string{"StateChange(Backup->Master)", "AddVIPs", Action{Kind: ActionSendAdvert, Priority: prio}.String(), "Announce"}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{Initialize: "Initialize", Backup: "Backup", Master: "Master", 7: "State(7)"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", s, got, want)
		}
	}
	for k, want := range map[ActionKind]string{ActionSendAdvert: "SendAdvert", ActionAddVIPs: "AddVIPs",
		ActionRemoveVIPs: "RemoveVIPs", ActionAnnounce: "Announce", ActionStateChange: "StateChange", 0: "ActionKind(0)"} {
		if got := k.String(); got != want {
			t.Errorf("ActionKind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

func TestMachineConfigValidate(t *testing.T) {
	ll := netip.MustParseAddr("fe80::1")
	tests := []struct {
		name    string
		mod     func(*MachineConfig)
		wantErr string
	}{
		{"v2 ok", func(*MachineConfig) {}, ""},
		{"v3 ipv4 ok", func(c *MachineConfig) { c.Version = Version3; c.AdvertInterval = 10 * ms }, ""},
		{"v3 ipv6 link-local ok", func(c *MachineConfig) { c.Version = Version3; c.Primary = ll.WithZone("eth0") }, ""},
		{"owner ok", func(c *MachineConfig) { c.Priority = 255 }, ""},
		{"preempt delay ok", func(c *MachineConfig) { c.PreemptDelay = 1000 * time.Second }, ""},
		{"version 4", func(c *MachineConfig) { c.Version = 4 }, "version 4"},
		{"v2 fractional interval", func(c *MachineConfig) { c.AdvertInterval = 1500 * ms }, "whole seconds"},
		{"v2 zero interval", func(c *MachineConfig) { c.AdvertInterval = 0 }, "whole seconds"},
		{"v2 256s", func(c *MachineConfig) { c.AdvertInterval = 256 * time.Second }, "whole seconds"},
		{"v2 ipv6", func(c *MachineConfig) { c.Primary = ll }, "IPv4 only"},
		{"v3 5ms", func(c *MachineConfig) { c.Version = Version3; c.AdvertInterval = 5 * ms }, "centiseconds"},
		{"v3 15ms", func(c *MachineConfig) { c.Version = Version3; c.AdvertInterval = 15 * ms }, "centiseconds"},
		{"v3 41s", func(c *MachineConfig) { c.Version = Version3; c.AdvertInterval = 41 * time.Second }, "centiseconds"},
		{"v3 ipv6 global", func(c *MachineConfig) {
			c.Version = Version3
			c.Primary = netip.MustParseAddr("2001:db8::1")
		}, "link-local"},
		{"vrid 0", func(c *MachineConfig) { c.VRID = 0 }, "VRID 0"},
		{"priority 0", func(c *MachineConfig) { c.Priority = 0 }, "priority 0"},
		{"negative preempt delay", func(c *MachineConfig) { c.PreemptDelay = -1 }, "preempt delay"},
		{"huge preempt delay", func(c *MachineConfig) { c.PreemptDelay = 1001 * time.Second }, "preempt delay"},
		{"no primary", func(c *MachineConfig) { c.Primary = netip.Addr{} }, "primary address"},
		{"unspecified primary", func(c *MachineConfig) { c.Primary = netip.IPv4Unspecified() }, "primary address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := v2cfg(100, addrA)
			tt.mod(&c)
			_, err := NewMachine(c)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("no error, want %q", tt.wantErr)
			case err != nil && (!strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "vrrp: ")):
				t.Fatalf("error %q, want it to start with \"vrrp: \" and contain %q", err, tt.wantErr)
			}
		})
	}
	// All problems are reported together.
	err := MachineConfig{}.Validate()
	for _, want := range []string{"version 0", "VRID 0", "priority 0", "primary address"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("zero config error %v does not mention %q", err, want)
		}
	}
}

// TestTimers checks Skew_Time and Master_Down_Interval against the RFC
// formulas (RFC 3768 §6.1, RFC 9568 §6.1) and the vrrp.md §5 table.
func TestTimers(t *testing.T) {
	tests := []struct {
		v        Version
		prio     uint8
		interval time.Duration
		skew     time.Duration
		down     time.Duration
	}{
		// VRRPv2: Skew_Time = (256-Priority)/256 s whatever the interval.
		{Version2, 100, time.Second, 609375 * time.Microsecond, 3609375 * time.Microsecond},
		{Version2, 200, time.Second, 218750 * time.Microsecond, 3218750 * time.Microsecond},
		{Version2, 254, time.Second, 7812500, 3007812500},
		{Version2, 255, time.Second, 3906250, 3003906250},
		{Version2, 128, time.Second, 500 * ms, 3500 * ms},
		{Version2, 1, time.Second, 996093750, 3996093750},
		{Version2, 100, 3 * time.Second, 609375 * time.Microsecond, 9609375 * time.Microsecond},
		// VRRPv3: Skew_Time = ((256-Priority)*Master_Adver_Interval)/256.
		{Version3, 100, time.Second, 609375 * time.Microsecond, 3609375 * time.Microsecond},
		{Version3, 150, time.Second, 414062500, 3414062500},
		{Version3, 100, 500 * ms, 304687500, 1804687500},
		{Version3, 100, 200 * ms, 121875 * time.Microsecond, 721875 * time.Microsecond},
		{Version3, 100, 100 * ms, 60937500, 360937500},
		{Version3, 200, 100 * ms, 21875 * time.Microsecond, 321875 * time.Microsecond},
		{Version3, 254, 100 * ms, 781250, 300781250},
		{Version3, 1, 100 * ms, 99609375, 399609375},
		{Version3, 128, 200 * ms, 100 * ms, 700 * ms},
		{Version3, 100, 10 * ms, 6093750, 36093750},
		{Version3, 100, 40950 * ms, 24953906250, 147803906250},
	}
	for _, tt := range tests {
		c := v2cfg(tt.prio, addrA)
		c.Version, c.AdvertInterval = tt.v, tt.interval
		m := mustMachine(t, c)
		if got := m.MasterAdverInterval(); got != tt.interval {
			t.Errorf("v%d prio %d @%v: Master_Adver_Interval = %v", tt.v, tt.prio, tt.interval, got)
		}
		if got := m.SkewTime(); got != tt.skew {
			t.Errorf("v%d prio %d @%v: Skew_Time = %v, want %v", tt.v, tt.prio, tt.interval, got, tt.skew)
		}
		if got := m.MasterDownInterval(); got != tt.down {
			t.Errorf("v%d prio %d @%v: Master_Down_Interval = %v, want %v", tt.v, tt.prio, tt.interval, got, tt.down)
		}
		if s, d := SkewTime(tt.v, tt.prio, tt.interval), MasterDownInterval(tt.v, tt.prio, tt.interval); s != tt.skew || d != tt.down {
			t.Errorf("v%d prio %d @%v: SkewTime, MasterDownInterval = %v, %v, want %v, %v", tt.v, tt.prio, tt.interval, s, d, tt.skew, tt.down)
		}
	}
}

func TestStartup(t *testing.T) {
	t.Run("backup", func(t *testing.T) {
		m := mustMachine(t, v2cfg(100, addrA))
		if m.State() != Initialize || !m.NextDeadline().IsZero() {
			t.Fatalf("new machine: state %v deadline %v", m.State(), m.NextDeadline())
		}
		as := m.Startup(t0)
		wantActions(t, as, "StateChange(Initialize->Backup)")
		if as[0].Reason != "startup" {
			t.Errorf("reason %q", as[0].Reason)
		}
		if got, want := m.NextDeadline(), t0.Add(3609375*time.Microsecond); !got.Equal(want) {
			t.Errorf("Master_Down_Timer = %v, want %v", got, want)
		}
		if m.MasterAddr().IsValid() {
			t.Errorf("MasterAddr = %v, want none", m.MasterAddr())
		}
		if as := m.Startup(t0); as != nil {
			t.Errorf("second Startup = %v, want nothing", as)
		}
	})
	t.Run("owner", func(t *testing.T) {
		m := mustMachine(t, v2cfg(255, addrA))
		as := m.Startup(t0)
		wantActions(t, as, "StateChange(Initialize->Master)", "AddVIPs", "SendAdvert(255)", "Announce")
		if m.State() != Master || !m.NextDeadline().Equal(t0.Add(time.Second)) || m.MasterAddr() != addrA {
			t.Errorf("state %v deadline %v master %v", m.State(), m.NextDeadline(), m.MasterAddr())
		}
	})
	t.Run("backup takes over when no master", func(t *testing.T) {
		m := mustMachine(t, v3cfg(100, 100*ms, addrA))
		m.Startup(t0)
		if as := m.Expire(t0.Add(360 * ms)); as != nil {
			t.Fatalf("Expire before the deadline = %v", as)
		}
		as := m.Expire(t0.Add(360937500))
		wantActions(t, as, becomeMasterActions(100)...)
		if want := "master down timer expired (no advertisement for 361ms)"; as[0].Reason != want {
			t.Errorf("reason %q, want %q", as[0].Reason, want)
		}
		// Adver_Timer: one advert per interval from now on.
		now := t0.Add(360937500)
		for range 3 {
			now = now.Add(100 * ms)
			if !m.NextDeadline().Equal(now) {
				t.Fatalf("Adver_Timer = %v, want %v", m.NextDeadline(), now)
			}
			wantActions(t, m.Expire(now), "SendAdvert(100)")
		}
	})
}

// TestBackupReceive covers RFC 3768 §6.4.2 / RFC 9568 §6.4.2.
func TestBackupReceive(t *testing.T) {
	tests := []struct {
		name      string
		local     uint8
		preempt   bool
		adPrio    uint8
		wantReset bool          // timer restarted at Master_Down_Interval
		wantTimer time.Duration // else: deadline relative to the receive time (0 = unchanged)
	}{
		{"higher priority resets", 100, true, 150, true, 0},
		{"equal priority resets", 100, true, 100, true, 0},
		{"lower priority discarded with preempt", 150, true, 100, false, 0},
		{"lower priority accepted without preempt", 150, false, 100, true, 0},
		{"priority 0 sets skew", 100, true, 0, false, 609375 * time.Microsecond},
		{"priority 0 sets skew without preempt", 100, false, 0, false, 609375 * time.Microsecond},
		{"owner preempts without preempt mode", 255, false, 254, false, 0},
		{"owner hears owner", 255, true, 255, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := v2cfg(tt.local, addrA)
			c.Preempt = tt.preempt
			m := mustMachine(t, c)
			m.state, m.deadline = Backup, t0.Add(m.MasterDownInterval()) // a Backup, as an owner can be after a tie
			m.timerSet = t0
			rx := t0.Add(2 * time.Second)
			if as := m.Receive(rx, addrB, ad(Version2, tt.adPrio, time.Second)); as != nil {
				t.Fatalf("Backup answered %v", as)
			}
			var want time.Time
			switch {
			case tt.wantReset:
				want = rx.Add(m.MasterDownInterval())
			case tt.wantTimer != 0:
				want = rx.Add(tt.wantTimer)
			default:
				want = t0.Add(m.MasterDownInterval())
			}
			if !m.NextDeadline().Equal(want) {
				t.Errorf("Master_Down_Timer at +%v, want +%v", m.NextDeadline().Sub(t0), want.Sub(t0))
			}
			if m.State() != Backup {
				t.Errorf("state %v", m.State())
			}
			wantMaster := addrB
			if tt.adPrio == 0 {
				wantMaster = netip.Addr{}
			}
			if m.MasterAddr() != wantMaster {
				t.Errorf("MasterAddr %v, want %v", m.MasterAddr(), wantMaster)
			}
		})
	}
}

// TestMasterReceive covers RFC 3768 §6.4.3 / RFC 9568 §6.4.3, including the
// unsigned network-byte-order tie-break in both directions.
func TestMasterReceive(t *testing.T) {
	tests := []struct {
		name    string
		local   netip.Addr
		src     netip.Addr
		adPrio  uint8
		want    []string
		wantSt  State
		reason  string
		v6local bool
	}{
		{"priority 0 answered", addrB, addrA, 0, []string{"SendAdvert(100)"}, Master, "", false},
		{"higher priority", addrB, addrA, 150, []string{"StateChange(Master->Backup)", "RemoveVIPs"}, Backup, "higher priority 150 from 192.0.2.1", false},
		{"lower priority answered", addrB, addrA, 50, []string{"SendAdvert(100)", "Reannounce"}, Master, "", false},
		{"equal, sender higher", addrA, addrB, 100, []string{"StateChange(Master->Backup)", "RemoveVIPs"}, Backup, "equal priority 100 from higher address 192.0.2.2", false},
		{"equal, sender lower", addrB, addrA, 100, []string{"SendAdvert(100)", "Reannounce"}, Master, "", false},
		// Unsigned byte comparison, not string comparison: "9.x" < "10.x".
		{"equal, unsigned compare 10 > 9", netip.MustParseAddr("9.255.255.255"), netip.MustParseAddr("10.0.0.1"), 100,
			[]string{"StateChange(Master->Backup)", "RemoveVIPs"}, Backup, "", false},
		{"equal, unsigned compare 200 > 20", netip.MustParseAddr("192.0.2.200"), netip.MustParseAddr("192.0.2.20"), 100,
			[]string{"SendAdvert(100)", "Reannounce"}, Master, "", false},
		{"equal, high bit set", netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("128.0.0.1"), 100,
			[]string{"StateChange(Master->Backup)", "RemoveVIPs"}, Backup, "", false},
		{"ipv6 equal, sender higher", netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fe80::2%eth0"), 100,
			[]string{"StateChange(Master->Backup)", "RemoveVIPs"}, Backup, "equal priority 100 from higher address fe80::2", true},
		{"ipv6 equal, sender lower", netip.MustParseAddr("fe80::1:0"), netip.MustParseAddr("fe80::ffff"), 100,
			[]string{"SendAdvert(100)", "Reannounce"}, Master, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Version2
			c := v2cfg(100, tt.local)
			if tt.v6local {
				v = Version3
				c = v3cfg(100, time.Second, tt.local)
			}
			m := mustMachine(t, c)
			m.state, m.master, m.deadline = Master, tt.local, t0.Add(time.Second)
			rx := t0.Add(300 * ms)
			as := m.Receive(rx, tt.src, ad(v, tt.adPrio, time.Second))
			wantActions(t, as, tt.want...)
			if m.State() != tt.wantSt {
				t.Fatalf("state %v, want %v", m.State(), tt.wantSt)
			}
			if tt.reason != "" && as[0].Reason != tt.reason {
				t.Errorf("reason %q, want %q", as[0].Reason, tt.reason)
			}
			switch tt.wantSt {
			case Master: // Adver_Timer reset after the immediate advert
				if !m.NextDeadline().Equal(rx.Add(time.Second)) {
					t.Errorf("Adver_Timer %v, want %v", m.NextDeadline(), rx.Add(time.Second))
				}
			case Backup: // Master_Down_Timer set
				if !m.NextDeadline().Equal(rx.Add(m.MasterDownInterval())) {
					t.Errorf("Master_Down_Timer %v, want %v", m.NextDeadline(), rx.Add(m.MasterDownInterval()))
				}
				if m.MasterAddr() != tt.src.WithZone("") {
					t.Errorf("MasterAddr %v, want %v", m.MasterAddr(), tt.src)
				}
			}
		})
	}
}

func TestOwnAdvertIgnored(t *testing.T) {
	m := mustMachine(t, v2cfg(255, addrA))
	m.Startup(t0)
	if as := m.Receive(t0, netip.MustParseAddr("::ffff:192.0.2.1"), ad(Version2, 255, time.Second)); as != nil {
		t.Errorf("own advert answered with %v", as)
	}
	if as := m.Receive(t0, addrB, nil); as != nil {
		t.Errorf("nil advert answered with %v", as)
	}
	i := mustMachine(t, v2cfg(100, addrA))
	if as := i.Receive(t0, addrB, ad(Version2, 200, time.Second)); as != nil || i.State() != Initialize {
		t.Errorf("Initialize answered %v, state %v", as, i.State())
	}
}

// TestPreemption: a higher-priority Backup discards the lower Master's
// adverts and takes over when its Master_Down_Timer fires; with nopreempt it
// never does.
func TestPreemption(t *testing.T) {
	for _, preempt := range []bool{true, false} {
		c := v2cfg(150, addrA)
		c.Preempt = preempt
		m := mustMachine(t, c)
		m.Startup(t0)
		// The Master (priority 100) keeps advertising every second.
		var took time.Time
		for i := range 20 {
			now := t0.Add(time.Duration(i)*time.Second + 500*ms)
			if dl := m.NextDeadline(); !dl.IsZero() && !now.Before(dl) {
				as := m.Expire(dl)
				wantActions(t, as, becomeMasterActions(150)...)
				took = dl
				if want := "preempting lower priority 100 from 192.0.2.2 (master down timer expired after 3.414s)"; as[0].Reason != want {
					t.Errorf("reason %q, want %q", as[0].Reason, want)
				}
				break
			}
			m.Receive(now, addrB, ad(Version2, 100, time.Second))
		}
		switch {
		case preempt && !took.Equal(t0.Add(3414062500)):
			t.Errorf("preempt: took over at +%v, want +3.4140625s (Master_Down_Interval from startup)", took.Sub(t0))
		case !preempt && !took.IsZero():
			t.Errorf("nopreempt: took over at +%v", took.Sub(t0))
		}
	}
}

// TestPreemptDelay: keepalived preempt_delay, advert_int 1, priority 128
// against a lower Master: takeover 2 s + 3.5 s after the first lower
// advert.
func TestPreemptDelay(t *testing.T) {
	c := v2cfg(128, addrA)
	c.PreemptDelay = 2 * time.Second
	m := mustMachine(t, c)
	m.Startup(t0)
	var took time.Time
	for i := range 20 {
		now := t0.Add(time.Duration(i) * time.Second)
		if dl := m.NextDeadline(); !now.Before(dl) {
			m.Expire(dl)
			took = dl
			break
		}
		m.Receive(now, addrB, ad(Version2, 100, time.Second))
	}
	// Adverts at 0 s, 1 s, 2 s are accepted (the delay runs until 2 s,
	// exclusive: 0 and 1); the last reset is at 1 s, so takeover at 4.5 s.
	if want := t0.Add(4500 * ms); !took.Equal(want) {
		t.Errorf("took over at +%v, want +%v", took.Sub(t0), want.Sub(t0))
	}

	// A higher-priority advert resets the delay.
	m = mustMachine(t, c)
	m.Startup(t0)
	m.Receive(t0, addrB, ad(Version2, 100, time.Second))                  // delay ends at +2s
	m.Receive(t0.Add(time.Second), addrC, ad(Version2, 200, time.Second)) // reset
	m.Receive(t0.Add(2500*ms), addrB, ad(Version2, 100, time.Second))     // delay ends at +4.5s
	m.Receive(t0.Add(3*time.Second), addrB, ad(Version2, 100, time.Second))
	if want := t0.Add(3*time.Second + 3500*ms); !m.NextDeadline().Equal(want) {
		t.Errorf("deadline +%v, want +%v", m.NextDeadline().Sub(t0), want.Sub(t0))
	}
}

// TestReleaseTakeover: a priority-0 advert makes the Backup take over after
// Skew_Time (RFC 3768 §6.4.2).
func TestReleaseTakeover(t *testing.T) {
	tests := []struct {
		cfg  MachineConfig
		skew time.Duration
	}{
		{v2cfg(100, addrA), 609375 * time.Microsecond},
		{v2cfg(200, addrA), 218750 * time.Microsecond},
		{v3cfg(100, 100*ms, addrA), 60937500},
	}
	for _, tt := range tests {
		m := mustMachine(t, tt.cfg)
		m.Startup(t0)
		rx := t0.Add(time.Second)
		m.Receive(rx, addrB, ad(tt.cfg.Version, 200, tt.cfg.AdvertInterval))
		m.Receive(rx.Add(100*ms), addrB, ad(tt.cfg.Version, 0, tt.cfg.AdvertInterval))
		if got := m.NextDeadline().Sub(rx.Add(100 * ms)); got != tt.skew {
			t.Errorf("%+v: release timer %v, want Skew_Time %v", tt.cfg, got, tt.skew)
		}
		as := m.Expire(m.NextDeadline())
		wantActions(t, as, becomeMasterActions(tt.cfg.Priority)...)
		if !strings.HasPrefix(as[0].Reason, "priority 0 release from 192.0.2.2") {
			t.Errorf("reason %q", as[0].Reason)
		}
	}
}

// TestV3IntervalAdoption: a VRRPv3 Backup adopts the Master's Max Adver Int
// and recomputes Skew_Time and Master_Down_Interval (RFC 9568 §6.4.2-6.4.3);
// VRRPv2 keeps its own.
func TestV3IntervalAdoption(t *testing.T) {
	m := mustMachine(t, v3cfg(100, time.Second, addrA))
	m.Startup(t0)
	m.Receive(t0, addrB, ad(Version3, 200, 100*ms))
	if m.MasterAdverInterval() != 100*ms || m.SkewTime() != 60937500 || m.MasterDownInterval() != 360937500 {
		t.Fatalf("after 10cs advert: %v %v %v", m.MasterAdverInterval(), m.SkewTime(), m.MasterDownInterval())
	}
	if !m.NextDeadline().Equal(t0.Add(360937500)) {
		t.Errorf("deadline +%v", m.NextDeadline().Sub(t0))
	}
	// Becoming Master: own interval again.
	m.Expire(m.NextDeadline())
	if m.MasterAdverInterval() != time.Second || !m.NextDeadline().Equal(t0.Add(360937500+time.Second)) {
		t.Errorf("as Master: %v %v", m.MasterAdverInterval(), m.NextDeadline())
	}
	// Master -> Backup adopts the new Master's interval.
	rx := t0.Add(2 * time.Second)
	m.Receive(rx, addrB, ad(Version3, 200, 500*ms))
	if m.State() != Backup || m.MasterAdverInterval() != 500*ms || !m.NextDeadline().Equal(rx.Add(1804687500)) {
		t.Errorf("after preemption: %v %v +%v", m.State(), m.MasterAdverInterval(), m.NextDeadline().Sub(rx))
	}
	// A lower advert that is discarded does not change the interval.
	m.Receive(rx, addrC, ad(Version3, 50, 2*time.Second))
	if m.MasterAdverInterval() != 500*ms {
		t.Errorf("discarded advert changed the interval to %v", m.MasterAdverInterval())
	}

	v2 := mustMachine(t, v2cfg(100, addrA))
	v2.Startup(t0)
	v2.Receive(t0, addrB, ad(Version2, 200, 3*time.Second))
	if v2.MasterAdverInterval() != time.Second {
		t.Errorf("VRRPv2 adopted %v", v2.MasterAdverInterval())
	}
}

// lan delivers every SendAdvert of one machine to the others at the same
// instant, the way the Instance does over a Conn.
type lan struct {
	ms []*Machine
}

func (l *lan) deliver(now time.Time, from int, as []Action) {
	for _, a := range as {
		if a.Kind != ActionSendAdvert {
			continue
		}
		c := l.ms[from].Config()
		for j, m := range l.ms {
			if j != from {
				l.deliver(now, j, m.Receive(now, c.Primary, ad(c.Version, a.Priority, c.AdvertInterval)))
			}
		}
	}
}

// step runs every expired timer at now and delivers what they send.
func (l *lan) step(now time.Time) {
	for i, m := range l.ms {
		if dl := m.NextDeadline(); !dl.IsZero() && !now.Before(dl) {
			l.deliver(now, i, m.Expire(now))
		}
	}
}

func (l *lan) masters() []int {
	var out []int
	for i, m := range l.ms {
		if m.State() == Master {
			out = append(out, i)
		}
	}
	return out
}

// TestSplitBrainHeal: two Masters (e.g. after a partition) meet; exactly
// one stays Master, whoever hears first.
func TestSplitBrainHeal(t *testing.T) {
	tests := []struct {
		name     string
		pa, pb   uint8
		first    int
		survivor int
	}{
		{"equal priority, lower address speaks first", 200, 200, 0, 1},
		{"equal priority, higher address speaks first", 200, 200, 1, 1},
		{"higher priority speaks first", 150, 100, 0, 0},
		{"lower priority speaks first", 150, 100, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustMachine(t, v2cfg(tt.pa, addrA))
			b := mustMachine(t, v2cfg(tt.pb, addrB))
			l := &lan{ms: []*Machine{a, b}}
			for _, m := range l.ms {
				m.Startup(t0)
				m.Expire(m.NextDeadline()) // partitioned: both time out
			}
			if got := l.masters(); len(got) != 2 {
				t.Fatalf("masters %v, want both", got)
			}
			now := t0.Add(10 * time.Second)
			m := l.ms[tt.first]
			l.deliver(now, tt.first, []Action{{Kind: ActionSendAdvert, Priority: m.Priority()}})
			if got := l.masters(); !slices.Equal(got, []int{tt.survivor}) {
				t.Fatalf("masters %v, want [%d]", got, tt.survivor)
			}
			// And it stays that way.
			for i := range 100 {
				l.step(now.Add(time.Duration(i) * 100 * ms))
			}
			if got := l.masters(); !slices.Equal(got, []int{tt.survivor}) {
				t.Fatalf("after 10s masters %v, want [%d]", got, tt.survivor)
			}
		})
	}
}

// TestElection: three routers started together settle on the highest
// priority, with Master_Down_Interval of the fastest as the settle time.
func TestElection(t *testing.T) {
	l := &lan{ms: []*Machine{
		mustMachine(t, v2cfg(100, addrA)),
		mustMachine(t, v2cfg(150, addrB)),
		mustMachine(t, v2cfg(120, addrC)),
	}}
	for _, m := range l.ms {
		m.Startup(t0)
	}
	for i := range 200 {
		l.step(t0.Add(time.Duration(i) * 50 * ms))
	}
	if got := l.masters(); !slices.Equal(got, []int{1}) {
		t.Fatalf("masters %v, want [1]", got)
	}
	for _, i := range []int{0, 2} {
		if l.ms[i].MasterAddr() != addrB {
			t.Errorf("machine %d thinks the Master is %v", i, l.ms[i].MasterAddr())
		}
	}
}

func TestShutdown(t *testing.T) {
	m := mustMachine(t, v2cfg(255, addrA))
	if as := m.Shutdown(t0); as != nil {
		t.Errorf("Shutdown in Initialize = %v", as)
	}
	m.Startup(t0)
	as := m.Shutdown(t0.Add(time.Second))
	wantActions(t, as, "StateChange(Master->Initialize)", "SendAdvert(0)", "RemoveVIPs")
	if as[0].Reason != "shutdown" || m.State() != Initialize || !m.NextDeadline().IsZero() || m.MasterAddr().IsValid() {
		t.Errorf("after shutdown: %v %v %v %v", as[0].Reason, m.State(), m.NextDeadline(), m.MasterAddr())
	}
	if as := m.Expire(t0.Add(time.Hour)); as != nil {
		t.Errorf("Expire after shutdown = %v", as)
	}
	// Restartable.
	wantActions(t, m.Startup(t0.Add(2*time.Second)), "StateChange(Initialize->Master)", "AddVIPs", "SendAdvert(255)", "Announce")

	b := mustMachine(t, v2cfg(100, addrA))
	b.Startup(t0)
	wantActions(t, b.Shutdown(t0), "StateChange(Backup->Initialize)", "RemoveVIPs")
}

func TestSetPriority(t *testing.T) {
	t.Run("master lowers and raises", func(t *testing.T) {
		m := mustMachine(t, v2cfg(255, addrA))
		m.Startup(t0)
		now := t0.Add(300 * ms)
		wantActions(t, m.SetPriority(now, 90), "SendAdvert(90)")
		if m.Priority() != 90 || !m.NextDeadline().Equal(now.Add(time.Second)) {
			t.Errorf("priority %d deadline %v", m.Priority(), m.NextDeadline())
		}
		if as := m.SetPriority(now, 90); as != nil {
			t.Errorf("unchanged priority: %v", as)
		}
		wantActions(t, m.SetPriority(now, 255), "SendAdvert(255)")
		// Now a priority-100 peer preempts us once we drop below it.
		m.SetPriority(now, 90)
		wantActions(t, m.Receive(now, addrB, ad(Version2, 100, time.Second)), "StateChange(Master->Backup)", "RemoveVIPs")
	})
	t.Run("non-owner clamped to 254", func(t *testing.T) {
		m := mustMachine(t, v2cfg(100, addrA))
		m.SetPriority(t0, 255)
		if m.Priority() != 254 {
			t.Errorf("priority %d, want 254", m.Priority())
		}
		if as := m.Startup(t0); as[0].To != Backup {
			t.Errorf("non-owner at 254 started as %v", as[0].To)
		}
	})
	t.Run("master gives up with 0", func(t *testing.T) {
		m := mustMachine(t, v2cfg(100, addrA))
		m.Startup(t0)
		m.Expire(m.NextDeadline())
		rel := t0.Add(5 * time.Second)
		as := m.SetPriority(rel, 0)
		wantActions(t, as, "StateChange(Master->Backup)", "SendAdvert(0)")
		// Make before break: the VIPs stay until a new Master speaks, at
		// most Master_Down_Interval (at priority 0: 3 × 1 s + 1 s).
		if m.State() != Backup || !m.HandingOver() || !m.NextDeadline().Equal(rel.Add(4*time.Second)) {
			t.Errorf("state %v handing over %v deadline %v", m.State(), m.HandingOver(), m.NextDeadline())
		}
		// Another release is no new Master: still handing over.
		if as := m.Receive(t0.Add(5100*time.Millisecond), addrB, ad(Version2, 0, time.Second)); len(as) != 0 || !m.HandingOver() {
			t.Errorf("release while handing over: %v, handing over %v", as, m.HandingOver())
		}
		// The new Master's first advert: the VIPs go.
		wantActions(t, m.Receive(t0.Add(5200*time.Millisecond), addrB, ad(Version2, 1, time.Second)), "RemoveVIPs")
		if m.HandingOver() || !m.NextDeadline().IsZero() {
			t.Errorf("after the new Master spoke: handing over %v deadline %v", m.HandingOver(), m.NextDeadline())
		}
		// Dormant: ignores releases and lower adverts, never takes over.
		m.Receive(t0.Add(6*time.Second), addrB, ad(Version2, 0, time.Second))
		m.Receive(t0.Add(6*time.Second), addrB, ad(Version2, 1, time.Second))
		if !m.NextDeadline().IsZero() || m.Expire(t0.Add(time.Hour)) != nil {
			t.Errorf("dormant machine runs a timer: %v", m.NextDeadline())
		}
		if m.MasterAddr() != addrB {
			t.Errorf("MasterAddr %v", m.MasterAddr())
		}
		// Back to service: full Master_Down_Interval before taking over.
		now := t0.Add(7 * time.Second)
		if as := m.SetPriority(now, 100); as != nil {
			t.Errorf("restore = %v", as)
		}
		if !m.NextDeadline().Equal(now.Add(3609375 * time.Microsecond)) {
			t.Errorf("deadline +%v", m.NextDeadline().Sub(now))
		}
	})
	t.Run("release with nobody to take over", func(t *testing.T) {
		m := mustMachine(t, v2cfg(100, addrA))
		m.Startup(t0)
		m.Expire(m.NextDeadline())
		rel := t0.Add(5 * time.Second)
		m.SetPriority(rel, 0)
		if as := m.Expire(rel.Add(3 * time.Second)); as != nil {
			t.Errorf("early expiry: %v", as)
		}
		wantActions(t, m.Expire(m.NextDeadline()), "RemoveVIPs")
		if m.HandingOver() || !m.NextDeadline().IsZero() {
			t.Errorf("handing over %v deadline %v", m.HandingOver(), m.NextDeadline())
		}
	})
	t.Run("release then recover before a takeover", func(t *testing.T) {
		m := mustMachine(t, v2cfg(100, addrA))
		m.Startup(t0)
		m.Expire(m.NextDeadline())
		m.SetPriority(t0.Add(5*time.Second), 0)
		now := t0.Add(5100 * time.Millisecond)
		wantActions(t, m.SetPriority(now, 100), "RemoveVIPs")
		if m.HandingOver() || m.State() != Backup || !m.NextDeadline().Equal(now.Add(3609375*time.Microsecond)) {
			t.Errorf("handing over %v state %v deadline +%v", m.HandingOver(), m.State(), m.NextDeadline().Sub(now))
		}
	})
	t.Run("shutdown while handing over", func(t *testing.T) {
		m := mustMachine(t, v2cfg(100, addrA))
		m.Startup(t0)
		m.Expire(m.NextDeadline())
		m.SetPriority(t0.Add(5*time.Second), 0)
		wantActions(t, m.Shutdown(t0.Add(5100*time.Millisecond)), "StateChange(Backup->Initialize)", "RemoveVIPs")
		if m.HandingOver() {
			t.Error("still handing over after shutdown")
		}
	})
	t.Run("backup to 0 and startup with 0", func(t *testing.T) {
		m := mustMachine(t, v2cfg(100, addrA))
		m.Startup(t0)
		m.SetPriority(t0, 0)
		if !m.NextDeadline().IsZero() {
			t.Errorf("deadline %v", m.NextDeadline())
		}
		n := mustMachine(t, v2cfg(255, addrA))
		n.SetPriority(t0, 0)
		as := n.Startup(t0)
		wantActions(t, as, "StateChange(Initialize->Backup)")
		if !n.NextDeadline().IsZero() {
			t.Errorf("deadline %v", n.NextDeadline())
		}
	})
	t.Run("backup raised preempts", func(t *testing.T) {
		m := mustMachine(t, v2cfg(100, addrA))
		m.Startup(t0)
		m.Receive(t0, addrB, ad(Version2, 150, time.Second))
		if as := m.SetPriority(t0.Add(100*ms), 200); as != nil {
			t.Errorf("SetPriority = %v", as)
		}
		// The running timer keeps its deadline; 150 adverts are now lower.
		m.Receive(t0.Add(time.Second), addrB, ad(Version2, 150, time.Second))
		if !m.NextDeadline().Equal(t0.Add(3609375 * time.Microsecond)) {
			t.Errorf("deadline +%v", m.NextDeadline().Sub(t0))
		}
	})
}

// TestSetFault: the interface going down is keepalived's FAULT state.
func TestSetFault(t *testing.T) {
	t.Run("master steps down at once", func(t *testing.T) {
		m := mustMachine(t, v2cfg(100, addrA))
		m.Startup(t0)
		m.Expire(m.NextDeadline())
		now := t0.Add(5 * time.Second)
		wantActions(t, m.SetFault(now, true), "StateChange(Master->Backup)", "RemoveVIPs")
		if m.State() != Backup || !m.Fault() || !m.NextDeadline().IsZero() {
			t.Errorf("state %v fault %v deadline %v", m.State(), m.Fault(), m.NextDeadline())
		}
		if as := m.SetFault(now, true); as != nil {
			t.Errorf("repeated fault: %v", as)
		}
		// Dormant while down: releases and adverts start no timer.
		m.Receive(now, addrB, ad(Version2, 0, time.Second))
		m.Receive(now, addrB, ad(Version2, 50, time.Second))
		if !m.NextDeadline().IsZero() || m.Expire(now.Add(time.Hour)) != nil {
			t.Errorf("faulty machine runs a timer: %v", m.NextDeadline())
		}
		// Priority changes while down do not start it either.
		m.SetPriority(now, 0)
		m.SetPriority(now, 100)
		if !m.NextDeadline().IsZero() {
			t.Errorf("priority change started a timer while down: %v", m.NextDeadline())
		}
		// Up: a Backup with a full Master_Down_Interval.
		up := t0.Add(9 * time.Second)
		if as := m.SetFault(up, false); as != nil {
			t.Errorf("up = %v", as)
		}
		if !m.NextDeadline().Equal(up.Add(3609375 * time.Microsecond)) {
			t.Errorf("deadline +%v after the link came back", m.NextDeadline().Sub(up))
		}
	})
	t.Run("startup while down", func(t *testing.T) {
		m := mustMachine(t, v2cfg(100, addrA))
		m.SetFault(t0, true)
		as := m.Startup(t0)
		if len(as) != 1 || as[0].To != Backup || !strings.Contains(as[0].Reason, "fault") || !m.NextDeadline().IsZero() {
			t.Errorf("startup %v deadline %v", as, m.NextDeadline())
		}
	})
	t.Run("down while handing over", func(t *testing.T) {
		m := mustMachine(t, v2cfg(100, addrA))
		m.Startup(t0)
		m.Expire(m.NextDeadline())
		m.SetPriority(t0.Add(5*time.Second), 0)
		wantActions(t, m.SetFault(t0.Add(5100*time.Millisecond), true), "RemoveVIPs")
		if m.HandingOver() {
			t.Error("still handing over")
		}
	})
}
