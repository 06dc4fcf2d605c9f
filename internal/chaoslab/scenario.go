package chaoslab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/observe"
)

// Result is one scenario run. The fields up to LeftoverVIPs are those of
// the issue; the package documentation defines each.
type Result struct {
	Impl           string   `json:"impl"`
	Scenario       Scenario `json:"scenario"`
	Rep            int      `json:"rep"`
	OutageMS       float64  `json:"outage_ms"`
	FailedRequests int      `json:"failed_requests"`
	Requests       int      `json:"requests"`
	DupVIPMS       float64  `json:"dup_vip_ms"`
	LeftoverVIPs   int      `json:"leftover_vips"`

	// FailoverMS runs from the fault to the first advertisement of
	// another controller; nil when there was none.
	FailoverMS *float64 `json:"failover_ms"`
	// OutageBursts is the number of failure bursts in the fault phase.
	OutageBursts int `json:"outage_bursts"`
	// Recovered is false when the probes were still failing when the
	// fault phase ended.
	Recovered bool `json:"recovered"`
	// FaultFailed and RestoreFailed split FailedRequests at tRecover.
	FaultFailed   int `json:"fault_failed"`
	RestoreFailed int `json:"restore_failed"`
	// DupVIPFaultMS is the time with two VIP holders during the fault
	// phase.
	DupVIPFaultMS float64 `json:"dup_vip_fault_ms"`
	// WatchBrokenMS is the longest total break of one watch;
	// WatchReconnects counts the reconnects of all watches.
	WatchBrokenMS   float64 `json:"watch_broken_ms"`
	WatchReconnects int     `json:"watch_reconnects"`
	// Victim is the host faulted; HoldMS the fault phase (t0 to
	// tRecover), SettleMS the recovery (tRecover to tEnd).
	Victim   string  `json:"victim"`
	HoldMS   float64 `json:"hold_ms"`
	SettleMS float64 `json:"settle_ms"`
	// HoldTimedOut is true when the fault phase ended at MaxHold.
	HoldTimedOut bool `json:"hold_timed_out,omitempty"`
	// StopMS (restart) runs from the SIGTERM to the end of Impl.Stop:
	// the victim's handover and drain. StopError is Impl.Stop's error (a
	// stop that had to be SIGKILLed, or an unclean exit); the run is
	// measured all the same.
	StopMS    float64 `json:"stop_ms,omitempty"`
	StopError string  `json:"stop_error,omitempty"`

	// Errors summarises the failed probes of the scenario by kind (see
	// ErrorSummary), most frequent first, at most five kinds.
	Errors []string `json:"errors,omitempty"`

	// Established counts the connections and watches established before
	// the fault that never reconnect (Survivors), SurvivorBackends the API
	// servers they reached. Broken counts those broken between t0 and tEnd
	// whose API server was not faulted (the ones a load balancer could
	// have kept); BrokenVictim those of the faulted API server (kill,
	// apiserver, link). BrokenErrors are the first errors of Broken.
	Established      int      `json:"established"`
	SurvivorBackends int      `json:"survivor_backends"`
	Broken           int      `json:"broken"`
	BrokenVictim     int      `json:"broken_victim"`
	BrokenErrors     []string `json:"broken_errors,omitempty"`
}

// FaultPhase is when, after one of the victim's advertisements, a
// scenario strikes.
const FaultPhase = 10 * time.Millisecond

// StopWait bounds the wait, once the fault phase is over, for the
// graceful stop of the restart scenario: longer than any Impl.Stop takes
// (NLB.Stop: NLBStopTimeout for SIGTERM, then 10 s for SIGKILL).
const StopWait = time.Minute

// stopped is the outcome of the restart scenario's Impl.Stop.
type stopped struct {
	err error
	at  time.Time
}

// afterAdvert waits for the next advertisement from src, then FaultPhase.
func (l *Lab) afterAdvert(ctx context.Context, src netip.Addr) error {
	wctx, cancel := context.WithTimeout(ctx, 3*l.Params.Advert)
	defer cancel()
	_, _, err := l.obs.WaitFor(wctx, l.obs.Len(), func(e observe.Event) bool {
		return e.Kind == observe.Advert && e.Src == src && e.VRID == l.Params.VRID && e.Priority != 0
	})
	if err != nil {
		return fmt.Errorf("no advertisement from %s: %w", src, err)
	}
	return netlab.Sleep(ctx, FaultPhase)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Run runs one scenario on a settled lab and measures it.
func (s *Session) Run(ctx context.Context, sc Scenario) (Result, error) {
	l, tm, to := s.Lab, s.Lab.opts.Timing, s.Lab.opts.Traffic
	res := Result{Impl: s.Impl.Name(), Scenario: sc}
	st, err := s.Settle(ctx)
	if err != nil {
		return res, fmt.Errorf("chaoslab: %s %s: not settled before the fault: %w", s.Impl.Name(), sc, err)
	}
	vi := st.Master
	victim := l.Cluster.Controllers[vi]
	res.Victim = victim.Host.Name
	s.Traffic.Avoid(vi)
	defer s.Traffic.Avoid(-1)
	// Let the ticker's next writes go elsewhere before the fault.
	if err := netlab.Sleep(ctx, 2*to.Tick); err != nil {
		return res, err
	}
	var surv *Survivors
	if to.Survivors > 0 || to.SurvivorWatches > 0 {
		server := "https://" + netip.AddrPortFrom(l.Params.VIP.Addr(), uint16(s.Impl.Port())).String()
		if surv, err = StartSurvivors(ctx, l.Cluster, server, SurvivorSources(), max(to.Survivors, 0), max(to.SurvivorWatches, 0)); err != nil {
			return res, fmt.Errorf("chaoslab: %s %s: %w", s.Impl.Name(), sc, err)
		}
		defer surv.Stop()
	}
	// Strike at the same phase of the advertisement cycle every time:
	// FaultPhase after one of the victim's advertisements, so that the
	// backups wait a whole Master_Down_Interval (the worst case).
	if err := l.afterAdvert(ctx, victim.Addr); err != nil {
		return res, fmt.Errorf("chaoslab: %s %s: %w", s.Impl.Name(), sc, err)
	}

	t0 := time.Now()
	// Restart: Impl.Stop runs in the background (it lasts as long as the
	// victim's handover and drain); stopc delivers its outcome, stop holds
	// it once received.
	var (
		stopc chan stopped
		stop  *stopped
	)
	switch sc {
	case Kill:
		var wg sync.WaitGroup
		var kerr, aerr error
		wg.Add(1)
		go func() { defer wg.Done(); kerr = s.Impl.Kill(vi) }()
		aerr = victim.Kill()
		wg.Wait()
		err = errors.Join(kerr, aerr)
	case APIServer:
		err = victim.Kill()
	case LBKill:
		err = s.Impl.Kill(vi)
	case Link:
		err = victim.Host.LinkDown()
	case Restart:
		stopc = make(chan stopped, 1)
		go func() {
			err := s.Impl.Stop(vi)
			stopc <- stopped{err: err, at: time.Now()}
		}()
	default:
		err = fmt.Errorf("unknown scenario %q", sc)
	}
	if err != nil {
		return res, fmt.Errorf("chaoslab: %s %s on %s: %w", s.Impl.Name(), sc, victim.Host.Name, err)
	}
	l.logf("%s %s: fault on %s", s.Impl.Name(), sc, victim.Host.Name)

	// The fault phase.
	hold := tm.MinHold
	if sc == Link {
		hold = tm.LinkHold
	}
	why := ""
	for {
		now := time.Now()
		if now.Sub(t0) >= tm.MaxHold {
			res.HoldTimedOut = true
			l.logf("%s %s: fault phase ended after %v without recovery: %s", s.Impl.Name(), sc, tm.MaxHold, why)
			break
		}
		if stopc != nil && stop == nil {
			select {
			case st := <-stopc:
				stop = &st
			default:
			}
		}
		why = s.failedOver(now, victim.Addr, t0)
		if why == "" && stopc != nil && stop == nil {
			why = "the graceful stop has not finished"
		}
		if why == "" && now.Sub(t0) >= hold {
			break
		}
		if err := netlab.Sleep(ctx, 100*time.Millisecond); err != nil {
			return res, err
		}
	}
	if stopc != nil {
		// The restart must not race the old process (Start does nothing
		// while it runs): wait for the stop, which its own timeouts bound.
		if stop == nil {
			t := time.NewTimer(StopWait)
			select {
			case st := <-stopc:
				stop = &st
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
		if stop == nil {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			return res, fmt.Errorf("chaoslab: %s %s: the graceful stop of %s did not end within %v after the fault phase", s.Impl.Name(), sc, victim.Host.Name, StopWait)
		}
		res.StopMS = ms(stop.at.Sub(t0))
		if stop.err != nil {
			res.StopError = stop.err.Error()
		}
		l.logf("%s %s: stop of %s took %v (error: %v)", s.Impl.Name(), sc, victim.Host.Name, stop.at.Sub(t0).Round(time.Millisecond), stop.err)
	}

	tRecover := time.Now()
	switch sc {
	case Kill:
		// As a kubelet would: both static pods again.
		err = errors.Join(s.Impl.Start(vi), victim.Start())
	case APIServer:
		err = victim.Start()
	case Link:
		err = victim.Host.LinkUp()
	case Restart, LBKill:
		err = s.Impl.Start(vi)
	}
	if err != nil {
		return res, fmt.Errorf("chaoslab: %s %s: restore %s: %w", s.Impl.Name(), sc, victim.Host.Name, err)
	}
	l.logf("%s %s: recovery action after %v", s.Impl.Name(), sc, tRecover.Sub(t0).Round(time.Millisecond))

	end, err := s.Settle(ctx)
	if err != nil {
		return res, fmt.Errorf("chaoslab: %s %s: not settled after the restore: %w", s.Impl.Name(), sc, err)
	}
	tEnd := end.At
	if err := s.Traffic.WaitDone(ctx, tEnd); err != nil {
		return res, err
	}
	s.measure(&res, victim.Addr, t0, tRecover, end)
	if surv != nil {
		var victims []string
		switch sc {
		case Kill, APIServer, Link:
			victims = []string{victim.Name}
		}
		cnt := surv.Count(t0, tEnd, victims...)
		res.Established, res.SurvivorBackends = cnt.Established, cnt.Backends
		res.Broken, res.BrokenVictim, res.BrokenErrors = cnt.Broken, cnt.BrokenVictim, cnt.Errors
	}

	// A VIP left on a controller that is not the master would distort the
	// next round: count it (above) and remove it.
	for _, h := range end.Holders {
		if h == end.Master {
			continue
		}
		host := l.Cluster.Controllers[h].Host
		l.logf("%s %s: removing the VIP left on %s", s.Impl.Name(), sc, host.Name)
		if err := host.RemoveAddr(l.Params.VIP); err != nil {
			return res, err
		}
	}
	return res, nil
}

// failedOver says what is missing for the fault phase to end: one
// controller other than victim advertising, and clean probes.
func (s *Session) failedOver(now time.Time, victim netip.Addr, t0 time.Time) string {
	l := s.Lab
	srcs, _, n := Advertisers(l.Adverts(), l.Params.VRID, now, l.Params.Advert*3/2)
	if len(srcs) != 1 || n == 0 || srcs[0] == victim || l.controller(srcs[0]) < 0 {
		return fmt.Sprintf("advertisers %v", srcs)
	}
	if err := s.Traffic.Clean(now, l.opts.Timing.CleanFor, 500*time.Millisecond); err != nil {
		return "traffic: " + err.Error()
	}
	if now.Sub(t0) < l.opts.Timing.CleanFor {
		return "the fault is too recent"
	}
	return ""
}

// measure fills res from the records of [t0 - Timeout, end.At].
func (s *Session) measure(res *Result, victim netip.Addr, t0, tRecover time.Time, end Settled) {
	l, tm, to := s.Lab, s.Lab.opts.Timing, s.Lab.opts.Traffic
	tEnd := end.At
	from := t0.Add(-to.Timeout)
	probes := s.Traffic.Probes()
	bursts := Bursts(probes, from, tRecover, tm.Quiet)
	res.OutageMS = ms(Outage(bursts))
	res.OutageBursts = len(bursts)
	res.Recovered = len(bursts) == 0 || bursts[len(bursts)-1].Recovered
	res.Requests, res.FailedRequests = CountProbes(probes, from, tEnd)
	_, res.FaultFailed = CountProbes(probes, from, tRecover)
	res.RestoreFailed = res.FailedRequests - res.FaultFailed

	held := l.VIPs.Held()
	res.DupVIPMS = ms(Overlap(held, tRecover, tEnd))
	res.DupVIPFaultMS = ms(Overlap(held, t0, tRecover))
	for _, h := range end.Holders {
		if h != end.Master {
			res.LeftoverVIPs++
		}
	}
	if a, ok := FirstAdvertOther(l.Adverts(), l.Params.VRID, t0, victim); ok {
		f := ms(a.Time.Sub(t0))
		res.FailoverMS = &f
	}
	var worst time.Duration
	for _, evs := range s.Traffic.WatchEvents() {
		worst = max(worst, WatchBroken(evs, t0, tEnd, to.Tick))
	}
	res.WatchBrokenMS = ms(worst)
	res.WatchReconnects = s.Traffic.Reconnects(t0, tEnd)
	res.HoldMS = ms(tRecover.Sub(t0))
	res.SettleMS = ms(tEnd.Sub(tRecover))

	res.Errors = ErrorSummary(window(probes, from, tEnd))
	if len(res.Errors) > 5 {
		res.Errors = res.Errors[:5]
	}
}

// ErrorSummary groups the failed probes by error (client ports left out)
// and returns one line per kind, most frequent first: count, the first
// and last start, and the error.
func ErrorSummary(ps []Probe) []string {
	type kind struct {
		n           int
		first, last time.Time
	}
	kinds := map[string]*kind{}
	var order []string
	for _, p := range ps {
		if p.OK {
			continue
		}
		msg := stripPorts(p.Err)
		k := kinds[msg]
		if k == nil {
			k = &kind{first: p.Start}
			kinds[msg] = k
			order = append(order, msg)
		}
		k.n++
		k.last = p.Start
	}
	slices.SortStableFunc(order, func(a, b string) int { return kinds[b].n - kinds[a].n })
	var out []string
	for _, msg := range order {
		k := kinds[msg]
		out = append(out, fmt.Sprintf("%d× %s-%s %s", k.n, k.first.Format("15:04:05.000"), k.last.Format("15:04:05.000"), msg))
	}
	return out
}

// stripPorts removes the local "a.b.c.d:port->" part of a socket error,
// which differs for every connection.
func stripPorts(s string) string {
	for {
		i := strings.Index(s, "->")
		if i < 0 {
			return s
		}
		j := strings.LastIndex(s[:i], " ")
		s = s[:j+1] + s[i+2:]
	}
}
