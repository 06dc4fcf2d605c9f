package vrrp

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// State is the state of a virtual router (RFC 3768 §6.4, RFC 9568 §6.4).
// RFC 9568 renames Master to Active; the behaviour is the same.
type State uint8

// The three states of RFC 3768 §6.4 / RFC 9568 §6.4.
const (
	// Initialize waits for a Startup event (§6.4.1).
	Initialize State = iota
	// Backup monitors the Master and takes over when the Master_Down_Timer
	// fires (§6.4.2).
	Backup
	// Master forwards for the virtual addresses and sends advertisements
	// every Advertisement_Interval (§6.4.3).
	Master
)

// String returns "Initialize", "Backup" or "Master".
func (s State) String() string {
	switch s {
	case Initialize:
		return "Initialize"
	case Backup:
		return "Backup"
	case Master:
		return "Master"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// ActionKind says what an [Action] asks the runner to do.
type ActionKind uint8

// The actions a [Machine] emits.
const (
	// ActionSendAdvert asks for one ADVERTISEMENT with Action.Priority to
	// every destination. Priority 0 is the release advert of RFC 3768
	// §6.4.3 ("Shutdown event").
	ActionSendAdvert ActionKind = iota + 1
	// ActionAddVIPs asks for the virtual addresses to be configured.
	ActionAddVIPs
	// ActionRemoveVIPs asks for the virtual addresses to be removed.
	ActionRemoveVIPs
	// ActionAnnounce asks for the gratuitous ARP / unsolicited NA schedule
	// of a new Master to start (RFC 3768 §6.4.2, RFC 9568 §6.4.2).
	ActionAnnounce
	// ActionStateChange reports a transition From -> To, with a Reason.
	ActionStateChange
	// ActionReannounce asks a Master that heard a lower (or equal, lower
	// address) advert for one more burst of gratuitous ARPs / unsolicited
	// NAs: after a tie or a split-brain heal the other node also
	// announced the VIP, and its announcement may have reached the
	// clients last (keepalived's garp_lower_prio_repeat).
	ActionReannounce
)

// String returns the action kind's name, e.g. "SendAdvert".
func (k ActionKind) String() string {
	switch k {
	case ActionSendAdvert:
		return "SendAdvert"
	case ActionAddVIPs:
		return "AddVIPs"
	case ActionRemoveVIPs:
		return "RemoveVIPs"
	case ActionAnnounce:
		return "Announce"
	case ActionStateChange:
		return "StateChange"
	case ActionReannounce:
		return "Reannounce"
	}
	return "ActionKind(" + strconv.Itoa(int(k)) + ")"
}

// Action is one instruction from a [Machine] to its runner.
//
// Ordering contract: the runner executes the actions of one call in slice
// order. Every call that changes state returns ActionStateChange first, so
// the runner's view of the state is updated before any effect runs. The
// sequences are exactly:
//
//	becoming Master:  StateChange, AddVIPs, SendAdvert(priority), Announce
//	Master -> Backup: StateChange, RemoveVIPs            (preempted by a better advert)
//	Master -> Backup: StateChange, SendAdvert(0)   (SetPriority(0); RemoveVIPs follows when a
//	                  new Master speaks, or after Master_Down_Interval: make before break)
//	Initialize -> Backup: StateChange
//	shutdown from Master: StateChange, SendAdvert(0), RemoveVIPs
//	shutdown from Backup: StateChange, RemoveVIPs
//	Master, no state change: SendAdvert(priority)      (Adver_Timer, answers, priority change)
//	Master hears a lower Master: SendAdvert(priority), Reannounce
//	Master whose VIPs' lifetime ran out (Lapse): StateChange, RemoveVIPs
//	                  (the owner, priority 255: AddVIPs, SendAdvert(255), Announce)
type Action struct {
	// Kind is what to do.
	Kind ActionKind
	// Priority is the priority to advertise, for ActionSendAdvert.
	Priority uint8
	// From and To are the states of an ActionStateChange.
	From, To State
	// Reason explains an ActionStateChange for humans, e.g.
	// "master down timer expired (no advertisement for 3.609s)",
	// "higher priority 150 from 192.0.2.1", "shutdown".
	Reason string
}

// String formats the action for logs and test failures.
func (a Action) String() string {
	switch a.Kind {
	case ActionSendAdvert:
		return "SendAdvert(" + strconv.Itoa(int(a.Priority)) + ")"
	case ActionStateChange:
		return "StateChange(" + a.From.String() + "->" + a.To.String() + ": " + a.Reason + ")"
	}
	return a.Kind.String()
}

// OwnerPriority is the priority of the router that owns the virtual
// addresses (RFC 3768 §5.3.4, RFC 9568 §5.2.4).
const OwnerPriority = 255

// MaxPreemptDelay is the largest PreemptDelay accepted, keepalived's
// preempt_delay range (0-1000 s).
const MaxPreemptDelay = 1000 * time.Second

// MachineConfig is the protocol configuration of one virtual router (the
// parameters of RFC 3768 §6.1, RFC 9568 §6.1).
type MachineConfig struct {
	// Version is Version2 or Version3.
	Version Version
	// VRID is the Virtual Router Identifier, 1-255 (RFC 3768 §5.3.3).
	VRID uint8
	// Priority is the configured priority, 1-255; 255 means this router
	// owns the virtual addresses (RFC 3768 §5.3.4). keepalived's default
	// and k0s's setting are 100 and 200.
	Priority uint8
	// AdvertInterval is the local Advertisement_Interval: whole seconds
	// from 1 s to 255 s for VRRPv2 (RFC 3768 §5.3.7), a multiple of 10 ms
	// from 10 ms to 40.95 s for VRRPv3 (RFC 9568 §5.2.7, erratum 8301).
	AdvertInterval time.Duration
	// Preempt is Preempt_Mode (RFC 3768 §6.1): whether a higher-priority
	// Backup takes over from a lower-priority Master. The RFC default is
	// true; keepalived's nopreempt is false. The address owner always
	// preempts.
	Preempt bool
	// PreemptDelay is keepalived's preempt_delay: a Backup that would
	// preempt keeps accepting lower-priority adverts for this long,
	// counted from the first lower-priority advert, before it lets its
	// Master_Down_Timer run out. A higher or equal priority advert resets
	// it. 0 disables it; the maximum is MaxPreemptDelay. Not part of the
	// RFCs.
	PreemptDelay time.Duration
	// Primary is this router's primary address on the interface: IPv4 for
	// VRRPv2/VRRPv3 over IPv4, the link-local address for IPv6 (RFC 9568
	// §5.1.2.1). It breaks priority ties (RFC 9568 §6.4.3) and is the
	// source of adverts.
	Primary netip.Addr
}

// Validate reports every problem with the configuration, joined.
func (c MachineConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	switch c.Version {
	case Version2:
		if c.AdvertInterval < time.Second || c.AdvertInterval > 255*time.Second ||
			c.AdvertInterval%time.Second != 0 {
			bad("advert interval %v: VRRPv2 needs whole seconds from 1s to 255s (RFC 3768 §5.3.7)", c.AdvertInterval)
		}
		if c.Primary.IsValid() && !c.Primary.Unmap().Is4() {
			bad("primary address %v: VRRPv2 is IPv4 only (RFC 3768 §5.2)", c.Primary)
		}
	case Version3:
		if c.AdvertInterval < 10*time.Millisecond || c.AdvertInterval > 4095*10*time.Millisecond ||
			c.AdvertInterval%(10*time.Millisecond) != 0 {
			bad("advert interval %v: VRRPv3 needs whole centiseconds from 10ms to 40.95s (RFC 9568 §5.2.7)", c.AdvertInterval)
		}
		if c.Primary.IsValid() && c.Primary.Is6() && !c.Primary.Is4In6() && !c.Primary.IsLinkLocalUnicast() {
			bad("primary address %v: VRRPv3 over IPv6 needs the link-local address (RFC 9568 §5.1.2.1)", c.Primary)
		}
	default:
		bad("version %d: want 2 or 3", c.Version)
	}
	if c.VRID == 0 {
		bad("VRID 0: want 1-255 (RFC 3768 §5.3.3)")
	}
	if c.Priority == 0 {
		bad("priority 0: want 1-255 (0 is reserved for releasing, RFC 3768 §5.3.4)")
	}
	if c.PreemptDelay < 0 || c.PreemptDelay > MaxPreemptDelay {
		bad("preempt delay %v: want 0-%v", c.PreemptDelay, MaxPreemptDelay)
	}
	if !c.Primary.IsValid() || c.Primary.IsUnspecified() {
		bad("primary address %v: want a unicast address", c.Primary)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("vrrp: invalid machine config: %w", errors.Join(errs...))
}

// Machine is the VRRP state machine of one virtual router: RFC 3768
// §6.3-6.4 for VRRPv2 and RFC 9568 §6.3-6.4 for VRRPv3.
//
// It is pure: it does no I/O and reads no clock. Every method takes the
// current time and returns the [Action] values the runner must carry out,
// in order (see [Action] for the ordering contract). The runner calls
// [Machine.Expire] once the time reaches [Machine.NextDeadline]. One
// deadline stands for whichever RFC timer runs: the Master_Down_Timer in
// Backup, the Adver_Timer in Master.
//
// A Machine is not safe for concurrent use.
type Machine struct {
	cfg     MachineConfig
	primary netip.Addr

	state    State
	priority uint8 // effective priority (SetPriority); 0 = dormant

	// masterAdverInterval is Master_Adver_Interval (RFC 9568 §6.1): the
	// local interval for VRRPv2, learned from the Master for VRRPv3.
	masterAdverInterval time.Duration

	deadline time.Time // the running timer; zero if none
	timerSet time.Time // when the Master_Down_Timer was last (re)started

	master netip.Addr // the current Master as far as we know

	// Why the Master_Down_Timer is running, for the transition reason.
	released  netip.Addr // set when a priority-0 advert set it to Skew_Time
	lowerFrom netip.Addr // a lower-priority advert was discarded since timerSet
	lowerPrio uint8
	preemptAt time.Time // PreemptDelay: discard lower adverts from here on

	// handover is set while a Master that released with SetPriority(0)
	// keeps its VIPs until a new Master speaks (make before break); at
	// the latest they go at this time.
	handover time.Time

	// fault is set while the interface is down (SetFault): like
	// keepalived's FAULT state, the node holds no VIPs and runs no timer.
	fault bool
}

// NewMachine checks cfg and returns a Machine in the Initialize state. It
// does no I/O.
func NewMachine(cfg MachineConfig) (*Machine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Machine{
		cfg:                 cfg,
		primary:             cfg.Primary.Unmap().WithZone(""),
		state:               Initialize,
		priority:            cfg.Priority,
		masterAdverInterval: cfg.AdvertInterval,
	}, nil
}

// Config returns the configuration the Machine was built with.
func (m *Machine) Config() MachineConfig { return m.cfg }

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Priority returns the effective priority: the configured one unless
// [Machine.SetPriority] changed it.
func (m *Machine) Priority() uint8 { return m.priority }

// MasterAddr returns the primary address of the current Master as far as
// this router knows: its own Primary in Master, the source of the last
// non-zero-priority advert in Backup, and the zero Addr when unknown (in
// Initialize, before any advert, after a priority-0 release).
func (m *Machine) MasterAddr() netip.Addr { return m.master }

// MasterAdverInterval returns Master_Adver_Interval (RFC 9568 §6.1): the
// local Advertisement_Interval for VRRPv2 and in Master; for a VRRPv3
// Backup, the Max Adver Int of the Master's last accepted advert.
func (m *Machine) MasterAdverInterval() time.Duration { return m.masterAdverInterval }

// SkewTime returns Skew_Time for the effective priority (see [SkewTime]).
func (m *Machine) SkewTime() time.Duration {
	return SkewTime(m.cfg.Version, m.priority, m.masterAdverInterval)
}

// MasterDownInterval returns Master_Down_Interval for the effective
// priority (see [MasterDownInterval]).
func (m *Machine) MasterDownInterval() time.Duration {
	return MasterDownInterval(m.cfg.Version, m.priority, m.masterAdverInterval)
}

// SkewTime returns Skew_Time of a router with priority prio.
// VRRPv2 (RFC 3768 §6.1): (256 - Priority) / 256 seconds, whatever the
// interval. VRRPv3 (RFC 9568 §6.1): ((256 - Priority) *
// Master_Adver_Interval) / 256. Computed in integer nanoseconds, so exact
// for every whole-centisecond interval.
func SkewTime(v Version, prio uint8, masterAdverInterval time.Duration) time.Duration {
	base := time.Second
	if v == Version3 {
		base = masterAdverInterval
	}
	return time.Duration(256-int64(prio)) * base / 256
}

// MasterDownInterval returns Master_Down_Interval of a router with
// priority prio (RFC 3768 §6.1, RFC 9568 §6.1): 3 * Master_Adver_Interval
// + Skew_Time.
func MasterDownInterval(v Version, prio uint8, masterAdverInterval time.Duration) time.Duration {
	return 3*masterAdverInterval + SkewTime(v, prio, masterAdverInterval)
}

// NextDeadline returns when [Machine.Expire] must be called: the
// Master_Down_Timer in Backup, the Adver_Timer in Master. It is zero when
// no timer runs (Initialize, or a Backup whose priority was set to 0).
func (m *Machine) NextDeadline() time.Time {
	if !m.handover.IsZero() && (m.deadline.IsZero() || m.handover.Before(m.deadline)) {
		return m.handover
	}
	return m.deadline
}

// Fault reports whether the interface is down (see [Machine.SetFault]).
func (m *Machine) Fault() bool { return m.fault }

// dormant reports whether the node must not become Master: priority 0 or
// a fault.
func (m *Machine) dormant() bool { return m.priority == 0 || m.fault }

// SetFault reports the interface going down (true) or up again (false),
// keepalived's FAULT state. Down: a Master steps down and removes its VIPs
// at once (nobody can hear an advert on a dead link, and a node cut off
// from the LAN must not keep the VIPs: when the link returns, the LAN's
// Master already holds them); a Backup stops its timer. While down the
// node is dormant. Up: a Backup restarts its Master_Down_Timer at
// Master_Down_Interval, as after Startup.
func (m *Machine) SetFault(now time.Time, fault bool) []Action {
	if fault == m.fault {
		return nil
	}
	m.fault = fault
	if !fault {
		if m.state == Backup && !m.dormant() {
			m.startDown(now, m.MasterDownInterval())
		}
		return nil
	}
	handingOver := !m.handover.IsZero()
	m.handover = time.Time{}
	switch m.state {
	case Master:
		m.state = Backup
		m.master = netip.Addr{}
		m.clearDown()
		m.deadline = time.Time{}
		return []Action{
			{Kind: ActionStateChange, From: Master, To: Backup, Reason: "interface down (fault)"},
			{Kind: ActionRemoveVIPs},
		}
	case Backup:
		m.clearDown()
		m.deadline = time.Time{}
		if handingOver {
			return []Action{{Kind: ActionRemoveVIPs}}
		}
	}
	return nil
}

// HandingOver reports whether the Machine released mastership with
// SetPriority(0) and still keeps the VIPs until a new Master speaks.
func (m *Machine) HandingOver() bool { return !m.handover.IsZero() }

// preempts reports Preempt_Mode; the owner always preempts (RFC 3768 §6.1).
func (m *Machine) preempts() bool {
	return m.cfg.Preempt || m.priority == OwnerPriority
}

// Startup handles the Startup event in Initialize (RFC 3768 §6.4.1, RFC
// 9568 §6.4.1): the address owner (effective priority 255) becomes Master
// at once; any other router becomes Backup with the Master_Down_Timer set
// to Master_Down_Interval. Outside Initialize it does nothing.
func (m *Machine) Startup(now time.Time) []Action {
	if m.state != Initialize {
		return nil
	}
	if m.priority == OwnerPriority {
		return m.becomeMaster(now, "address owner (priority 255) at startup")
	}
	m.state = Backup
	m.masterAdverInterval = m.cfg.AdvertInterval
	m.master = netip.Addr{}
	m.startDown(now, m.MasterDownInterval())
	reason := "startup"
	if m.priority == 0 {
		m.deadline = time.Time{}
		reason = "startup with priority 0 (will not become master)"
	} else if m.fault {
		m.deadline = time.Time{}
		reason = "startup with the interface down (fault)"
	}
	return []Action{{Kind: ActionStateChange, From: Initialize, To: Backup, Reason: reason}}
}

// Receive handles an advertisement from src that already passed the
// [Filter] (RFC 3768 §6.4.2-6.4.3, RFC 9568 §6.4.2-6.4.3).
//
// In Backup: priority 0 sets the Master_Down_Timer to Skew_Time; a priority
// greater than or equal to ours, or any priority when we do not preempt,
// resets it to Master_Down_Interval (VRRPv3 first adopts the advert's Max
// Adver Int as Master_Adver_Interval); a lower priority is discarded and
// the timer keeps running, so we preempt when it fires.
//
// In Master: priority 0 is answered with an advert at once (and the
// Adver_Timer reset); a higher priority, or an equal one from a greater
// primary address (unsigned, network byte order), makes us Backup with the
// Master_Down_Timer running; anything else is answered with an advert at
// once (RFC 9568 §6.4.3, keepalived's default), which is how two Masters
// that meet after a partition settle on one.
//
// Adverts from our own Primary (a looped-back copy) and anything received
// in Initialize are ignored. IPv6 zones and IPv4-mapped forms of src are
// ignored for comparisons.
func (m *Machine) Receive(now time.Time, src netip.Addr, ad *Advertisement) []Action {
	if ad == nil {
		return nil
	}
	src = src.Unmap().WithZone("")
	if src == m.primary {
		return nil
	}
	switch m.state {
	case Backup:
		return m.receiveBackup(now, src, ad)
	case Master:
		return m.receiveMaster(now, src, ad)
	}
	return nil
}

func (m *Machine) receiveBackup(now time.Time, src netip.Addr, ad *Advertisement) []Action {
	var out []Action
	if !m.handover.IsZero() && ad.Priority != 0 {
		// A new Master speaks: it has the VIPs now; let go of ours.
		m.handover = time.Time{}
		out = append(out, Action{Kind: ActionRemoveVIPs})
	}
	return append(out, m.receiveBackupAdvert(now, src, ad)...)
}

func (m *Machine) receiveBackupAdvert(now time.Time, src netip.Addr, ad *Advertisement) []Action {
	if ad.Priority == 0 {
		// RFC 3768 §6.4.2: "Set the Master_Down_Timer to Skew_Time".
		m.master = netip.Addr{}
		if !m.dormant() {
			m.startDown(now, m.SkewTime())
			m.released = src
		}
		return nil
	}
	m.master = src
	if m.dormant() {
		// Dormant: never takes over; keep tracking the Master only.
		m.adoptInterval(ad)
		return nil
	}
	accept := !m.preempts() || ad.Priority >= m.priority
	if ad.Priority >= m.priority {
		m.preemptAt = time.Time{}
	} else if !accept && m.cfg.PreemptDelay > 0 {
		// keepalived preempt_delay: keep accepting lower adverts for a while.
		if m.preemptAt.IsZero() {
			m.preemptAt = now.Add(m.cfg.PreemptDelay)
		}
		accept = now.Before(m.preemptAt)
	}
	if !accept {
		// "Discard the ADVERTISEMENT": the timer keeps running (preemption).
		m.lowerFrom, m.lowerPrio = src, ad.Priority
		return nil
	}
	m.adoptInterval(ad)
	m.startDown(now, m.MasterDownInterval())
	return nil
}

func (m *Machine) receiveMaster(now time.Time, src netip.Addr, ad *Advertisement) []Action {
	if ad.Priority == 0 {
		// RFC 3768 §6.4.3: send an ADVERTISEMENT, reset the Adver_Timer.
		m.deadline = now.Add(m.cfg.AdvertInterval)
		return []Action{{Kind: ActionSendAdvert, Priority: m.priority}}
	}
	if ad.Priority > m.priority || (ad.Priority == m.priority && src.Compare(m.primary) > 0) {
		var reason string
		if ad.Priority > m.priority {
			reason = fmt.Sprintf("higher priority %d from %v", ad.Priority, src)
		} else {
			reason = fmt.Sprintf("equal priority %d from higher address %v", ad.Priority, src)
		}
		// RFC 9568 §6.4.3: cancel Adver_Timer, adopt Max Adver Int,
		// recompute Skew_Time and Active_Down_Interval, set the timer.
		m.state = Backup
		m.master = src
		m.adoptInterval(ad)
		m.startDown(now, m.MasterDownInterval())
		return []Action{
			{Kind: ActionStateChange, From: Master, To: Backup, Reason: reason},
			{Kind: ActionRemoveVIPs},
		}
	}
	// Lower priority, or equal from a lower address: assert mastership at
	// once (RFC 9568 §6.4.3; keepalived lower_prio_no_advert false), and
	// announce the VIP again: the other node is a Master too (a tie of
	// Backups whose timers ran out together, or a healed split brain) and
	// its gratuitous ARPs may have been the last the clients heard.
	m.deadline = now.Add(m.cfg.AdvertInterval)
	return []Action{{Kind: ActionSendAdvert, Priority: m.priority}, {Kind: ActionReannounce}}
}

// Expire handles the running timer's expiry; the runner calls it when now
// is at or past [Machine.NextDeadline]. Earlier calls, and calls when no
// timer runs, do nothing.
//
// In Master the Adver_Timer fired: send an advert and restart it (RFC 3768
// §6.4.3). In Backup the Master_Down_Timer fired: become Master (RFC 3768
// §6.4.2).
func (m *Machine) Expire(now time.Time) []Action {
	var out []Action
	if !m.handover.IsZero() && !now.Before(m.handover) {
		// Nobody took over within Master_Down_Interval: give them up.
		m.handover = time.Time{}
		out = append(out, Action{Kind: ActionRemoveVIPs})
	}
	if m.deadline.IsZero() || now.Before(m.deadline) {
		return out
	}
	switch m.state {
	case Master:
		m.deadline = now.Add(m.cfg.AdvertInterval)
		return append(out, Action{Kind: ActionSendAdvert, Priority: m.priority})
	case Backup:
		return append(out, m.becomeMaster(now, m.downReason(now))...)
	}
	return out
}

func (m *Machine) downReason(now time.Time) string {
	waited := fmtDuration(now.Sub(m.timerSet))
	switch {
	case m.released.IsValid():
		return fmt.Sprintf("priority 0 release from %v (took over after skew time %s)", m.released, waited)
	case m.lowerFrom.IsValid():
		return fmt.Sprintf("preempting lower priority %d from %v (master down timer expired after %s)",
			m.lowerPrio, m.lowerFrom, waited)
	}
	return fmt.Sprintf("master down timer expired (no advertisement for %s)", waited)
}

// Shutdown handles the Shutdown event (RFC 3768 §6.4.2-6.4.3): a Master
// sends a priority-0 advert so a Backup takes over after Skew_Time; both
// Master and Backup ask for the virtual addresses to be removed (harmless
// when absent, and it clears addresses an earlier failed removal left);
// the Machine goes to Initialize with no timer. In Initialize it does
// nothing. [Machine.Startup] may be called again afterwards.
func (m *Machine) Shutdown(now time.Time) []Action {
	from := m.state
	switch from {
	case Master:
		m.reset()
		return []Action{
			{Kind: ActionStateChange, From: Master, To: Initialize, Reason: "shutdown"},
			{Kind: ActionSendAdvert, Priority: 0},
			{Kind: ActionRemoveVIPs},
		}
	case Backup:
		m.reset()
		return []Action{
			{Kind: ActionStateChange, From: Backup, To: Initialize, Reason: "shutdown"},
			{Kind: ActionRemoveVIPs},
		}
	}
	return nil
}

// Lapse handles a Master whose virtual addresses outlived their valid
// lifetime (see [VIPLifetime]) because its runner did not run: a stopped
// process (SIGSTOP) or a wedged loop sent no advert and no refresh, so the
// kernel removed the addresses, and since the lifetime is longer than any
// Backup's Master_Down_Interval, a Backup has taken over meanwhile if
// there is one. It is not an RFC event; the RFCs assume a Master that
// keeps its timers.
//
// The Master starts over as at Startup, without putting the addresses
// back: it becomes Backup with the Master_Down_Timer at
// Master_Down_Interval and asks for what is left of the addresses to be
// removed. It gets them back only by winning them again: when its timer
// runs out with nobody else advertising, or by preempting a lower-priority
// Master. So a stopped Master that resumes never answers for a VIP the new
// Master holds, and two nodes never fight over it. The address owner
// (priority 255) would become Master at once at Startup: it stays Master
// and adds the addresses again (the Backup that took over yields to its
// advert). Outside Master, Lapse does nothing. silent is how long the
// Master did not run, for the reason.
func (m *Machine) Lapse(now time.Time, silent time.Duration) []Action {
	if m.state != Master {
		return nil
	}
	if m.priority == OwnerPriority {
		m.deadline = now.Add(m.cfg.AdvertInterval)
		return []Action{
			{Kind: ActionAddVIPs},
			{Kind: ActionSendAdvert, Priority: m.priority},
			{Kind: ActionAnnounce},
		}
	}
	m.state = Backup
	m.master = netip.Addr{}
	m.masterAdverInterval = m.cfg.AdvertInterval
	m.startDown(now, m.MasterDownInterval())
	return []Action{
		{Kind: ActionStateChange, From: Master, To: Backup,
			Reason: fmt.Sprintf("the VIPs' lifetime ran out: not running for %s (stopped or stalled)", fmtDuration(silent))},
		{Kind: ActionRemoveVIPs},
	}
}

// SetPriority changes the effective priority, e.g. from health tracking.
//
// Semantics:
//   - A non-owner (configured priority below 255) is clamped to 254: only
//     the owner may advertise 255 (RFC 3768 §5.3.4).
//   - p == 0 means "give up and stay away": a Master sends a priority-0
//     advert (so a Backup takes over after its Skew_Time) and becomes a
//     dormant Backup; a Backup becomes dormant. A dormant Backup runs no
//     timer and never becomes Master, whatever it hears.
//   - Make before break: a Master released this way keeps its VIPs until
//     the first advert of a new Master (then RemoveVIPs), or at the latest
//     Master_Down_Interval (see [Machine.HandingOver]), so that clients are
//     served during the Backup's Skew_Time instead of reaching nobody. The
//     overlap with the new Master lasts one advert's flight.
//   - Leaving 0 restarts the Master_Down_Timer at Master_Down_Interval.
//   - A Master with a new non-zero priority advertises it at once, so
//     Backups see the change without waiting for the Adver_Timer.
//   - A Backup otherwise keeps its running timer; the new priority decides
//     how the next advert is handled (so a raised priority preempts a
//     lower Master once the timer runs out).
//   - In Initialize the value is kept for the next Startup.
func (m *Machine) SetPriority(now time.Time, p uint8) []Action {
	if p == OwnerPriority && m.cfg.Priority != OwnerPriority {
		p = OwnerPriority - 1
	}
	old := m.priority
	if p == old {
		return nil
	}
	m.priority = p
	switch m.state {
	case Master:
		if p == 0 {
			// Make before break: the priority-0 advert lets a Backup
			// take over after its Skew_Time; until it speaks, the VIPs
			// stay here so that clients are served meanwhile. No new
			// Master within Master_Down_Interval: they go anyway.
			m.state = Backup
			m.master = netip.Addr{}
			m.clearDown()
			m.deadline = time.Time{}
			m.handover = now.Add(m.MasterDownInterval())
			return []Action{
				{Kind: ActionStateChange, From: Master, To: Backup, Reason: "priority set to 0 (releasing)"},
				{Kind: ActionSendAdvert, Priority: 0},
			}
		}
		m.deadline = now.Add(m.cfg.AdvertInterval)
		return []Action{{Kind: ActionSendAdvert, Priority: p}}
	case Backup:
		if p == 0 {
			m.clearDown()
			m.deadline = time.Time{}
		} else if old == 0 && !m.fault {
			m.startDown(now, m.MasterDownInterval())
			if !m.handover.IsZero() {
				// Back before anyone took over: start clean, as a
				// Backup without the VIPs (it may win them back).
				m.handover = time.Time{}
				return []Action{{Kind: ActionRemoveVIPs}}
			}
		}
	}
	return nil
}

func (m *Machine) becomeMaster(now time.Time, reason string) []Action {
	from := m.state
	m.state = Master
	m.master = m.primary
	m.masterAdverInterval = m.cfg.AdvertInterval
	m.clearDown()
	m.preemptAt = time.Time{}
	// RFC 3768 §6.4.2: send an ADVERTISEMENT, broadcast gratuitous ARP, set
	// the Adver_Timer to Advertisement_Interval, transition to Master. The
	// addresses are configured first, so that the advertisement and the
	// announcements never point clients at an address that does not answer
	// yet (RFC 9568 §8.1.2 delays announcements until then), and the VIP
	// answers as early as possible.
	m.deadline = now.Add(m.cfg.AdvertInterval)
	return []Action{
		{Kind: ActionStateChange, From: from, To: Master, Reason: reason},
		{Kind: ActionAddVIPs},
		{Kind: ActionSendAdvert, Priority: m.priority},
		{Kind: ActionAnnounce},
	}
}

// adoptInterval sets Master_Adver_Interval from a VRRPv3 advert (RFC 9568
// §6.4.2-6.4.3); VRRPv2 Backups use the local interval (mismatches are
// dropped by the Filter, RFC 3768 §7.1).
func (m *Machine) adoptInterval(ad *Advertisement) {
	if m.cfg.Version == Version3 && ad.Interval > 0 {
		m.masterAdverInterval = ad.Interval
	}
}

// startDown (re)starts the Master_Down_Timer for d.
func (m *Machine) startDown(now time.Time, d time.Duration) {
	m.clearDown()
	m.timerSet = now
	m.deadline = now.Add(d)
}

func (m *Machine) clearDown() {
	m.released = netip.Addr{}
	m.lowerFrom = netip.Addr{}
	m.lowerPrio = 0
}

func (m *Machine) reset() {
	m.handover = time.Time{}
	m.state = Initialize
	m.master = netip.Addr{}
	m.deadline = time.Time{}
	m.clearDown()
	m.preemptAt = time.Time{}
	m.masterAdverInterval = m.cfg.AdvertInterval
}

// fmtDuration rounds to the millisecond for human-readable reasons.
func fmtDuration(d time.Duration) string {
	if d >= time.Millisecond {
		d = d.Round(time.Millisecond)
	}
	return d.String()
}
