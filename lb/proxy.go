package lb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options are the proxy's dependencies. Every field may be left zero.
type Options struct {
	// Logger receives the proxy's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the proxy's metrics; nil skips registration.
	Registerer prometheus.Registerer
	// Dial connects to a backend. It must honour ctx's deadline (the
	// connect timeout). Nil uses a net.Dialer.
	Dial func(ctx context.Context, addr string) (*net.TCPConn, error)
	// Listen binds one listen address. Nil uses net.ListenConfig with
	// MPTCP off.
	Listen func(ctx context.Context, addr string) (*net.TCPListener, error)
	// Check runs one active health check against addr; nil builds one
	// from Config.HealthCheck. It lets tests script health results.
	Check func(ctx context.Context, addr string) error
	// Changed, when set, is called after the backend set or a backend's
	// health changed (SetBackends, Reload, a check crossing its rise or
	// fall threshold), from the goroutine that changed it: it must return
	// quickly. Status then shows the change. nlb controller's XDP fast
	// path rebuilds its tables from it.
	Changed func()
}

// Proxy is a TCP load balancer. Create it with [New], bind with
// [Proxy.Listen], run with [Proxy.Serve]; [Proxy.Reload] and
// [Proxy.SetBackends] change it while it runs.
type Proxy struct {
	log    *slog.Logger
	dial   func(ctx context.Context, addr string) (*net.TCPConn, error)
	listen func(ctx context.Context, addr string) (*net.TCPListener, error)
	check  func(ctx context.Context, addr string) error // from Options; nil = from config
	// changed is Options.Changed, or a no-op.
	changed func()
	// checker is the check built from the configuration (buildChecker),
	// when check is nil; guarded by reconf.
	checker func(ctx context.Context, addr string) error
	// ownListen: listeners come from defaultListen, which turns off Go's
	// keepalive on accept, so accepted connections keep the options set on
	// the listener. tuneAccepted: they must be tuned one by one.
	ownListen    bool
	tuneAccepted atomic.Bool
	// ccRefused is the loopback congestion control algorithm the kernel
	// refused (logged once; not tried again while it stays configured).
	ccRefused atomic.Pointer[string]

	// dialHook: dial comes from Options.Dial and every backend is dialled
	// through it, in a goroutine; otherwise the loops connect themselves
	// and dial serves only backends given by host name.
	dialHook bool
	// loops serve the connections (datapath.go); Listen creates them,
	// Serve runs them. nloops is how many.
	loops  []*loop
	nloops int
	// bufs holds *buffer for bytes a destination could not take yet.
	bufs sync.Pool
	// spliced counts the bytes moved with splice(2), for tests.
	spliced atomic.Uint64

	cfg      atomic.Pointer[Config]
	bal      atomic.Pointer[balancer]
	backends atomic.Pointer[backendSet]
	failOpen atomic.Bool
	closing  atomic.Bool

	active    atomic.Int64
	accepted  atomic.Uint64
	limitHits atomic.Uint64
	noBackend atomic.Uint64
	// dialRetries counts dials beyond a client's first; dialWaited the
	// clients that every backend failed once and that waited for another
	// round; dialExhausted the clients refused with their budget spent.
	dialRetries   atomic.Uint64
	dialWaited    atomic.Uint64
	dialExhausted atomic.Uint64
	idleClosed    atomic.Uint64
	drained       atomic.Uint64
	bytesIn       atomic.Uint64
	bytesOut      atomic.Uint64
	// lastLimitLog rate-limits the connection-limit warning (UnixNano).
	lastLimitLog atomic.Int64
	limitSince   atomic.Uint64 // rejections since the last warning

	reconf sync.Mutex // serialises SetBackends, Reload and checker starts

	mu        sync.Mutex
	conns     map[*proxyConn]struct{}
	retired   []*backend // removed backends that still hold connections
	listeners []*net.TCPListener
	running   bool // Serve has started: background work may run
	stopped   bool // Shutdown has stopped background work

	bgCtx     context.Context
	bgCancel  context.CancelFunc
	bg        sync.WaitGroup // checkers, drains, reaper
	connWG    sync.WaitGroup // connections, from accept to release
	done      chan struct{}  // closed when Shutdown starts
	doneOnce  sync.Once
	stoppedCh chan struct{} // closed when Shutdown has finished
	stopOnce  sync.Once
}

// New checks cfg (after filling defaults) and builds a Proxy. It does no
// I/O.
func New(cfg Config, opts Options) (*Proxy, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	bal, err := newBalancer(cfg.Balance, rand.IntN)
	if err != nil {
		return nil, err
	}
	p := &Proxy{
		log:       opts.Logger,
		dial:      opts.Dial,
		listen:    opts.Listen,
		check:     opts.Check,
		changed:   opts.Changed,
		bufs:      sync.Pool{New: func() any { return new(buffer) }},
		nloops:    defaultLoops(),
		conns:     map[*proxyConn]struct{}{},
		done:      make(chan struct{}),
		stoppedCh: make(chan struct{}),
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.changed == nil {
		p.changed = func() {}
	}
	p.dialHook = p.dial != nil
	if p.dial == nil {
		p.dial = p.defaultDial
	}
	if p.listen == nil {
		p.listen = defaultListen
		p.ownListen = true
	}
	p.tuneAccepted.Store(true)
	p.bgCtx, p.bgCancel = context.WithCancel(context.Background())
	p.cfg.Store(&cfg)
	p.bal.Store(bal)
	p.backends.Store(&backendSet{})
	p.setBackendsLocked(cfg.Backends)
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(collector{p}); err != nil {
			return nil, fmt.Errorf("lb: register metrics: %w", err)
		}
	}
	return p, nil
}

func defaultListen(ctx context.Context, addr string) (*net.TCPListener, error) {
	var lc net.ListenConfig
	// Plain TCP: MPTCP sockets would not splice the same way.
	lc.SetMultipathTCP(false)
	// No keepalive set by Go on accept: accepted connections inherit the
	// proxy's options from the listening socket (tuneListeners).
	lc.KeepAlive = -1
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		ln.Close()
		return nil, fmt.Errorf("lb: listener for %s is %T, not TCP", addr, ln)
	}
	return tl, nil
}

func (p *Proxy) defaultDial(ctx context.Context, addr string) (*net.TCPConn, error) {
	var d net.Dialer
	d.KeepAlive = -1 // set below with the full config
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("lb: connection to %s is %T, not TCP", addr, c)
	}
	return tc, nil
}

// Listen binds every configured listen address. On error nothing stays
// bound.
func (p *Proxy) Listen(ctx context.Context) error {
	cfg := p.cfg.Load()
	p.reconf.Lock()
	err := p.buildChecker(cfg)
	p.reconf.Unlock()
	if err != nil {
		return err
	}
	var lns []*net.TCPListener
	for _, a := range cfg.Listen {
		ln, err := p.listen(ctx, a)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return &ListenError{Addr: a, Err: err}
		}
		lns = append(lns, ln)
	}
	p.mu.Lock()
	p.listeners = append(p.listeners, lns...)
	p.mu.Unlock()
	p.reconf.Lock()
	p.tuneListeners(p.cfg.Load())
	p.reconf.Unlock()
	p.loopbackListeners(lns, p.cfg.Load().LoopbackCongestionControl)
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.loops) < p.nloops && !p.running {
		l, err := newLoop(p)
		if err != nil {
			return fmt.Errorf("lb: event loop: %w", err)
		}
		p.loops = append(p.loops, l)
	}
	return nil
}

// ListenError is Listen's error when an address cannot be bound (taken,
// not local): commands name the flag that gave it.
type ListenError struct {
	Addr string // the configured listen address
	Err  error
}

func (e *ListenError) Error() string {
	if strings.Contains(e.Err.Error(), e.Addr) {
		return "lb: " + e.Err.Error() // net's errors name the address
	}
	return fmt.Sprintf("lb: listen %s: %v", e.Addr, e.Err)
}

// Unwrap returns the bind error.
func (e *ListenError) Unwrap() error { return e.Err }

// Addrs returns the bound listen addresses.
func (p *Proxy) Addrs() []net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]net.Addr, len(p.listeners))
	for i, l := range p.listeners {
		out[i] = l.Addr()
	}
	return out
}

// Serve accepts on the bound listeners and runs health checks until ctx is
// done or Shutdown is called. When ctx ends it shuts down gracefully,
// waiting up to Config.ShutdownTimeout for connections to finish.
func (p *Proxy) Serve(ctx context.Context) error {
	p.mu.Lock()
	if len(p.listeners) == 0 {
		p.mu.Unlock()
		return errors.New("lb: Serve called before Listen")
	}
	if p.running {
		p.mu.Unlock()
		return errors.New("lb: Serve called twice")
	}
	p.running = true
	lns := slices.Clone(p.listeners)
	loops := slices.Clone(p.loops)
	p.mu.Unlock()

	for _, l := range loops {
		p.goBG(func() { l.run(lns, loops) })
	}
	for _, ln := range lns {
		p.log.Info("proxy listening", "addr", ln.Addr().String())
	}

	p.reconf.Lock()
	for _, b := range p.backends.Load().list {
		p.startChecks(b)
	}
	p.reconf.Unlock()
	p.goBG(p.reaper)

	select {
	case <-ctx.Done():
	case <-p.done:
		// Shutdown was called directly; wait for it to finish.
		<-p.stoppedCh
		return nil
	}
	timeout := time.Duration(p.cfg.Load().ShutdownTimeout)
	p.log.Info("shutting down: no new connections, waiting for open ones",
		"active", p.active.Load(), "timeout_seconds", timeout.Seconds())
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.Shutdown(sctx)
}

// limitReached counts a rejected client and logs at most every 10 s.
func (p *Proxy) limitReached(limit int64) {
	p.limitHits.Add(1)
	n := p.limitSince.Add(1)
	now := time.Now().UnixNano()
	last := p.lastLimitLog.Load()
	if now-last < int64(10*time.Second) || !p.lastLimitLog.CompareAndSwap(last, now) {
		return
	}
	p.limitSince.Add(-n)
	p.log.Warn("connection limit reached: closing new clients", "max_connections", limit, "rejected", n)
}

// tuneAfter is the age at which a connection gets its keepalive and
// TCP_USER_TIMEOUT options on the backend side (and on the client side
// when the listener could not pass them on). Those options act only after
// seconds (keepalive idle 15 s, user timeout 30 s by default), so a
// connection that ends sooner never needs them, and most short ones (a
// request and a response) save five setsockopt(2) calls per socket.
const tuneAfter = 250 * time.Millisecond

// tuneListeners sets the connection options on the listening sockets, for
// accepted connections to inherit. Where that is not possible (a listener
// from Options.Listen, which may have Go's own keepalive on accept, or an
// error) every accepted connection is tuned instead.
func (p *Proxy) tuneListeners(cfg *Config) {
	p.mu.Lock()
	lns := slices.Clone(p.listeners)
	p.mu.Unlock()
	ok := p.ownListen
	for _, ln := range lns {
		if !ok {
			break
		}
		if err := errors.Join(setSockopts(ln, cfg), setNoDelay(ln)); err != nil {
			p.log.Debug("listener socket options: tuning each connection instead", "err", err)
			ok = false
		}
	}
	p.tuneAccepted.Store(!ok)
}

// loopbackListeners sets the loopback congestion control algorithm on the
// listeners bound to a loopback address; accepted connections inherit it
// (the kernel keeps a listener's setsockopt choice for its children). It
// is set once, at Listen: a reload changes it for new backend connections
// only.
func (p *Proxy) loopbackListeners(lns []*net.TCPListener, cc string) {
	if cc == SystemCongestionControl {
		return
	}
	for _, ln := range lns {
		a, ok := ln.Addr().(*net.TCPAddr)
		if !ok || !a.IP.IsLoopback() {
			continue
		}
		rc, err := ln.SyscallConn()
		if err != nil {
			continue
		}
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = setCongestion(int(fd), cc) }); err == nil && serr != nil {
			p.congestionRefused(cc, serr)
			return
		}
	}
}

// loopbackCongestion sets the loopback congestion control algorithm on a
// new socket to a loopback backend, unless the kernel refused it before.
func (p *Proxy) loopbackCongestion(fd int, cc string) {
	if cc == SystemCongestionControl {
		return
	}
	if r := p.ccRefused.Load(); r != nil && *r == cc {
		return
	}
	if err := setCongestion(fd, cc); err != nil {
		p.congestionRefused(cc, err)
	}
}

// congestionRefused logs, once per algorithm, that the kernel refused it
// (not built, or not in net.ipv4.tcp_allowed_congestion_control for a
// process without CAP_NET_ADMIN); the sockets keep the system's default.
func (p *Proxy) congestionRefused(cc string, err error) {
	if old := p.ccRefused.Swap(&cc); old == nil || *old != cc {
		p.log.Warn("loopbackCongestionControl refused by the kernel: loopback legs keep the system's default",
			"algorithm", cc, "err", err)
	}
}

// closeAcceptedWait bounds how long CloseAccepted waits for one event
// loop (which answers in microseconds unless it is stopping).
const closeAcceptedWait = 2 * time.Second

// CloseAccepted closes the proxied connections that were accepted on one
// of addrs, and returns how many. It is for addresses that have left the
// host: once a VIP has moved to another node, its clients' packets go
// there, so the connections this proxy accepted on it can neither be
// served nor reset, and draining them would only hold a stopping process
// until ShutdownTimeout. The backend sides are closed gracefully.
func (p *Proxy) CloseAccepted(addrs []netip.Addr) int {
	if len(addrs) == 0 {
		return 0
	}
	p.mu.Lock()
	byLoop := map[*loop][]*proxyConn{}
	for c := range p.conns {
		byLoop[c.l] = append(byLoop[c.l], c)
	}
	p.mu.Unlock()
	total := 0
	for l, conns := range byLoop {
		done := make(chan int, 1)
		if !l.post(func() { done <- l.closeAccepted(conns, addrs) }) {
			continue // stopped: its connections are closed already
		}
		// A loop that stops right now may never run the task: bounded.
		t := time.NewTimer(closeAcceptedWait)
		select {
		case n := <-done:
			total += n
		case <-p.stoppedCh:
		case <-t.C:
			p.log.Warn("closing connections to addresses that left the host: an event loop did not answer", "wait", closeAcceptedWait)
		}
		t.Stop()
	}
	if total > 0 {
		p.log.Info("closed connections to addresses that left the host", "connections", total, "addrs", fmt.Sprint(addrs))
	}
	return total
}

// release forgets a connection its loop has closed; open tells whether it
// had reached a backend (and was counted there).
func (p *Proxy) release(pc *proxyConn, open bool) {
	if open {
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
		if pc.b.active.Add(-1) == 0 && pc.b.removed.Load() {
			p.forgetRetired(pc.b)
		}
	}
	p.active.Add(-1)
	p.connWG.Done()
}

// suspectExpiry is how long a dial failure keeps a backend out: until a
// check passes, or one check interval when there are no active checks.
func (p *Proxy) suspectExpiry(cfg *Config) time.Duration {
	if cfg.HealthCheck.Type == CheckNone && p.check == nil {
		return time.Duration(cfg.HealthCheck.Interval)
	}
	return 0
}

// setFailOpen records whether the proxy is failing open and logs changes.
func (p *Proxy) setFailOpen(on bool, known int) {
	if p.failOpen.Swap(on) == on {
		return
	}
	if on {
		p.log.Warn("no healthy backend: failing open to every known backend", "backends", known)
		return
	}
	p.log.Info("healthy backend available: fail-open ended")
	// Drains that were skipped while failing open can run now.
	for _, b := range p.backends.Load().list {
		if !b.healthy.Load() && !b.draining.Load() && b.active.Load() > 0 {
			p.startDrain(b, "unhealthy")
		}
	}
}

// refreshFailOpen recomputes the fail-open state from the backend set.
func (p *Proxy) refreshFailOpen() {
	list := p.backends.Load().list
	if len(list) == 0 {
		return
	}
	now, expiry := time.Now(), p.suspectExpiry(p.cfg.Load())
	for _, b := range list {
		if b.eligible(now, expiry) {
			p.setFailOpen(false, len(list))
			return
		}
	}
	p.setFailOpen(true, len(list))
}

// SetBackends replaces the backend set atomically. Backends that stay keep
// their state and connections; new ones start presumed healthy; removed
// ones get no new connections and are drained.
func (p *Proxy) SetBackends(addrs []string) {
	p.reconf.Lock()
	defer p.reconf.Unlock()
	p.setBackendsLocked(addrs)
	p.refreshFailOpen()
	p.changed()
}

func (p *Proxy) setBackendsLocked(addrs []string) {
	cfg := p.cfg.Load()
	old := map[string]*backend{}
	for _, b := range p.backends.Load().list {
		old[b.addr] = b
	}
	p.mu.Lock()
	for _, b := range p.retired {
		if _, ok := old[b.addr]; !ok {
			old[b.addr] = b
		}
	}
	p.mu.Unlock()
	next := &backendSet{}
	keep := map[*backend]bool{}
	for _, a := range addrs {
		b, ok := old[a]
		if ok && keep[b] {
			continue // duplicate address
		}
		if ok && b.removed.Load() {
			// Re-added while draining: take it back.
			b.removed.Store(false)
			p.cancelDrain(b)
			p.forgetRetired(b)
			p.startChecks(b)
			p.log.Info("backend re-added", "backend", a)
		}
		if !ok {
			b = newBackend(a, cfg.HealthCheck.Rise, cfg.HealthCheck.Fall)
			p.startChecks(b)
			p.log.Info("backend added", "backend", a)
		}
		keep[b] = true
		next.list = append(next.list, b)
	}
	for _, b := range p.backends.Load().list {
		if keep[b] {
			continue
		}
		b.removed.Store(true)
		p.stopChecks(b)
		p.log.Info("backend removed", "backend", b.addr, "active", b.active.Load())
		if b.active.Load() > 0 {
			p.retire(b)
		}
	}
	p.backends.Store(next)
}

// retire keeps a removed backend that holds connections listed (status)
// and drains it, unless a drain already runs. Both setBackendsLocked and a
// loop completing a dial to a backend removed meanwhile call it: the loop
// counts the connection (active) before it reads removed, setBackendsLocked
// stores removed before it reads active, so one of them always sees the
// connection.
func (p *Proxy) retire(b *backend) {
	p.mu.Lock()
	if !slices.Contains(p.retired, b) {
		p.retired = append(p.retired, b)
	}
	p.mu.Unlock()
	if !b.draining.Load() {
		p.startDrain(b, "removed")
	}
}

func (p *Proxy) forgetRetired(b *backend) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.retired = slices.DeleteFunc(p.retired, func(x *backend) bool { return x == b })
}

// Reload applies a new configuration: backends, balancing, timeouts,
// limits and health checks change at once, without touching established
// connections. Listen addresses cannot change while running; a change is
// logged and ignored.
func (p *Proxy) Reload(cfg Config) error {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	p.reconf.Lock()
	defer p.reconf.Unlock()
	old := p.cfg.Load()
	if err := p.buildChecker(&cfg); err != nil {
		return err // nothing changed
	}
	if !slices.Equal(old.Listen, cfg.Listen) {
		p.log.Warn("listen addresses changed: restart to apply", "old", old.Listen, "new", cfg.Listen)
		cfg.Listen = old.Listen
	}
	if cfg.Balance != old.Balance {
		bal, err := newBalancer(cfg.Balance, rand.IntN)
		if err != nil {
			return err
		}
		p.bal.Store(bal)
	}
	p.cfg.Store(&cfg)
	if cfg.KeepAlive != old.KeepAlive || cfg.UserTimeout != old.UserTimeout {
		p.tuneListeners(&cfg)
	}
	hc := cfg.HealthCheck
	// buildChecker re-read the files: restart the checks with them, for
	// certificates rotated in place.
	reread := p.check == nil && (hc.CAFile != "" || hc.CertFile != "")
	if hc != old.HealthCheck || reread {
		for _, b := range p.backends.Load().list {
			p.stopChecks(b)
			b.mu.Lock()
			b.th.rise, b.th.fall = cfg.HealthCheck.Rise, cfg.HealthCheck.Fall
			b.mu.Unlock()
			p.startChecks(b)
		}
	}
	p.setBackendsLocked(cfg.Backends)
	p.refreshFailOpen()
	p.changed()
	p.log.Info("configuration reloaded", "backends", len(cfg.Backends))
	return nil
}

// startDrain stops counting on b's connections: after DrainPeriod they are
// closed, spread over DrainStagger if b is still healthy (removed), all at
// once if it is unhealthy.
func (p *Proxy) startDrain(b *backend, why string) {
	gen := b.drainGen.Add(1)
	b.draining.Store(true)
	cfg := p.cfg.Load()
	p.log.Info("draining backend", "backend", b.addr, "reason", why, "active", b.active.Load(),
		"drain_seconds", time.Duration(cfg.DrainPeriod).Seconds())
	p.goBG(func() { p.drain(b, gen, time.Duration(cfg.DrainPeriod), time.Duration(cfg.DrainStagger)) })
}

func (p *Proxy) cancelDrain(b *backend) {
	b.drainGen.Add(1)
	b.draining.Store(false)
}

func (p *Proxy) drain(b *backend, gen uint64, period, stagger time.Duration) {
	if !p.sleep(period) || b.drainGen.Load() != gen {
		return
	}
	if !b.removed.Load() && p.failOpen.Load() {
		p.log.Warn("not closing connections of unhealthy backend: failing open", "backend", b.addr)
		b.draining.Store(false)
		return
	}
	if !b.healthy.Load() {
		// The stagger spares the other backends a stampede of
		// reconnections when a working backend is removed. A backend
		// that failed its checks most likely holds dead connections:
		// closing them over the stagger would only keep clients stuck
		// (an HTTP/2 client pinned to a blackholed API server fails
		// every request until its connection is closed), so they all
		// go at once, as HAProxy's on-marked-down shutdown-sessions.
		stagger = 0
	}
	conns := p.connsOf(b)
	p.log.Info("drain period over: closing connections", "backend", b.addr, "connections", len(conns),
		"stagger_seconds", stagger.Seconds())
	var step time.Duration
	if len(conns) > 1 {
		step = stagger / time.Duration(len(conns)-1)
	}
	for i, c := range conns {
		if b.drainGen.Load() != gen {
			return
		}
		if c.close() {
			p.drained.Add(1)
		}
		if i < len(conns)-1 && !p.sleep(step) {
			return
		}
	}
	if b.drainGen.Load() == gen {
		b.draining.Store(false)
	}
}

// goBG runs fn in the background while the proxy serves; it does nothing
// before Serve or after Shutdown.
func (p *Proxy) goBG(fn func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running || p.stopped {
		return
	}
	p.bg.Add(1)
	go func() {
		defer p.bg.Done()
		fn()
	}()
}

// sleep waits d or until the proxy stops; it reports whether d elapsed.
func (p *Proxy) sleep(d time.Duration) bool {
	if d <= 0 {
		return p.bgCtx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.bgCtx.Done():
		return false
	}
}

func (p *Proxy) connsOf(b *backend) []*proxyConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*proxyConn
	for c := range p.conns {
		if c.b == b {
			out = append(out, c)
		}
	}
	return out
}

// reaper closes connections idle longer than Config.IdleTimeout.
func (p *Proxy) reaper() {
	for {
		idle := time.Duration(p.cfg.Load().IdleTimeout)
		tick := time.Second
		if idle > 0 {
			tick = min(max(idle/4, 10*time.Millisecond), time.Second)
		}
		if !p.sleep(tick) {
			return
		}
		if idle <= 0 {
			continue
		}
		cutoff := time.Now().Add(-idle).UnixNano()
		var stale []*proxyConn
		p.mu.Lock()
		for c := range p.conns {
			if c.lastActive.Load() < cutoff {
				stale = append(stale, c)
			}
		}
		p.mu.Unlock()
		for _, c := range stale {
			if c.close() {
				p.idleClosed.Add(1)
				p.log.Debug("idle timeout", "backend", c.b.addr, "client", c.client())
			}
		}
	}
}

// Shutdown stops accepting, waits for proxied connections to finish until
// ctx is done, then closes the rest and stops health checks. It returns
// ctx's error when connections had to be closed.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.closing.Store(true)
	p.doneOnce.Do(func() { close(p.done) })
	// Close the listeners without p.mu: Close waits until no loop holds
	// the descriptor, and a loop accepting on it (inside the listener's
	// RawConn.Control) takes p.mu when it dials a backend.
	p.mu.Lock()
	lns := slices.Clone(p.listeners)
	p.mu.Unlock()
	for _, l := range lns {
		l.Close()
	}
	p.mu.Lock()
	if !p.running {
		// Serve never started the loops (a start that failed after
		// Listen, say): no connection exists, and a loop that never
		// runs would never answer stopAccepting. Release them now;
		// a later Serve finds the proxy stopped.
		p.stopped = true
		for _, l := range p.loops {
			l.close()
		}
	}
	p.mu.Unlock()
	p.stopAccepting() // no connWG.Add after this
	finished := make(chan struct{})
	go func() {
		p.connWG.Wait()
		close(finished)
	}()
	var err error
	select {
	case <-finished:
	case <-ctx.Done():
		err = ctx.Err()
		// Copy, then close outside the lock: a loop releasing a
		// connection takes p.mu.
		p.mu.Lock()
		left := make([]*proxyConn, 0, len(p.conns))
		for c := range p.conns {
			left = append(left, c)
		}
		p.mu.Unlock()
		for _, c := range left {
			c.close()
		}
		p.log.Warn("shutdown deadline: closed remaining connections", "connections", len(left))
		// The loops close them in microseconds; bounded all the same,
		// so that a loop that died (epoll failure) cannot hold a
		// stopping process.
		t := time.NewTimer(closeAcceptedWait)
		select {
		case <-finished:
		case <-t.C:
			p.log.Error("shutdown: connections still open after the deadline; stopping anyway", "wait", closeAcceptedWait)
		}
		t.Stop()
	}
	p.stopOnce.Do(func() {
		p.mu.Lock()
		p.stopped = true
		p.mu.Unlock()
		p.bgCancel()
		p.mu.Lock()
		loops := slices.Clone(p.loops)
		p.mu.Unlock()
		for _, l := range loops {
			l.stop()
		}
		p.bg.Wait()
		for _, l := range loops {
			l.close() // in case it never ran
		}
		close(p.stoppedCh)
	})
	<-p.stoppedCh
	if err != nil {
		return fmt.Errorf("lb: shutdown: %w", err)
	}
	return nil
}

// stopAccepting makes every running loop stop accepting and waits until it
// has: no connection is counted in connWG after it returns.
func (p *Proxy) stopAccepting() {
	p.mu.Lock()
	loops := slices.Clone(p.loops)
	p.mu.Unlock()
	for _, l := range loops {
		done := make(chan struct{})
		if l.post(func() { l.dropListeners(); close(done) }) {
			// A loop that stops (an epoll failure) before it runs the
			// task accepts nothing more either.
			select {
			case <-done:
			case <-l.gone:
			}
		}
	}
}

// defaultLoops is the number of event loops: one per CPU the Go runtime
// may use, as HAProxy runs one thread per CPU. Most of a proxied
// connection's cost is the kernel's TCP work in the loop's system calls,
// which runs in parallel on as many cores as there are loops.
func defaultLoops() int {
	return max(1, runtime.GOMAXPROCS(0))
}
