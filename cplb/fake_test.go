package cplb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/vrrp"
)

// recorder keeps the order of the fakes' calls.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(format string, args ...any) {
	r.mu.Lock()
	r.events = append(r.events, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// fakeVRRP is a VRRP instance: Run waits for ctx, then for release (a
// handover: nil returns at once), or fails at once with err.
type fakeVRRP struct {
	cfg     config.Instance
	rec     *recorder
	err     error
	release chan struct{}
	status  vrrp.InstanceStatus

	mu           sync.Mutex
	priorities   []uint8
	beforeRemove func()
	masterHook   func(bool)
	returned     bool
}

func newFakeVRRP(rec *recorder, name string, prio uint8, vips ...string) *fakeVRRP {
	in := config.Instance{Name: name, Interface: "eth1", Priority: prio}
	for _, v := range vips {
		in.VIPs = append(in.VIPs, netip.MustParsePrefix(v))
	}
	return &fakeVRRP{cfg: in, rec: rec, status: vrrp.InstanceStatus{Name: name, State: vrrp.Backup, Priority: prio}}
}

func (f *fakeVRRP) Config() config.Instance { return f.cfg }

func (f *fakeVRRP) Run(ctx context.Context) error {
	defer func() {
		f.mu.Lock()
		f.returned = true
		f.mu.Unlock()
		f.rec.add("vrrp %s returned", f.cfg.Name)
	}()
	if f.err != nil {
		return f.err
	}
	<-ctx.Done()
	if f.release != nil {
		<-f.release
	}
	return nil
}

func (f *fakeVRRP) hasReturned() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.returned
}

func (f *fakeVRRP) VRRPStatus() vrrp.InstanceStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeVRRP) SetPriority(p uint8) {
	f.mu.Lock()
	f.priorities = append(f.priorities, p)
	f.mu.Unlock()
}

func (f *fakeVRRP) prios() []uint8 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.priorities)
}

func (f *fakeVRRP) SetBeforeRemove(fn func()) {
	f.mu.Lock()
	f.beforeRemove = fn
	f.mu.Unlock()
}

func (f *fakeVRRP) removing() {
	f.mu.Lock()
	fn := f.beforeRemove
	f.mu.Unlock()
	if fn != nil {
		fn()
	}
}

func (f *fakeVRRP) SetMasterHook(fn func(bool)) {
	f.mu.Lock()
	f.masterHook = fn
	f.mu.Unlock()
}

// setMaster changes the state as a router would: the hook, then the
// status.
func (f *fakeVRRP) setMaster(master bool, other netip.Addr) {
	f.mu.Lock()
	fn := f.masterHook
	f.mu.Unlock()
	if fn != nil {
		fn(master)
	}
	f.mu.Lock()
	f.status.State, f.status.Master = vrrp.Backup, other
	if master {
		f.status.State, f.status.Master = vrrp.Master, netip.Addr{}
	}
	f.mu.Unlock()
}

// fakeSteering records its removal; onClose, when set, runs first.
type fakeSteering struct {
	rec     *recorder
	onClose func()

	mu     sync.Mutex
	closed int
}

func (s *fakeSteering) Mode() string { return "sklookup" }

func (s *fakeSteering) Stats() (SteeringStats, bool, error) {
	return SteeringStats{Steered: 7, NoListener: 1}, true, nil
}

func (s *fakeSteering) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed == 0 {
		if s.onClose != nil {
			s.onClose()
		}
		s.rec.add("steering removed")
	}
	s.closed++
	return nil
}

func (s *fakeSteering) closes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// attachFake returns an AttachFunc that installs s, or fails with err.
func attachFake(s *fakeSteering, err error) AttachFunc {
	return func(_ config.Controller, vips []netip.Addr, _ []*net.TCPListener, _ *slog.Logger) (Steering, error) {
		if err != nil {
			return nil, err
		}
		s.rec.add("steering attached %v", vips)
		return s, nil
	}
}

// fakeProxy is an *lb.Proxy for the tests that need to see the order of
// its calls: Serve serves until ctx ends, then records the drain.
type fakeProxy struct {
	rec       *recorder
	listenErr error
	serveErr  error
	ready     bool
	addrs     []net.Addr
	status    lb.Status

	mu       sync.Mutex
	serveCtx context.Context
}

func (p *fakeProxy) Listen(context.Context) error       { return p.listenErr }
func (p *fakeProxy) Listeners() []*net.TCPListener      { return nil }
func (p *fakeProxy) Ready() bool                        { return p.ready }
func (p *fakeProxy) Addrs() []net.Addr                  { return p.addrs }
func (p *fakeProxy) Status() lb.Status                  { return p.status }
func (p *fakeProxy) Shutdown(ctx context.Context) error { p.rec.add("proxy shut down"); return nil }

func (p *fakeProxy) Serve(ctx context.Context) error {
	if p.serveErr != nil {
		return p.serveErr
	}
	p.mu.Lock()
	p.serveCtx = ctx
	p.mu.Unlock()
	<-ctx.Done()
	p.rec.add("proxy draining")
	return nil
}

// CloseAccepted records the call, and whether the drain had begun (Serve's
// ctx done) by then.
func (p *fakeProxy) CloseAccepted(addrs []netip.Addr) int {
	p.mu.Lock()
	draining := p.serveCtx != nil && p.serveCtx.Err() != nil
	p.mu.Unlock()
	if draining {
		p.rec.add("close accepted %v while draining", addrs)
	} else {
		p.rec.add("close accepted %v", addrs)
	}
	return 0
}

// ctlConfig is a controller configuration with the load balancer and, if
// health, health tracking (fall 2, rise 3, weight w).
func ctlConfig(health bool, w int) config.Controller {
	return config.Controller{APIPort: 6443, ProxyPort: 6444, Steering: config.SteeringAuto,
		Health: config.Health{Enabled: health, Interval: 500_000_000, Timeout: 100_000_000, Fall: 2, Rise: 3, Weight: w}}
}

// newWithFakeProxy is New with p as the proxy.
func newWithFakeProxy(t *testing.T, cfg Config, p *fakeProxy) *Controller {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.proxy = p
	return c
}

var errBoom = errors.New("boom")

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
