package chaoslab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nlb-dev/nlb/internal/k8slab"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/observe"
)

// Timing bounds the phases of a scenario (see the package documentation).
type Timing struct {
	// MinHold is the shortest fault phase of kill and apiserver; 0 means
	// none.
	MinHold time.Duration
	// LinkHold is the shortest time the link stays down; 0 means 5 s.
	LinkHold time.Duration
	// MaxHold is the longest fault phase; 0 means 60 s (the peer notices a
	// dead API server after about 30 s, then needs Master_Down_Interval).
	MaxHold time.Duration
	// CleanFor is how long every probe must have succeeded to end the
	// fault phase or to settle; 0 means 2 s.
	CleanFor time.Duration
	// Quiet is how long successes must last to close an outage burst; 0
	// means 500 ms.
	Quiet time.Duration
	// SteadyFor is how long VRRP and the VIP must not change to settle;
	// 0 means 3 s.
	SteadyFor time.Duration
	// SettleTimeout bounds one settling; 0 means 3 minutes.
	SettleTimeout time.Duration
	// VIPPoll is the interval of the netlink address polls; 0 means 5 ms.
	VIPPoll time.Duration
}

func (t *Timing) setDefaults() {
	if t.LinkHold == 0 {
		t.LinkHold = 5 * time.Second
	}
	if t.MaxHold == 0 {
		t.MaxHold = 60 * time.Second
	}
	if t.CleanFor == 0 {
		t.CleanFor = 2 * time.Second
	}
	if t.Quiet == 0 {
		t.Quiet = 500 * time.Millisecond
	}
	if t.SteadyFor == 0 {
		t.SteadyFor = 3 * time.Second
	}
	if t.SettleTimeout == 0 {
		t.SettleTimeout = 3 * time.Minute
	}
	if t.VIPPoll == 0 {
		t.VIPPoll = 5 * time.Millisecond
	}
}

// Options shape a Lab.
type Options struct {
	// Params are the VRRP settings; the zero value means DefaultParams.
	Params Params
	// Traffic shapes the client load.
	Traffic TrafficOptions
	// Timing bounds the scenario phases.
	Timing Timing
	// Logf reports progress; nil means silent.
	Logf func(format string, args ...any)
}

// ClusterOptions are the k8slab options a chaos lab needs: the default
// three controllers and one spare host for the bystander.
func ClusterOptions(name, apiserver string) k8slab.Options {
	return k8slab.Options{Name: name, APIServer: apiserver, Spares: 1}
}

// Lab watches a k8slab cluster for the scenarios: a bystander on the
// spare host timestamps VRRP advertisements, and the controllers'
// addresses are polled for the VIP.
type Lab struct {
	// Cluster is the k8slab cluster (see ClusterOptions).
	Cluster *k8slab.Cluster
	// Params are the VRRP settings of both implementations.
	Params Params
	// VIPs polls the controllers for the VIP.
	VIPs *VIPWatch

	opts      Options
	obs       *observe.Observer
	obsCancel context.CancelFunc
}

// Open starts watching c, which must have a spare host (ClusterOptions).
// Close stops it; the cluster stays.
func Open(ctx context.Context, c *k8slab.Cluster, opts Options) (*Lab, error) {
	if len(c.Spares) == 0 {
		return nil, errors.New("chaoslab: the cluster needs a spare host for the bystander")
	}
	if !opts.Params.VIP.IsValid() {
		opts.Params = DefaultParams()
	}
	opts.Traffic.setDefaults()
	opts.Timing.setDefaults()
	l := &Lab{Cluster: c, Params: opts.Params, opts: opts}
	octx, cancel := context.WithCancel(context.Background())
	by := c.Spares[0]
	obs, err := observe.Listen(octx, observe.Config{Netns: by.NS, Interface: by.IfName, VIP: opts.Params.VIP.Addr(), ProbeInterval: time.Second})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("chaoslab: bystander: %w", err)
	}
	l.obs, l.obsCancel = obs, cancel
	// The survivors' source addresses.
	for _, a := range SurvivorSources() {
		p := netip.PrefixFrom(a, 24).String()
		if out, err := c.Worker.Exec(ctx, "ip", "addr", "replace", p, "dev", c.Worker.IfName).CombinedOutput(); err != nil {
			l.Close()
			return nil, fmt.Errorf("chaoslab: add %s to the worker: %v: %s", p, err, out)
		}
	}
	var hosts []*netlab.Host
	for _, ctl := range c.Controllers {
		hosts = append(hosts, ctl.Host)
	}
	if l.VIPs, err = WatchVIP(hosts, opts.Params.VIP.Addr(), opts.Timing.VIPPoll); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Close stops the bystander and the VIP polls.
func (l *Lab) Close() {
	if l.VIPs != nil {
		l.VIPs.Close()
	}
	if l.obsCancel != nil {
		l.obsCancel()
		l.obs.Wait()
	}
}

func (l *Lab) logf(format string, args ...any) {
	if l.opts.Logf != nil {
		l.opts.Logf(format, args...)
	}
}

// Adverts returns the advertisements the bystander heard so far.
func (l *Lab) Adverts() []Advert {
	var out []Advert
	for _, e := range l.obs.Events() {
		if e.Kind == observe.Advert {
			out = append(out, Advert{Time: e.Time, Src: e.Src, VRID: e.VRID, Priority: e.Priority})
		}
	}
	return out
}

// controller returns the index of the controller with address a, or -1.
func (l *Lab) controller(a netip.Addr) int {
	for i, ctl := range l.Cluster.Controllers {
		if ctl.Addr == a {
			return i
		}
	}
	return -1
}

// VIPHolders returns the names of every lab host holding the VIP's
// address on its lab interface (where VRRP puts it: not the fast path's
// real-server copy on lo), with the prefix each holds it with.
func (l *Lab) VIPHolders() (map[*netlab.Host]netip.Prefix, error) {
	out := map[*netlab.Host]netip.Prefix{}
	for _, h := range l.Cluster.Lab.Hosts {
		addrs, err := h.InterfaceAddrs()
		if err != nil {
			return nil, err
		}
		for _, a := range addrs {
			if a.Addr() == l.Params.VIP.Addr() {
				out[h] = a
			}
		}
	}
	return out, nil
}

// Scenario is a fault.
type Scenario string

// The scenarios.
const (
	// Kill SIGKILLs the VIP holder's LB processes and its API server,
	// then restarts both.
	Kill Scenario = "kill"
	// APIServer SIGKILLs only the VIP holder's API server, then restarts
	// it.
	APIServer Scenario = "apiserver"
	// Link takes the VIP holder's link down, then up.
	Link Scenario = "link"
	// Restart is a planned restart of the VIP holder's load balancer: it
	// stops it gracefully (Impl.Stop, SIGTERM) while its API server stays
	// up, waits until it has exited, then starts it again.
	Restart Scenario = "restart"
	// LBKill SIGKILLs only the VIP holder's load balancer (its API server
	// stays up), then starts it again: a crash of the LB alone.
	LBKill Scenario = "lbkill"
)

// Scenarios returns every scenario, in the bench's order.
func Scenarios() []Scenario { return []Scenario{Kill, LBKill, APIServer, Link, Restart} }

// ParseScenario checks a scenario name.
func ParseScenario(s string) (Scenario, error) {
	for _, sc := range Scenarios() {
		if string(sc) == s {
			return sc, nil
		}
	}
	return "", fmt.Errorf("chaoslab: unknown scenario %q (want kill, lbkill, apiserver, link or restart)", s)
}

// Session is one implementation running on the lab with the traffic on
// its VIP port.
type Session struct {
	// Lab is the lab it runs on.
	Lab *Lab
	// Impl is the implementation.
	Impl Impl
	// Traffic is the client load.
	Traffic *Traffic
}

// Begin removes any VIP left on the lab's hosts, starts impl on every
// controller and the traffic, and waits until the lab has settled. End
// tears it down.
func (l *Lab) Begin(ctx context.Context, impl Impl) (_ *Session, err error) {
	held, err := l.VIPHolders()
	if err != nil {
		return nil, err
	}
	for h, p := range held {
		l.logf("%s: removing the VIP %s left on %s", impl.Name(), p, h.Name)
		if err := h.RemoveAddr(p); err != nil {
			return nil, err
		}
	}
	s := &Session{Lab: l, Impl: impl}
	defer func() {
		if err != nil {
			_, _ = s.End(context.Background())
		}
	}()
	for i := range l.Cluster.Controllers {
		if err := impl.Start(i); err != nil {
			return s, err
		}
	}
	server := "https://" + l.Params.VIP.Addr().String() + ":" + strconv.Itoa(impl.Port())
	if s.Traffic, err = StartTraffic(ctx, l.Cluster, server, l.opts.Traffic); err != nil {
		return s, err
	}
	start := time.Now()
	if _, err := s.Settle(ctx); err != nil {
		return s, fmt.Errorf("chaoslab: %s never settled: %w", impl.Name(), err)
	}
	l.logf("%s: settled %v after start", impl.Name(), time.Since(start).Round(100*time.Millisecond))
	return s, nil
}

// Settled is the state of a settled lab.
type Settled struct {
	// At is when the lab was found settled.
	At time.Time
	// Master is the index of the controller advertising.
	Master int
	// Holders are the controllers holding the VIP.
	Holders []int
}

// Settle waits until the lab has settled: every API server ready, the
// implementation ready, one controller advertising for SteadyFor with its
// full priority (the highest configured), the VIP holders unchanged for
// SteadyFor and including it, and CleanFor of successful probes.
func (s *Session) Settle(ctx context.Context) (Settled, error) {
	l := s.Lab
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timing.SettleTimeout)
	defer cancel()
	last := ""
	for {
		st, why := s.settled(ctx)
		if why == "" {
			return st, nil
		}
		if why != last {
			l.logf("%s: settling: %s", s.Impl.Name(), why)
			last = why
		}
		if err := netlab.Sleep(ctx, 250*time.Millisecond); err != nil {
			return st, fmt.Errorf("%w (last: %s)\n%s", err, why, s.Tails(30))
		}
	}
}

// settled checks the conditions of Settle once and says what is missing.
func (s *Session) settled(ctx context.Context) (Settled, string) {
	l, t := s.Lab, s.Lab.opts.Timing
	now := time.Now()
	st := Settled{At: now, Master: -1}
	for _, ctl := range l.Cluster.Controllers {
		if !ctl.Running() {
			return st, ctl.Name + " is not running"
		}
		rctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		err := ctl.WaitReady(rctx)
		cancel()
		if err != nil {
			return st, ctl.Name + " is not ready"
		}
	}
	if err := s.Impl.Ready(ctx); err != nil {
		return st, err.Error()
	}
	srcs, prio, n := Advertisers(l.Adverts(), l.Params.VRID, now, t.SteadyFor)
	if len(srcs) != 1 || n < 2 {
		return st, fmt.Sprintf("advertisers in the last %v: %v (%d adverts)", t.SteadyFor, srcs, n)
	}
	m := l.controller(srcs[0])
	if m < 0 {
		return st, fmt.Sprintf("advertiser %v is not a controller", srcs[0])
	}
	var top uint8
	for i := range l.Cluster.Controllers {
		top = max(top, s.Impl.Priority(i))
	}
	if want := s.Impl.Priority(m); prio[srcs[0]] != want || want != top {
		return st, fmt.Sprintf("master %s advertises priority %d (configured %d, highest %d)", l.Cluster.Controllers[m].Host.Name, prio[srcs[0]], want, top)
	}
	st.Master = m
	st.Holders = l.VIPs.Holders()
	if !slices.Contains(st.Holders, m) {
		return st, fmt.Sprintf("master %s does not hold the VIP (holders %v)", l.Cluster.Controllers[m].Host.Name, st.Holders)
	}
	if ch := l.VIPs.LastChange(); now.Sub(ch) < t.SteadyFor {
		return st, fmt.Sprintf("VIP holders %v changed %v ago", st.Holders, now.Sub(ch).Round(time.Millisecond))
	}
	if s.Traffic != nil {
		if err := s.Traffic.Clean(now, t.CleanFor, 500*time.Millisecond); err != nil {
			return st, "traffic: " + err.Error()
		}
	}
	return st, ""
}

// Tails returns the end of every node's logs.
func (s *Session) Tails(n int) string {
	var b strings.Builder
	for i := range s.Lab.Cluster.Controllers {
		b.WriteString(s.Impl.Tail(i, n))
		b.WriteString("\n")
	}
	return b.String()
}

// Teardown is what tearing an implementation down left behind.
type Teardown struct {
	// Impl is the implementation torn down.
	Impl string `json:"impl"`
	// Scenario is "teardown", to tell the line from a Result's.
	Scenario string `json:"scenario"`
	// LeftoverVIPs counts the lab hosts holding the VIP once every node
	// has been stopped.
	LeftoverVIPs int `json:"leftover_vips"`
	// StopErrors are the nodes that did not stop cleanly.
	StopErrors []string `json:"stop_errors,omitempty"`
}

// End stops the traffic, then every node with SIGTERM (backups first, the
// VIP holder last), counts the VIPs left on any host, and removes them.
func (s *Session) End(ctx context.Context) (Teardown, error) {
	l := s.Lab
	td := Teardown{Impl: s.Impl.Name(), Scenario: "teardown"}
	if s.Traffic != nil {
		s.Traffic.Stop()
	}
	holders := l.VIPs.Holders()
	var order []int
	for i := range l.Cluster.Controllers {
		if !slices.Contains(holders, i) {
			order = append(order, i)
		}
	}
	order = append(order, holders...)
	for _, i := range order {
		if err := s.Impl.Stop(i); err != nil {
			td.StopErrors = append(td.StopErrors, err.Error())
		}
		_ = s.Impl.Kill(i) // anything Stop left
	}
	held, err := l.VIPHolders()
	if err != nil {
		return td, err
	}
	td.LeftoverVIPs = len(held)
	var errs []error
	for h, p := range held {
		l.logf("%s: teardown left %s on %s", s.Impl.Name(), p, h.Name)
		errs = append(errs, h.RemoveAddr(p))
	}
	return td, errors.Join(errs...)
}
