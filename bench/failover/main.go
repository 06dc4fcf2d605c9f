// Command failover measures VRRP failover of nlb and keepalived side by side,
// in one run, in the same namespace lab: two nodes (priority 150 master,
// priority 100 backup) and a bystander that probes the VIP with ARP every
// 0.5 ms and timestamps every advertisement it hears.
//
// For every repetition, VRRP version/interval and stop mode (SIGKILL, or
// SIGTERM with its priority-0 release), each implementation is measured in
// turn (alternating which goes first). The master is signalled 10 ms after
// one of its advertisements, so a kill always lands at the same phase.
//
//   - failover_ms: from the signal to the first ARP reply for the VIP from
//     the backup's MAC address;
//   - overhead_ms: from the old master's last advertisement to that same
//     moment, minus the RFC time the backup must wait: Master_Down_Interval
//     after a kill, Skew_Time after a priority-0 release. It is what the
//     implementation adds on top of the protocol: timer slack, state
//     change, address configuration.
//   - stale_vip_ms: from the signal to the VIP leaving the old master's
//     interface (polled every 5 ms from the signal on), where until then its kernel answers
//     ARP for it beside the new master. After a kill nothing removes it
//     but nlb's VIP lifetime (vrrp.VIPLifetime: 5 s at 1 s intervals, 2 s
//     at 100 ms); keepalived's stays for good (keepalived #672). The
//     observation window is that lifetime plus 3 s: a VIP still there
//     then is reported as not gone (stale_vip_gone false, stale_vip_ms the
//     window).
//
// It prints one JSON object per line, then a Markdown table of medians.
// Run it as root through `make bench-failover`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nlb-dev/nlb/internal/benchrun"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/observe"
	"github.com/nlb-dev/nlb/internal/vrrplab"
	"github.com/nlb-dev/nlb/vrrp"
)

func main() { benchrun.Main("bench-failover", run) }

// setup is one row of the benchmark: a VRRP version and interval.
type setup struct {
	version  int
	interval time.Duration
}

// result is one measurement, printed as one JSON line.
type result struct {
	Impl       string  `json:"impl"`
	VRRP       int     `json:"vrrp"`
	AdvertMS   int64   `json:"advert_ms"`
	Stop       string  `json:"stop"`
	FailoverMS float64 `json:"failover_ms"`
	OverheadMS float64 `json:"overhead_ms"`
	// StaleVIPMS is how long the VIP stayed on the old master after the
	// signal; StaleGone is false when it was still there at the end of
	// the observation window, StaleWindowMS.
	StaleVIPMS    float64 `json:"stale_vip_ms"`
	StaleGone     bool    `json:"stale_vip_gone"`
	StaleWindowMS float64 `json:"stale_window_ms"`
}

const (
	masterPrio = 150
	backupPrio = 100
	// signalPhase is when, after one of the master's advertisements, the
	// master is signalled.
	signalPhase = 10 * time.Millisecond
	// stalePoll is how often the old master's addresses are looked at
	// for the stale VIP.
	stalePoll = 5 * time.Millisecond
	// staleSlack is how much longer than nlb's VIP lifetime the stale VIP
	// is watched for.
	staleSlack = 3 * time.Second
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	bench := benchrun.New("failover", stdout, stderr, benchrun.Options{
		Reps: 5, RepsUsage: "repetitions of every combination",
		Root: "needs root: it builds network namespaces and runs VRRP daemons",
	})
	impls := bench.Flags.String("impls", "nlb,keepalived", "implementations to measure")
	if err := bench.Parse(args); err != nil {
		return err
	}
	if err := bench.Setup(ctx); err != nil {
		return err
	}
	setups := []setup{{2, time.Second}, {3, 100 * time.Millisecond}}
	stops := []string{"kill", "term"}
	implList := strings.Split(*impls, ",")

	lab, err := netlab.New("failover", netlab.Options{Hosts: 3})
	if err != nil {
		return err
	}
	defer lab.Close()
	a, b, by := lab.Hosts[0], lab.Hosts[1], lab.Hosts[2]
	octx, cancelObs := context.WithCancel(ctx)
	defer cancelObs()
	vip := lab.VIP4(0)
	obs, err := observe.Listen(octx, observe.Config{Netns: by.NS, Interface: by.IfName, VIP: vip.Addr(), ProbeInterval: 500 * time.Microsecond})
	if err != nil {
		return err
	}

	var results []result
	for rep := 0; rep < bench.Reps; rep++ {
		for _, s := range setups {
			for _, stop := range stops {
				order := slices.Clone(implList)
				if rep%2 == 1 {
					slices.Reverse(order)
				}
				for _, impl := range order {
					if err := ctx.Err(); err != nil {
						return err
					}
					p := vrrplab.Params{Version: s.version, Interval: s.interval, VRID: 51, VIP: vip, AuthPass: "bench"}
					r, err := measure(ctx, vrrplab.Impl(impl), bench.NLB, obs, a, b, p, stop)
					if err != nil {
						return fmt.Errorf("%s v%d %s rep %d: %w", impl, s.version, stop, rep, err)
					}
					results = append(results, r)
					if err := bench.Add(r); err != nil {
						return err
					}
				}
			}
		}
	}
	cancelObs()
	obs.Wait()
	table := markdown(results, implList)
	return bench.Finish(table)
}

// measure runs one failover: start master a and backup b, wait until a
// answers ARP for the VIP and b has settled, signal a, and wait for b to
// answer.
func measure(ctx context.Context, impl vrrplab.Impl, nlbPath string, obs *observe.Observer,
	a, b *netlab.Host, p vrrplab.Params, stop string) (result, error) {
	r := result{Impl: string(impl), VRRP: p.Version, AdvertMS: p.Interval.Milliseconds(), Stop: stop}
	for _, h := range []*netlab.Host{a, b} {
		if err := h.RemoveAddr(p.VIP); err != nil {
			return r, err
		}
	}
	dir, err := os.MkdirTemp("", "nlb-failover-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	dirA, dirB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	_ = os.Mkdir(dirA, 0o700)
	_ = os.Mkdir(dirB, 0o700)

	start := obs.Len()
	master, err := vrrplab.Start(impl, nlbPath, a, p, masterPrio, dirA)
	if err != nil {
		return r, err
	}
	defer master.Stop()
	// The master comes up first and takes over after Master_Down_Interval.
	wctx, cancel := context.WithTimeout(ctx, p.MasterDown(masterPrio)+10*time.Second)
	_, _, err = obs.WaitFor(wctx, start, isARPFrom(a))
	cancel()
	if err != nil {
		return r, fmt.Errorf("master never answered ARP: %w\n%s", err, master.Log())
	}
	backup, err := vrrplab.Start(impl, nlbPath, b, p, backupPrio, dirB)
	if err != nil {
		return r, err
	}
	defer backup.Stop()
	// Let the backup hear several advertisements so it is settled in
	// Backup with a running down timer.
	if err := netlab.Sleep(ctx, 3*p.Interval+500*time.Millisecond); err != nil {
		return r, err
	}
	if has, _ := b.HasAddr(p.VIP); has {
		return r, fmt.Errorf("backup holds the VIP before the failover\n%s", backup.Log())
	}

	// Signal at a fixed phase of the advertisement cycle, the same for
	// every implementation: signalPhase after an advertisement from the
	// master. A random phase would add up to one interval of noise to a
	// kill's failover time.
	wctx, cancel = context.WithTimeout(ctx, 3*p.Interval)
	_, _, err = obs.WaitFor(wctx, obs.Len(), func(e observe.Event) bool {
		return e.Kind == observe.Advert && e.Src == a.Addr4
	})
	cancel()
	if err != nil {
		return r, fmt.Errorf("no advertisement from the master: %w", err)
	}
	if err := netlab.Sleep(ctx, signalPhase); err != nil {
		return r, err
	}
	mark := obs.Len()
	t0 := time.Now()
	sig := master.Kill
	wait := p.MasterDown(backupPrio)
	if stop == "term" {
		sig = master.Term
		wait = p.Skew(backupPrio)
	}
	window := vrrp.VIPLifetime(vrrp.MachineConfig{Version: vrrp.Version(p.Version), AdvertInterval: p.Interval}) + staleSlack
	sctx, cancelStale := context.WithCancel(ctx)
	defer cancelStale()
	type staleResult struct {
		gone time.Time
		err  error
	}
	staleDone := make(chan staleResult, 1)
	if err := sig(); err != nil {
		return r, err
	}
	go func() {
		gone, err := staleVIP(sctx, a, p.VIP, t0.Add(window))
		staleDone <- staleResult{gone, err}
	}()
	wctx, cancel = context.WithTimeout(ctx, p.MasterDown(backupPrio)+10*time.Second)
	ev, _, err := obs.WaitFor(wctx, mark, isARPFrom(b))
	cancel()
	if err != nil {
		return r, fmt.Errorf("backup never answered ARP: %w\nbackup log:\n%s", err, backup.Log())
	}
	last, ok := lastAdvertFrom(obs.Events(), a.Addr4, ev.Time)
	if !ok {
		return r, errors.New("no advertisement from the master was seen")
	}
	r.FailoverMS = ms(ev.Time.Sub(t0))
	r.OverheadMS = ms(ev.Time.Sub(last) - wait)
	r.StaleWindowMS = ms(window)
	sr := <-staleDone
	if sr.err != nil {
		return r, sr.err
	}
	gone := sr.gone
	r.StaleGone = !gone.IsZero()
	r.StaleVIPMS = r.StaleWindowMS
	if r.StaleGone {
		r.StaleVIPMS = ms(gone.Sub(t0))
	}
	if stop == "term" {
		if err := master.Wait(5 * time.Second); err != nil {
			return r, fmt.Errorf("master did not exit cleanly after SIGTERM: %w\n%s", err, master.Log())
		}
	}
	return r, nil
}

// staleVIP polls h until vip has left its interfaces, and returns when it
// was first seen gone, or the zero time if it was still there at until.
func staleVIP(ctx context.Context, h *netlab.Host, vip netip.Prefix, until time.Time) (time.Time, error) {
	for {
		has, err := h.HasAddr(vip)
		now := time.Now()
		if err != nil {
			return time.Time{}, fmt.Errorf("stale VIP on %s: %w", h.Name, err)
		}
		if !has {
			return now, nil
		}
		if now.After(until) {
			return time.Time{}, nil
		}
		if err := netlab.Sleep(ctx, stalePoll); err != nil {
			return time.Time{}, err
		}
	}
}

func isARPFrom(h *netlab.Host) func(observe.Event) bool {
	return func(e observe.Event) bool {
		return e.Kind == observe.ARPReply && e.MAC.String() == h.MAC.String()
	}
}

// lastAdvertFrom is the time of src's last advertisement before t.
func lastAdvertFrom(evs []observe.Event, src netip.Addr, t time.Time) (time.Time, bool) {
	for i := len(evs) - 1; i >= 0; i-- {
		e := evs[i]
		if e.Kind == observe.Advert && e.Src == src && !e.Time.After(t) {
			return e.Time, true
		}
	}
	return time.Time{}, false
}

func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
