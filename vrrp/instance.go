package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// GARP defaults: keepalived's vrrp_garp_master_delay,
// vrrp_garp_master_repeat and vrrp_garp_master_refresh_repeat.
const (
	// DefaultGARPMasterDelay is the delay of the second burst of
	// announcements after becoming Master (keepalived: 5 s).
	DefaultGARPMasterDelay = 5 * time.Second
	// DefaultGARPMasterRepeat is the number of announcements per burst
	// (keepalived: 5).
	DefaultGARPMasterRepeat = 5
	// DefaultGARPInterval spaces the announcements of a burst. keepalived's
	// vrrp_garp_interval defaults to 0 (back to back); a small gap keeps a
	// burst from being lost whole to one switch or NIC queue hiccup while
	// finishing a 5-message burst in 40 ms.
	DefaultGARPInterval = 10 * time.Millisecond
	// DefaultGARPMasterRefreshRepeat is the number of announcements per
	// periodic refresh (keepalived: 1).
	DefaultGARPMasterRefreshRepeat = 1
)

// shutdownTimeout bounds the effects (release advert, RemoveVIPs) run after
// Run's context is cancelled.
const shutdownTimeout = 5 * time.Second

// dropLogEvery rate-limits the debug log of dropped packets and the
// warnings about failed sends, per reason (RFC 9568 §7.1: logging SHOULD be
// rate-limited).
const dropLogEvery = 10 * time.Second

// maxPacket is the receive buffer size: the largest IP payload.
const maxPacket = 1<<16 - 1

// GARPConfig is the gratuitous ARP / unsolicited NA schedule of a new Master,
// with keepalived's semantics (vrrp_garp_* in keepalived.conf(5)). Each
// announcement is one call of [Effects.Announce], which covers every
// virtual address.
//
// The zero value is keepalived's default schedule: a burst of 5 at once,
// a second burst of 5 after 5 s, no refresh. As with net.Dialer.KeepAlive,
// zero means "default" and a negative value means "off" where that is
// possible, so keepalived's "garp_master_delay 0" is MasterDelay < 0 here.
type GARPConfig struct {
	// MasterDelay is the delay of the second burst after becoming Master
	// (keepalived garp_master_delay). 0 means DefaultGARPMasterDelay;
	// negative means no second burst.
	MasterDelay time.Duration
	// MasterRepeat is the number of announcements per burst (keepalived
	// garp_master_repeat). 0 or less means DefaultGARPMasterRepeat.
	MasterRepeat int
	// Interval is the gap between the announcements of a burst (keepalived
	// garp_interval). 0 means DefaultGARPInterval; negative means back to
	// back.
	Interval time.Duration
	// MasterRefresh re-announces periodically while Master (keepalived
	// garp_master_refresh), counted from becoming Master. 0 or negative
	// means off, the default.
	MasterRefresh time.Duration
	// MasterRefreshRepeat is the number of announcements per refresh
	// (keepalived garp_master_refresh_repeat). 0 or less means
	// DefaultGARPMasterRefreshRepeat.
	MasterRefreshRepeat int
}

// normalized returns g with defaults applied: MasterDelay and
// MasterRefresh 0 = off, Interval >= 0, repeats >= 1.
func (g GARPConfig) normalized() GARPConfig {
	switch {
	case g.MasterDelay == 0:
		g.MasterDelay = DefaultGARPMasterDelay
	case g.MasterDelay < 0:
		g.MasterDelay = 0
	}
	if g.MasterRepeat <= 0 {
		g.MasterRepeat = DefaultGARPMasterRepeat
	}
	switch {
	case g.Interval == 0:
		g.Interval = DefaultGARPInterval
	case g.Interval < 0:
		g.Interval = 0
	}
	if g.MasterRefresh < 0 {
		g.MasterRefresh = 0
	}
	if g.MasterRefreshRepeat <= 0 {
		g.MasterRefreshRepeat = DefaultGARPMasterRefreshRepeat
	}
	return g
}

// InstanceConfig configures one VRRP instance (keepalived's vrrp_instance).
type InstanceConfig struct {
	// Name names the instance in logs, metrics and status, e.g. k0s's
	// "k0s-vip-0". Empty means "vrid-<VRID>".
	Name string
	// Machine is the protocol configuration.
	Machine MachineConfig
	// Filter holds the receive rules. Zero Version, VRID and Interval are
	// taken from Machine, empty Addresses from Addresses; set ones must
	// agree. For VRRPv2 its AuthType and AuthData are also what the
	// instance sends.
	Filter Filter
	// Addresses are the virtual addresses listed in adverts (1-255, of the
	// family of Source).
	Addresses []netip.Addr
	// Destinations are where adverts are sent: MulticastGroup(ipv6), or
	// the unicast peers. At least one.
	Destinations []netip.Addr
	// Source is the advert source for the checksum pseudo-header; zero
	// means Machine.Primary.
	Source netip.Addr
	// ChecksumForm is the VRRPv3-over-IPv4 checksum form to send.
	ChecksumForm ChecksumForm
	// GARP is the announcement schedule of a new Master.
	GARP GARPConfig
	// FineSleep, when set, sleeps for d with better than millisecond
	// precision, blocking the calling goroutine. The runtime's timers may
	// fire up to a millisecond late (the netpoller waits in whole
	// milliseconds); with FineSleep the instance arms its timer
	// FineSleepLead early and sleeps the rest with it, so that the
	// Master_Down timer, and with it the takeover, is not late. cmd/nlb
	// passes clock_nanosleep; nil keeps plain timers.
	FineSleep func(d time.Duration)
	// HandoverOnShutdown makes a Master that is shut down (Run's ctx
	// cancelled) release as [Instance.SetPriority](0) does: a
	// priority-0 advert, and the VIPs kept until the first advert of a
	// new Master, at most Master_Down_Interval, before Run shuts down.
	// Clients keep being served during the Backup's Skew_Time (a planned
	// restart costs no gap). False is keepalived's behaviour: the VIPs go
	// with the priority-0 advert. Set it when this node can still serve
	// the VIPs while it stops (nlb controller's proxy drains after VRRP).
	HandoverOnShutdown bool
}

// FineSleepLead is how much earlier than a deadline the instance wakes when
// InstanceConfig.FineSleep is set, to sleep the rest precisely.
const FineSleepLead = 2 * time.Millisecond

// InstanceStatus is a snapshot of an instance, for status output and tests.
type InstanceStatus struct {
	// Name and VRID identify the instance.
	Name string
	VRID uint8
	// State is the current state.
	State State
	// Priority is the effective priority.
	Priority uint8
	// Master is the primary address of the current Master as last seen
	// (our own in Master); zero when unknown.
	Master netip.Addr
	// MasterAdverInterval and MasterDownInterval are the current RFC
	// timer values (RFC 9568 §6.1).
	MasterAdverInterval time.Duration
	MasterDownInterval  time.Duration
	// Transitions counts state changes since Run started.
	Transitions uint64
	// LastTransition and LastReason describe the latest state change.
	LastTransition time.Time
	LastReason     string
	// VIPsConfigured reports whether the last AddVIPs succeeded and no
	// RemoveVIPs succeeded since.
	VIPsConfigured bool
	// Fault is true while the interface is down (SetFault).
	Fault bool
	// Recent lists the latest state changes, oldest first (at most
	// RecentTransitions).
	Recent []Transition
}

// RecentTransitions bounds InstanceStatus.Recent.
const RecentTransitions = 16

// Transition is one state change, for status output.
type Transition struct {
	// At is when it happened.
	At time.Time
	// From and To are the states.
	From, To State
	// Reason is the Machine's reason.
	Reason string
}

// Instance runs one virtual router: it drives a [Machine] with adverts read
// from a [Conn] and with the real clock, sends the Machine's adverts and
// carries out its [Effects], including the gratuitous ARP schedule of a new
// Master. Tests run it under testing/synctest with in-memory Conns.
//
// Failure policy: effect errors are logged and counted in
// nlb_vrrp_effect_errors_total, never fatal. A Master whose AddVIPs failed
// retries it at every Adver_Timer tick and starts its announcements only
// once it succeeds; a failed RemoveVIPs is retried whenever an advert is
// received outside Master. A failed send is retried only by the next
// advert.
type Instance struct {
	cfg  InstanceConfig
	name string
	vrid uint8
	conn Conn
	fx   Effects
	log  *slog.Logger
	met  *Metrics
	garp GARPConfig

	prioWake chan struct{}

	mu        sync.Mutex
	status    InstanceStatus
	wantPrio  uint8
	prioSet   bool
	wantFault bool
	faultSet  bool
	started   bool

	// Owned by the Run goroutine.
	m              *Machine
	sendBuf        []byte
	vipsUp         bool
	addPending     bool      // Master without VIPs: retry AddVIPs on Adver_Timer
	lastStep       time.Time // the latest time handed to the Machine
	announceAfter  bool      // start announcing once AddVIPs succeeds
	removePending  bool      // RemoveVIPs failed: retry on the next advert
	garpQueue      []time.Time
	nextRefresh    time.Time
	lastReannounce time.Time
	sendLimit      rateLimiter

	// VIP lifetimes (see VIPLifetime); lifetime 0 when Effects has no
	// RefreshVIPs.
	lifetime     time.Duration
	refreshGap   time.Duration // vipRefreshGap of the interval
	refreshedAt  time.Time     // the last successful AddVIPs or RefreshVIPs began
	vipsUntil    time.Time     // when the lifetime they set runs out; zero: no lifetime
	refreshLimit rateLimiter   // warnings about failed refreshes
}

// NewInstance checks cfg and returns an Instance that will use conn and fx.
// log may be nil (nothing is logged); m may be nil (nothing is counted).
// It does no I/O.
func NewInstance(cfg InstanceConfig, conn Conn, fx Effects, log *slog.Logger, m *Metrics) (*Instance, error) {
	mach, err := NewMachine(cfg.Machine)
	if err != nil {
		return nil, err
	}
	if conn == nil {
		return nil, errors.New("vrrp: NewInstance: nil Conn")
	}
	mc := cfg.Machine
	if cfg.Name == "" {
		cfg.Name = fmt.Sprintf("vrid-%d", mc.VRID)
	}
	if !cfg.Source.IsValid() {
		cfg.Source = mc.Primary
	}
	f := &cfg.Filter
	if f.Version == 0 {
		f.Version = mc.Version
	}
	if f.VRID == 0 {
		f.VRID = mc.VRID
	}
	if f.Interval == 0 {
		f.Interval = mc.AdvertInterval
	}
	if len(f.Addresses) == 0 {
		f.Addresses = cfg.Addresses // adverts must list ours (DropAddresses)
	}
	var errs []error
	if f.Version != mc.Version || f.VRID != mc.VRID || f.Interval != mc.AdvertInterval {
		errs = append(errs, fmt.Errorf("filter (version %d, VRID %d, interval %v) disagrees with the machine (version %d, VRID %d, interval %v)",
			f.Version, f.VRID, f.Interval, mc.Version, mc.VRID, mc.AdvertInterval))
	}
	if !sameAddresses(f.Addresses, cfg.Addresses) {
		errs = append(errs, fmt.Errorf("filter addresses %v disagree with the addresses %v", f.Addresses, cfg.Addresses))
	}
	if len(cfg.Destinations) == 0 {
		errs = append(errs, errors.New("no destinations"))
	}
	cfg.Addresses = slices.Clone(cfg.Addresses)
	cfg.Destinations = slices.Clone(cfg.Destinations)
	f.Peers = slices.Clone(f.Peers)
	f.Addresses = slices.Clone(f.Addresses)
	i := &Instance{
		cfg:      cfg,
		name:     cfg.Name,
		vrid:     mc.VRID,
		conn:     conn,
		fx:       fx,
		log:      log,
		met:      m,
		garp:     cfg.GARP.normalized(),
		prioWake: make(chan struct{}, 1),
		m:        mach,
	}
	if fx.RefreshVIPs != nil {
		i.lifetime = VIPLifetime(mc)
		i.refreshGap = vipRefreshGap(mc.AdvertInterval)
	}
	if i.log == nil {
		i.log = slog.New(slog.DiscardHandler)
	}
	i.log = i.log.With("instance", i.name, "vrid", int(i.vrid))
	// Encode one advert per destination now, so that every address and
	// interval problem surfaces here rather than on the wire.
	for _, dst := range cfg.Destinations {
		if _, err := i.advert(mc.Priority).Marshal(cfg.Source, dst, cfg.ChecksumForm); err != nil {
			errs = append(errs, fmt.Errorf("advert to %v: %w", dst, err))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("vrrp: invalid instance %q: %w", cfg.Name, errors.Join(errs...))
	}
	i.status = InstanceStatus{Name: i.name, VRID: i.vrid}
	i.syncStatus()
	return i, nil
}

// advert builds the advertisement the instance sends with priority prio.
func (i *Instance) advert(prio uint8) *Advertisement {
	mc := i.cfg.Machine
	a := &Advertisement{
		Version:   mc.Version,
		VRID:      mc.VRID,
		Priority:  prio,
		Interval:  mc.AdvertInterval, // a Master sends its own interval (RFC 9568 §5.2.7)
		Addresses: i.cfg.Addresses,
	}
	if mc.Version == Version2 && i.cfg.Filter.AuthType == AuthPassword {
		a.AuthType, a.AuthData = AuthPassword, i.cfg.Filter.AuthData
	}
	return a
}

// Status returns a snapshot of the instance. It is safe for concurrent use.
func (i *Instance) Status() InstanceStatus {
	i.mu.Lock()
	defer i.mu.Unlock()
	st := i.status
	st.Recent = slices.Clone(st.Recent)
	return st
}

// SetPriority changes the effective priority at run time (see
// [Machine.SetPriority] for the semantics, including 0). It does not wait
// for the change to be applied. Before Run, the value applies from the
// start. It is safe for concurrent use.
func (i *Instance) SetPriority(p uint8) {
	i.mu.Lock()
	i.wantPrio, i.prioSet = p, true
	i.mu.Unlock()
	select {
	case i.prioWake <- struct{}{}:
	default:
	}
}

type received struct {
	src netip.Addr
	ad  *Advertisement
	at  time.Time // when ReadFrom returned: timers run from the arrival
}

// Run runs the instance until ctx is cancelled or the Conn fails.
//
// It first calls RemoveVIPs, clearing addresses a crashed earlier run may
// have left (keepalived issues #672, #2361), then starts the Machine. A
// reader goroutine passes each packet through the [Filter]: drops are
// counted by reason and logged at debug level, rate-limited; valid adverts
// go to the Machine.
//
// While Master it gives the addresses a finite lifetime and refreshes it
// with its adverts (see [VIPLifetime]); a Master that finds that lifetime
// ran out, because it was stopped or stalled, steps down ([Machine.Lapse]).
//
// When ctx is cancelled Run shuts the Machine down (a Master sends a
// priority-0 advert so a Backup takes over after Skew_Time; the addresses
// are removed), closes the Conn and returns nil. If reading from the Conn
// fails, Run does the same and returns the error. Run may be called once.
func (i *Instance) Run(ctx context.Context) error {
	i.mu.Lock()
	if i.started {
		i.mu.Unlock()
		return fmt.Errorf("vrrp: instance %q: Run called twice", i.name)
	}
	i.started = true
	i.mu.Unlock()

	i.log.Info("vrrp instance starting", "priority", int(i.cfg.Machine.Priority),
		"version", int(i.cfg.Machine.Version), "interval", i.cfg.Machine.AdvertInterval.Seconds(),
		"primary", i.cfg.Machine.Primary, "vips", i.cfg.Addresses, "destinations", i.cfg.Destinations)
	i.met.setState(i.name, i.vrid, Initialize)

	// Stale addresses from an earlier run (P4 in vrrp.md §3).
	i.removeVIPs(ctx)

	pkts := make(chan received)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { i.readLoop(pkts, readErr, done) })

	now := time.Now()
	i.applyPriority(ctx, now)
	i.exec(ctx, now, i.m.Startup(now))
	i.syncStatus()

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var (
		runErr error
		wake   time.Time
		// stopping is ctx.Done() until a shutdown starts a handover
		// (HandoverOnShutdown), then nil; ectx is the context of the
		// effects, which must outlive ctx during the handover.
		stopping  = ctx.Done()
		prioWake  = i.prioWake
		ectx      = ctx
		handUntil time.Time
	)
loop:
	for {
		if !handUntil.IsZero() && (!i.m.HandingOver() || !time.Now().Before(handUntil)) {
			break // the handover on shutdown is over
		}
		if wake = i.nextWake(); wake.IsZero() {
			timer.Stop()
		} else if i.cfg.FineSleep != nil {
			timer.Reset(time.Until(wake) - FineSleepLead)
		} else {
			timer.Reset(time.Until(wake))
		}
		select {
		case <-stopping:
			i.checkLapse(ectx)
			if !i.cfg.HandoverOnShutdown || i.m.State() != Master {
				break loop
			}
			now := time.Now()
			// Released, the Machine waits at most its own
			// Master_Down_Interval at priority 0, longer than any
			// Backup's.
			limit := 3*i.m.MasterAdverInterval() + i.m.MasterAdverInterval()
			var cancel context.CancelFunc
			ectx, cancel = context.WithTimeout(context.WithoutCancel(ctx), limit+shutdownTimeout)
			defer cancel()
			stopping, prioWake = nil, nil // health changes no longer matter
			handUntil = now.Add(limit + time.Second)
			i.log.Info("vrrp shutting down: keeping the VIPs until a new Master speaks", "at_most", limit)
			i.exec(ectx, now, i.m.SetPriority(now, 0))
		case err := <-readErr:
			runErr = fmt.Errorf("vrrp: instance %q: reading: %w", i.name, err)
			i.log.Error("vrrp read failed, shutting down", "err", err)
			break loop
		case p := <-pkts:
			i.receive(ectx, p)
		case <-timer.C:
			now := time.Now()
			if rest := wake.Sub(now); rest > 0 && i.cfg.FineSleep != nil {
				// Woken FineSleepLead early: sleep the rest precisely,
				// unless an advertisement arrived meanwhile (it may
				// reset the timer, RFC 3768 §6.4.2).
				select {
				case p := <-pkts:
					i.receive(ectx, p)
					i.syncStatus()
					continue loop
				default:
				}
				i.cfg.FineSleep(rest)
				now = time.Now()
			}
			now = i.checkLapse(ectx)
			i.lastStep = now
			if dl := i.m.NextDeadline(); !dl.IsZero() && !now.Before(dl) {
				wasMaster := i.m.State() == Master
				i.exec(ectx, now, i.m.Expire(now))
				if wasMaster && i.addPending && i.m.State() == Master {
					i.retryAddVIPs(ectx, now) // the Adver_Timer tick
				}
			}
			i.runGARP(ectx, now)
		case <-prioWake:
			i.applyPriority(ectx, time.Now())
		}
		i.syncStatus()
	}
	timer.Stop()

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	now = time.Now()
	i.exec(sctx, now, i.m.Shutdown(now))
	if i.removePending || i.vipsUp {
		i.removeVIPs(sctx)
	}
	cancel()
	i.syncStatus()
	close(done)
	if err := i.conn.Close(); err != nil && runErr == nil {
		i.log.Debug("vrrp conn close", "err", err)
	}
	wg.Wait()
	i.log.Info("vrrp instance stopped")
	return runErr
}

// receive hands a valid advertisement to the Machine, with the time it
// arrived rather than the time this goroutine got to it, so that the
// Master_Down timer it resets runs from the advertisement itself, as it
// would in a single-threaded daemon. Time never goes backwards for the
// Machine: an arrival older than the last step is taken as that step.
func (i *Instance) receive(ctx context.Context, p received) {
	i.checkLapse(ctx)
	now := p.at
	if now.IsZero() || now.Before(i.lastStep) {
		now = i.lastStep
	}
	i.lastStep = now
	i.exec(ctx, now, i.m.Receive(now, p.src, p.ad))
	if i.removePending && i.m.State() != Master {
		i.removeVIPs(ctx)
	}
}

// SetFault reports the interface down (true) or up (false); see
// [Machine.SetFault]. Like SetPriority it does not wait.
func (i *Instance) SetFault(fault bool) {
	i.mu.Lock()
	i.wantFault, i.faultSet = fault, true
	i.mu.Unlock()
	select {
	case i.prioWake <- struct{}{}:
	default:
	}
}

// applyPriority hands a pending SetPriority and SetFault to the Machine.
func (i *Instance) applyPriority(ctx context.Context, now time.Time) {
	if i.vipsUp {
		now = i.checkLapse(ctx)
	}
	i.mu.Lock()
	p, ok := i.wantPrio, i.prioSet
	f, fok := i.wantFault, i.faultSet
	i.prioSet, i.faultSet = false, false
	i.mu.Unlock()
	if fok && f != i.m.Fault() {
		if f {
			i.log.Warn("vrrp interface down: fault, giving up the VIPs")
		} else {
			i.log.Info("vrrp interface up again")
		}
		i.exec(ctx, now, i.m.SetFault(now, f))
	}
	if !ok || p == i.m.Priority() {
		return
	}
	i.log.Info("vrrp priority changed", "from", int(i.m.Priority()), "to", int(p))
	i.exec(ctx, now, i.m.SetPriority(now, p))
}

// readLoop reads, filters and forwards adverts until done is closed or
// ReadFrom fails.
func (i *Instance) readLoop(out chan<- received, errc chan<- error, done <-chan struct{}) {
	buf := make([]byte, maxPacket)
	limit := rateLimiter{every: dropLogEvery}
	for {
		n, info, err := i.conn.ReadFrom(buf)
		at := time.Now()
		if err != nil {
			select {
			case <-done:
			case errc <- err:
			}
			return
		}
		ad, err := i.cfg.Filter.Check(info, buf[:n])
		if err != nil {
			reason := ReasonOf(err)
			if reason == "" {
				reason = DropMalformed
			}
			i.met.packetDropped(i.name, i.vrid, reason)
			if ok, suppressed := limit.allow(string(reason), time.Now()); ok {
				i.log.Debug("vrrp packet dropped", "reason", string(reason), "src", info.Src,
					"err", err, "suppressed", suppressed)
			}
			continue
		}
		i.met.advertReceived(i.name, i.vrid)
		select {
		case out <- received{src: info.Src, ad: ad, at: at}:
		case <-done:
			return
		}
	}
}

// exec carries out the Machine's actions in order (see [Action]).
func (i *Instance) exec(ctx context.Context, now time.Time, as []Action) {
	for _, a := range as {
		switch a.Kind {
		case ActionStateChange:
			// Logged after the batch's effects: on a takeover the VIP
			// goes up before the log line is formatted and written.
			defer i.log.Info("vrrp state change", "from", a.From.String(), "to", a.To.String(),
				"reason", a.Reason, "priority", int(i.m.Priority()))
			i.met.transition(i.name, i.vrid, a.From, a.To)
			i.mu.Lock()
			i.status.Transitions++
			i.status.LastTransition = now
			i.status.LastReason = a.Reason
			if len(i.status.Recent) == RecentTransitions {
				i.status.Recent = slices.Delete(i.status.Recent, 0, 1)
			}
			i.status.Recent = append(i.status.Recent, Transition{At: now, From: a.From, To: a.To, Reason: a.Reason})
			i.mu.Unlock()
			if a.From == Master {
				i.stopGARP()
				i.addPending, i.announceAfter = false, false
			}
			if a.To == Master {
				i.removePending = false
			}
		case ActionSendAdvert:
			i.send(a.Priority, now)
			i.refreshVIPs(ctx, now)
		case ActionAddVIPs:
			i.addVIPs(ctx)
		case ActionRemoveVIPs:
			i.removeVIPs(ctx)
		case ActionAnnounce:
			if i.addPending {
				i.announceAfter = true
			} else {
				i.startGARP(ctx, now)
			}
		case ActionReannounce:
			i.reannounce(ctx, now)
		}
	}
}

func (i *Instance) send(prio uint8, now time.Time) {
	ad := i.advert(prio)
	for _, dst := range i.cfg.Destinations {
		b, err := ad.AppendMarshal(i.sendBuf[:0], i.cfg.Source, dst, i.cfg.ChecksumForm)
		if err == nil {
			i.sendBuf = b
			err = i.conn.WriteTo(b, dst)
		}
		if err != nil {
			i.met.effectError(i.name, effectSend)
			if ok, suppressed := i.sendLimit.allow(dst.String(), now); ok {
				i.log.Warn("vrrp advert not sent", "dst", dst, "priority", int(prio), "err", err, "suppressed", suppressed)
			}
			continue
		}
		i.met.advertSent(i.name, i.vrid)
	}
}

func (i *Instance) addVIPs(ctx context.Context) {
	start := time.Now()
	if i.fx.AddVIPs != nil {
		if err := i.fx.AddVIPs(ctx, i.lifetime); err != nil {
			i.met.effectError(i.name, effectAddVIPs)
			i.log.Error("vrrp adding virtual addresses failed; retrying every advert interval", "err", err)
			i.addPending = true
			return
		}
	}
	i.addPending, i.vipsUp = false, true
	i.setLifetime(start)
}

// setLifetime records a lifetime (re)started at start.
func (i *Instance) setLifetime(start time.Time) {
	i.refreshedAt, i.vipsUntil = start, time.Time{}
	if i.lifetime > 0 {
		i.vipsUntil = start.Add(i.lifetime)
	}
}

// lapsed reports whether the addresses' lifetime ran out (or is about
// to) at now: the kernel removes them, and nothing must refresh them.
func (i *Instance) lapsed(now time.Time) bool {
	return i.vipsUp && !i.vipsUntil.IsZero() && !now.Before(i.vipsUntil.Add(-vipLapseMargin))
}

// checkLapse hands the Machine a Lapse when a Master's addresses outlived
// their lifetime: the process was stopped, or this goroutine stalled, for
// longer than any Backup waits. It reads the clock itself (the time of a
// queued packet or timer may predate the stall) and returns the time it
// used, never before the last step.
func (i *Instance) checkLapse(ctx context.Context) time.Time {
	now := time.Now()
	if now.Before(i.lastStep) {
		now = i.lastStep
	}
	if i.m.State() != Master || !i.lapsed(now) {
		return now
	}
	silent := now.Sub(i.refreshedAt)
	i.log.Warn("vrrp the VIPs' lifetime ran out while master: this process was stopped or stalled; "+
		"the kernel removed them and a backup has taken over", "silent", silent.Round(time.Millisecond).String(),
		"lifetime", i.lifetime.String())
	i.lastStep = now
	i.exec(ctx, now, i.m.Lapse(now, silent))
	return now
}

// refreshVIPs restarts the addresses' lifetime with an advert of a Master
// (or of the priority-0 release that keeps them until a new Master
// speaks), when vipRefreshGap has passed since the last refresh. The
// release advert always refreshes: the handover may last a priority-0
// Master_Down_Interval. A failed refresh is retried with the next advert;
// if they keep failing, the lifetime runs out and the Master steps down.
func (i *Instance) refreshVIPs(ctx context.Context, at time.Time) {
	if i.lifetime == 0 || !i.vipsUp || i.addPending {
		return
	}
	release := i.m.HandingOver()
	if i.m.State() != Master && !release {
		return // the shutdown's release advert: RemoveVIPs follows
	}
	start := time.Now()
	if !release && start.Sub(i.refreshedAt) < i.refreshGap {
		return
	}
	if i.lapsed(start) {
		return // gone, or about to be: never re-create them here
	}
	if err := i.fx.RefreshVIPs(ctx, i.lifetime); err != nil {
		i.met.effectError(i.name, effectRefreshVIPs)
		if ok, suppressed := i.refreshLimit.allow("refresh", at); ok {
			i.log.Warn("vrrp refreshing the VIPs' lifetime failed; retrying with the next advert",
				"err", err, "expires_in", time.Until(i.vipsUntil).Round(time.Millisecond).String(), "suppressed", suppressed)
		}
		return
	}
	i.setLifetime(start)
}

func (i *Instance) retryAddVIPs(ctx context.Context, now time.Time) {
	i.addVIPs(ctx)
	if !i.addPending {
		i.log.Info("vrrp virtual addresses added after retry")
		if i.announceAfter {
			i.announceAfter = false
			i.startGARP(ctx, now)
		}
	}
}

func (i *Instance) removeVIPs(ctx context.Context) {
	if i.fx.RemoveVIPs != nil {
		if err := i.fx.RemoveVIPs(ctx); err != nil {
			i.met.effectError(i.name, effectRemoveVIPs)
			i.log.Error("vrrp removing virtual addresses failed; retrying on the next advert", "err", err)
			i.removePending = true
			return
		}
	}
	i.removePending, i.vipsUp = false, false
	i.vipsUntil = time.Time{}
}

func (i *Instance) announce(ctx context.Context) {
	if i.fx.Announce == nil {
		return
	}
	if err := i.fx.Announce(ctx); err != nil {
		i.met.effectError(i.name, effectAnnounce)
		i.log.Warn("vrrp announcement failed", "err", err)
	}
}

// startGARP announces now and schedules the rest of the first burst, the
// second burst after MasterDelay and the refreshes.
func (i *Instance) startGARP(ctx context.Context, now time.Time) {
	g := i.garp
	i.garpQueue = i.garpQueue[:0]
	for k := 1; k < g.MasterRepeat; k++ {
		i.garpQueue = append(i.garpQueue, now.Add(time.Duration(k)*g.Interval))
	}
	if g.MasterDelay > 0 {
		for k := range g.MasterRepeat {
			i.garpQueue = append(i.garpQueue, now.Add(g.MasterDelay+time.Duration(k)*g.Interval))
		}
	}
	slices.SortFunc(i.garpQueue, time.Time.Compare)
	i.nextRefresh = time.Time{}
	if g.MasterRefresh > 0 {
		i.nextRefresh = now.Add(g.MasterRefresh)
	}
	i.announce(ctx)
}

// ReannounceDelay is how long after hearing a lower Master the instance
// repeats its announcement burst. The lower Master announced the VIPs
// right after the advert that was heard (a tie of Backups whose timers ran
// out together, or a healed split brain); its last gratuitous ARPs may
// reach the clients just after an immediate answer, and a client would
// then send to a node that gives the VIPs up (keepalived's
// garp_lower_prio_delay / _repeat).
const ReannounceDelay = 100 * time.Millisecond

// ReannounceEcho is when, after hearing a lower Master, the instance sends
// one more announcement between the immediate one and the burst at
// ReannounceDelay: the lower Master's gratuitous ARPs usually leave a few
// milliseconds after its advert (once its VIPs are configured), so this
// one corrects most clients within ReannounceEcho instead of
// ReannounceDelay (measured in make bench-chaos: a 100 ms outage in an
// equal-priority takeover).
const ReannounceEcho = 15 * time.Millisecond

// reannounce answers a lower Master: one announcement now, one at
// ReannounceEcho, and a burst of GARP.MasterRepeat messages
// ReannounceDelay later, at most once per advertisement interval (a peer
// that keeps advertising lower, e.g. over a one-way link, does not turn it
// into a flood).
func (i *Instance) reannounce(ctx context.Context, now time.Time) {
	if i.addPending || !i.vipsUp {
		return // the addresses are not up: nothing to announce yet
	}
	if !i.lastReannounce.IsZero() && now.Sub(i.lastReannounce) < i.cfg.Machine.AdvertInterval {
		return
	}
	i.lastReannounce = now
	g := i.garp
	i.garpQueue = append(i.garpQueue, now.Add(ReannounceEcho))
	for k := range g.MasterRepeat {
		i.garpQueue = append(i.garpQueue, now.Add(ReannounceDelay+time.Duration(k)*g.Interval))
	}
	slices.SortFunc(i.garpQueue, time.Time.Compare)
	i.log.Info("vrrp lower-priority master heard: announcing the VIPs again")
	i.announce(ctx)
}

// runGARP sends the announcements that are due.
func (i *Instance) runGARP(ctx context.Context, now time.Time) {
	for len(i.garpQueue) > 0 && !now.Before(i.garpQueue[0]) {
		i.garpQueue = i.garpQueue[1:]
		i.announce(ctx)
	}
	if !i.nextRefresh.IsZero() && !now.Before(i.nextRefresh) {
		g := i.garp
		for k := 1; k < g.MasterRefreshRepeat; k++ {
			i.garpQueue = append(i.garpQueue, now.Add(time.Duration(k)*g.Interval))
		}
		slices.SortFunc(i.garpQueue, time.Time.Compare)
		i.nextRefresh = i.nextRefresh.Add(g.MasterRefresh)
		i.announce(ctx)
	}
}

func (i *Instance) stopGARP() {
	i.garpQueue = i.garpQueue[:0]
	i.nextRefresh = time.Time{}
}

// nextWake is the earliest of the Machine's deadline and the GARP schedule.
func (i *Instance) nextWake() time.Time {
	w := i.m.NextDeadline()
	for _, t := range []time.Time{i.nextRefresh, firstOr(i.garpQueue)} {
		if !t.IsZero() && (w.IsZero() || t.Before(w)) {
			w = t
		}
	}
	return w
}

func firstOr(ts []time.Time) time.Time {
	if len(ts) == 0 {
		return time.Time{}
	}
	return ts[0]
}

// syncStatus copies the Machine's view into the status snapshot.
func (i *Instance) syncStatus() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.status.State = i.m.State()
	i.status.Priority = i.m.Priority()
	if a := i.m.MasterAddr(); a.IsValid() {
		i.status.Master = a
	}
	i.status.MasterAdverInterval = i.m.MasterAdverInterval()
	i.status.MasterDownInterval = i.m.MasterDownInterval()
	i.status.VIPsConfigured = i.vipsUp
	i.status.Fault = i.m.Fault()
}

// rateLimiter allows one event per key per period and counts the rest.
type rateLimiter struct {
	every time.Duration
	last  map[string]time.Time
	count map[string]int
}

// allow reports whether an event for key may be logged now, and how many
// were suppressed since the last one allowed.
func (r *rateLimiter) allow(key string, now time.Time) (bool, int) {
	if r.last == nil {
		r.last, r.count = map[string]time.Time{}, map[string]int{}
		if r.every == 0 {
			r.every = dropLogEvery
		}
	}
	if last, ok := r.last[key]; ok && now.Sub(last) < r.every {
		r.count[key]++
		return false, 0
	}
	n := r.count[key]
	r.last[key], r.count[key] = now, 0
	return true, n
}
