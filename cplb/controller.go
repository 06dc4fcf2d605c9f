// Package cplb is `nlb controller`: control plane load balancing as k0s's
// CPLB does it with keepalived, in one process. It composes the VRRP
// instances (vrrp/router), the proxy to the API servers (lb) with its
// discovery, the steering of VIP:apiPort into the proxy (lb/steer), and the
// health tracking that ties VRRP priority to the local API server
// (vrrp.Tracker), and stops them in the order that keeps clients served.
//
// New does no I/O; Listen binds the proxy and installs the steering; Run
// runs everything until its context ends. The OS effects are seams: the
// VRRP instances are an interface (VRRP, *router.Router in nlb), the
// steering an attach func (Steer on Linux), the health check a func, and
// discovery a func; the proxy is an *lb.Proxy, which runs unprivileged on
// a loopback address.
package cplb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/vrrp"
	"github.com/nlb-dev/nlb/vrrp/router"
)

// VRRP is one VRRP instance as the controller drives it: a *router.Router
// in nlb, a fake in tests.
type VRRP interface {
	// Config returns the instance's configuration.
	Config() config.Instance
	// Run runs the instance until ctx ends; with handover on shutdown
	// (router.Options.HandoverOnShutdown) a Master keeps its VIPs until a
	// new Master speaks, and Run returns after that.
	Run(ctx context.Context) error
	// VRRPStatus returns the instance's protocol status.
	VRRPStatus() vrrp.InstanceStatus
	// SetPriority sets the effective priority (health tracking).
	SetPriority(p uint8)
	// SetBeforeRemove sets what runs just before the VIPs are removed.
	SetBeforeRemove(fn func())
	// SetMasterHook sets what is told when the instance takes up (true,
	// before its VIPs are added) and leaves (false, before they are
	// removed) the Master role: the XDP fast path's forwarding.
	SetMasterHook(fn func(master bool))
}

// Routers returns the instances of g as the controller's VRRP instances.
func Routers(g *router.Group) []VRRP {
	var vs []VRRP
	for _, r := range g.Routers() {
		vs = append(vs, r)
	}
	return vs
}

// AttachFunc installs the steering of ctl.Steering for vips on
// ctl.APIPort into the proxy's listeners lns (Steer on Linux).
type AttachFunc func(ctl config.Controller, vips []netip.Addr, lns []*net.TCPListener, log *slog.Logger) (Steering, error)

// Config is what a Controller runs.
type Config struct {
	// Controller holds the settings: ports, steering mode, health
	// tracking, disableLoadBalancer.
	Controller config.Controller
	// VRRP are the instances, opened (router.ListenGroup); at least one.
	VRRP []VRRP
	// Proxy is the proxy to the API servers, not yet listening; nil with
	// Controller.DisableLoadBalancer. ProxyConfig gives its lb.Config.
	Proxy *lb.Proxy
	// Attach installs the steering; required with Proxy.
	Attach AttachFunc
	// Discover, when set, starts keeping the proxy's backends up to date
	// (the EndpointSlices of default/kubernetes: discover.Discoverer's
	// Start) until ctx ends or stop is called; stop waits for it. It runs
	// while the proxy serves.
	Discover func(ctx context.Context) (stop func())
	// HealthTarget is the local API server's host:port, and Probe checks
	// it; Probe is required when Controller.Health.Enabled.
	HealthTarget string
	Probe        func(ctx context.Context, addr string) error
	// Logger receives the controller's messages; nil discards them.
	Logger *slog.Logger
	// Registerer receives the health and steering metrics; nil: none.
	Registerer prometheus.Registerer
	// FastPath are the XDP fast path's OS effects (OSFastPath): it runs
	// when Controller.VirtualServers has entries, in place of the
	// steering into the proxy, whose backends and health checks it uses.
	// Its Cleanup, when set, runs in every other mode.
	FastPath FastPath
}

// proxy is what the controller uses of *lb.Proxy (a fake in tests of the
// stop order).
type proxy interface {
	Listen(ctx context.Context) error
	Listeners() []*net.TCPListener
	Serve(ctx context.Context) error
	Shutdown(ctx context.Context) error
	CloseAccepted(addrs []netip.Addr) int
	Ready() bool
	Addrs() []net.Addr
	Status() lb.Status
}

// Controller is one running `nlb controller`.
type Controller struct {
	cfg      config.Controller
	log      *slog.Logger
	reg      prometheus.Registerer
	vrrp     []VRRP
	vips     []netip.Addr
	proxy    proxy      // nil with disableLoadBalancer
	attach   AttachFunc // with proxy
	discover func(context.Context) (stop func())
	health   *healthFeed // nil when tracking is off
	fp       *fastPath   // nil without virtual servers
	cleanup  func(ifaces []string) error

	mu    sync.Mutex
	steer Steering // nil until Listen, and with disableLoadBalancer
}

// New checks cfg and returns a Controller. It registers the health
// tracking's metrics and does no I/O.
func New(cfg Config) (*Controller, error) {
	if len(cfg.VRRP) == 0 {
		return nil, errors.New("no VRRP instance")
	}
	if cfg.Proxy != nil && cfg.Attach == nil {
		return nil, errors.New("a proxy without a steering attach func")
	}
	if cfg.Controller.Health.Enabled && cfg.Probe == nil {
		return nil, errors.New("health tracking without a probe")
	}
	c := &Controller{cfg: cfg.Controller, log: cfg.Logger, reg: cfg.Registerer, vrrp: cfg.VRRP,
		attach: cfg.Attach, discover: cfg.Discover}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Proxy != nil {
		c.proxy = cfg.Proxy
	}
	if len(cfg.Controller.VirtualServers) > 0 && !cfg.Controller.DisableLoadBalancer {
		if cfg.Proxy == nil {
			return nil, errors.New("virtual servers without a proxy (their backends and health checks)")
		}
		fp, err := newFastPath(cfg.FastPath, cfg.Controller.VirtualServers, cfg.VRRP, c.log.With("component", "fastpath"))
		if err != nil {
			return nil, err
		}
		c.fp = fp
	} else {
		c.cleanup = cfg.FastPath.Cleanup
	}
	for _, v := range c.vrrp {
		for _, p := range v.Config().VIPs {
			c.vips = append(c.vips, p.Addr())
		}
	}
	// Health tracking: one Tracker per instance (their base priorities
	// differ), all fed the same results.
	if cfg.Controller.Health.Enabled {
		h, err := newHealthFeed(c, cfg.HealthTarget, cfg.Probe, c.log.With("component", "health"))
		if err != nil {
			return nil, err
		}
		c.health = h
	}
	return c, nil
}

// ProxyConfig is the proxy's configuration for ctl: the listen addresses
// (default :userSpaceProxyBindPort; 127.0.0.1:userSpaceProxyBindPort with
// virtual servers, whose VIPs the XDP fast path balances: the proxy then
// only serves the node itself, and its checks feed the fast path) and the
// static backends (default, when
// nothing is discovered, the local API server on 127.0.0.1:apiPort, as k0s
// does before its first discovery). The caller adds discovered backends,
// applies the defaults and validates.
func ProxyConfig(ctl config.Controller, listen, backends []string, discovering bool) lb.Config {
	cfg := lb.Config{Listen: listen, Backends: backends}
	if len(cfg.Listen) == 0 {
		host := ""
		if len(ctl.VirtualServers) > 0 {
			host = "127.0.0.1"
		}
		cfg.Listen = []string{net.JoinHostPort(host, strconv.Itoa(ctl.ProxyPort))}
	}
	if !discovering && len(cfg.Backends) == 0 {
		cfg.Backends = []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(ctl.APIPort))}
	}
	return cfg
}

// Listen binds the proxy's listeners (the error is the proxy's, an
// *lb.ListenError for an address that could not be bound) and steers
// VIP:apiPort into them; from then on the VRRP instances close the proxied
// connections to their VIPs before removing them. Without a proxy it does
// nothing. On failure nothing stays bound or installed.
func (c *Controller) Listen(ctx context.Context) error {
	if c.cleanup != nil {
		// A fast path an earlier run left (pinned datapaths, DR
		// addresses) does not belong to this mode.
		var ifaces []string
		for _, v := range c.vrrp {
			if n := v.Config().Interface; !slices.Contains(ifaces, n) {
				ifaces = append(ifaces, n)
			}
		}
		if err := c.cleanup(ifaces); err != nil {
			return fmt.Errorf("removing the XDP fast path of an earlier run: %w", err)
		}
	}
	if c.proxy == nil {
		return nil
	}
	if err := c.proxy.Listen(ctx); err != nil {
		return err
	}
	if c.fp != nil {
		if err := c.fp.listen(ctx, c.proxy); err != nil {
			_ = c.proxy.Shutdown(context.Background())
			return err
		}
		if c.reg != nil {
			if err := registerFastPathMetrics(c.reg, c.fp); err != nil {
				c.fp.close()
				_ = c.proxy.Shutdown(context.Background())
				return fmt.Errorf("fast path metrics: %w", err)
			}
		}
		return nil
	}
	s, err := c.attach(c.cfg, c.vips, c.proxy.Listeners(), c.log.With("component", "steering"))
	if err != nil {
		_ = c.proxy.Shutdown(context.Background())
		return err
	}
	if c.reg != nil {
		if err := c.reg.Register(newSteeringCollector(s)); err != nil {
			_ = s.Close()
			_ = c.proxy.Shutdown(context.Background())
			return fmt.Errorf("steering metrics: %w", err)
		}
	}
	c.mu.Lock()
	c.steer = s
	c.mu.Unlock()
	for _, v := range c.vrrp {
		vips := make([]netip.Addr, len(v.Config().VIPs))
		for i, p := range v.Config().VIPs {
			vips[i] = p.Addr()
		}
		v.SetBeforeRemove(func() { c.proxy.CloseAccepted(vips) })
	}
	return nil
}

// steering returns the installed steering, or nil.
func (c *Controller) steering() Steering {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.steer
}

// Run runs every part until ctx ends or one fails (then the others stop
// too: the supervisor restarts the process), and stops them in the order
// that keeps clients best served:
//
//  1. The VRRP instances stop: a Master sends a priority-0 advert and
//     keeps its VIPs, steered into the proxy, until the new Master's first
//     advert (at most the priority-0 Master_Down_Interval). Before each
//     removes its VIPs, the proxied connections accepted on them are
//     closed while the VIPs can still carry the FIN (SetBeforeRemove).
//  2. Once every instance has returned, the steering is removed.
//  3. The connections still open on a VIP, whose clients now reach the
//     new Master, are closed (lb.Proxy.CloseAccepted).
//  4. The proxy drains what is left (connections to the node's own
//     addresses), up to its shutdown timeout; discovery stops with it.
//
// Call Listen first.
func (c *Controller) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		cancel() // one part failing stops them all
	}
	vrrpDone := make(chan struct{})
	var vwg sync.WaitGroup
	for _, v := range c.vrrp {
		vwg.Add(1)
		go func() {
			defer vwg.Done()
			if err := v.Run(ctx); err != nil {
				fail(fmt.Errorf("controller: vrrp instance %s: %w", v.Config().Name, err))
			}
		}()
	}
	go func() { vwg.Wait(); close(vrrpDone) }()
	if c.health != nil {
		wg.Add(1)
		go func() { defer wg.Done(); c.health.run(ctx) }()
	}
	if c.proxy != nil {
		// The proxy outlives ctx by its drain: it gets its own context,
		// cancelled once the VIPs are gone.
		pctx, pcancel := context.WithCancel(context.Background())
		stopDiscovery := c.startDiscovery(pctx)
		if c.fp != nil {
			wg.Add(1)
			go func() { defer wg.Done(); c.fp.run(pctx) }()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ctx.Done()
			<-vrrpDone
			if c.fp != nil {
				// Every instance has handed over: another node
				// forwards. Clients that still send here are
				// forwarded until the new Master's second GARP
				// burst has reached them, then the datapath goes.
				// The real-server side stays: this node's API server
				// is still in every other node's table, and its
				// connections through the VIP go on.
				c.fp.drain(pctx)
				c.fp.stop()
			}
			if s := c.steering(); s != nil {
				// Close is idempotent (Close calls it again); the
				// steering stays for /status and /metrics readers.
				if err := s.Close(); err != nil {
					c.log.Error("removing steering", "err", err)
				}
			}
			// The VIPs have moved: their clients now reach the new
			// Master, so the connections accepted on them here can
			// only wait for the drain deadline. Connections to the
			// node's own addresses drain as usual.
			c.proxy.CloseAccepted(c.vips)
			pcancel()
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.proxy.Serve(pctx)
			stopDiscovery()
			if err != nil && ctx.Err() == nil {
				fail(fmt.Errorf("controller: proxy: %w", err))
			}
		}()
	}
	<-vrrpDone
	wg.Wait()
	c.log.Info("stopped")
	return errors.Join(errs...)
}

// startDiscovery runs discovery until ctx ends or the returned stop is
// called; stop waits for it to finish.
func (c *Controller) startDiscovery(ctx context.Context) (stop func()) {
	if c.discover == nil {
		return func() {}
	}
	return c.discover(ctx)
}

// Close removes the steering if Run has not (a start-up that failed after
// Listen). It may be called more than once, and after Run.
func (c *Controller) Close() error {
	if s := c.steering(); s != nil {
		if err := s.Close(); err != nil {
			c.log.Error("removing steering", "err", err)
			return fmt.Errorf("removing steering: %w", err)
		}
	}
	return nil
}

// BackendsChanged tells the XDP fast path that the proxy's backends or
// their health changed (lb.Options.Changed), so that it rebuilds its
// tables at once. Without a fast path it does nothing.
func (c *Controller) BackendsChanged() {
	if c.fp != nil {
		c.fp.changed()
	}
}

// SteeringMode names the steering: "sklookup", "nftables", "xdp" (the
// virtual servers' fast path, no steering) or "off" (disableLoadBalancer,
// or before Listen).
func (c *Controller) SteeringMode() string {
	if c.fp != nil {
		return "xdp"
	}
	if s := c.steering(); s != nil {
		return s.Mode()
	}
	return "off"
}

// Ready reports whether this node can serve the VIP now: its health
// tracking (when on) counts it healthy, and the proxy (when there is one)
// serves.
func (c *Controller) Ready() bool {
	if c.health != nil && !c.health.healthy() {
		return false
	}
	return c.proxy == nil || proxyServes(c.proxy)
}

// proxyServes is the proxy's readiness for VRRP: listening with a healthy
// backend, or failing open to all of them. Failing open counts as serving:
// when every check fails everywhere, dropping the VIP on every node would
// only add an outage.
func proxyServes(p proxy) bool {
	return p.Ready() || (len(p.Addrs()) > 0 && p.Status().FailOpen)
}

// Status returns the controller's /status.
func (c *Controller) Status() Status {
	var st Status
	for _, v := range c.vrrp {
		s := v.VRRPStatus()
		is := InstanceStatus{Status: router.StatusOf(v.Config(), s)}
		for _, t := range s.Recent {
			is.Recent = append(is.Recent, TransitionStatus{
				At: t.At.UTC().Format(time.RFC3339Nano), From: t.From.String(), To: t.To.String(), Reason: t.Reason,
			})
		}
		st.Instances = append(st.Instances, is)
	}
	if c.health != nil {
		hs := c.health.status()
		st.Health = &hs
	}
	st.Steering = SteeringStatus{Mode: c.SteeringMode(), Port: c.cfg.APIPort}
	if c.fp != nil {
		st.FastPath = c.fp.status()
	}
	if c.proxy != nil {
		st.Steering.ProxyPort = c.cfg.ProxyPort
		for _, v := range c.vips {
			st.Steering.VIPs = append(st.Steering.VIPs, v.String())
		}
		ps := c.proxy.Status()
		st.Proxy = &ps
	}
	return st
}

// Handlers are the controller's admin endpoints: /readyz (200 "ok" when
// Ready, else 503) and /status (Status as indented JSON).
func (c *Controller) Handlers() map[string]http.Handler {
	return map[string]http.Handler{
		"/readyz": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if !c.Ready() {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ok\n")
		}),
		"/status": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			_ = enc.Encode(c.Status())
		}),
	}
}
