package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/vrrp/router"
)

const controllerUsage = `Usage: nlb controller --config FILE [--kubeconfig ADMIN_KUBECONFIG] [flags]

Runs everything k0s's control plane load balancing (CPLB) does with
keepalived, on each controller, in one process:

  - the VRRP instances of spec.network.controlPlaneLoadBalancing (as nlb vrrp);
  - the proxy on userSpaceProxyBindPort (6444), its backends the API servers
    of the EndpointSlices of default/kubernetes, read through --kubeconfig (the
    admin kubeconfig of the local API server), health-checked with GET /readyz
    and that identity (as nlb proxy --discover);
  - steering of VIP:spec.api.port into the proxy on the node holding the VIP,
    with an eBPF sk_lookup program, or nftables rules where sk_lookup is
    missing (keepalived.steering: auto, sklookup or nftables); no iptables;
  - the VIP follows health: the local API server's /readyz and the proxy's
    readiness are checked every apiServerHealth.interval; after fall
    failures the node gives up mastership (priority 0, or lowers it by
    -weight), and after rise successes (more while it flaps) it takes part
    again.

With keepalived.disableLoadBalancer: true only the VIPs run (no proxy, no
steering); health tracking still applies.

SIGTERM or SIGINT hands the VIPs over make-before-break: a priority-0
advertisement, the VIPs kept (and steered into the proxy) until the new
master's first advertisement (at most 4 advertisement intervals), then the
steering removed. Proxied connections to the VIPs, whose clients now reach
the new master, are closed; the others are left to finish (up to 30 s).

Without --kubeconfig the proxy uses the --backend addresses, or else sends
everything to 127.0.0.1:<api port> (as k0s does before its first
discovery), and the local API server is checked with a TCP connect only.

Admin server (--admin): /metrics, /healthz, /readyz (the node can serve:
healthy API server and proxy) and /status (JSON, rendered by nlb status).
Metrics: nlb_vrrp_* (as nlb vrrp), nlb_proxy_* (as nlb proxy), the health
tracking's, and nlb_steering_connections_total{result} (sk_lookup only:
steered, no_listener, assign_failed).

Flags:
`

// Defaults of `nlb controller`.
const defaultControllerAdmin = "127.0.0.1:9647"

func runController(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("controller", controllerUsage, stdout)
	var (
		path       = fs.String("config", "", "configuration `file` (k0s ClusterConfig, or the controlPlaneLoadBalancing section)")
		kubeconfig = fs.String("kubeconfig", "", "admin kubeconfig `file` of the local API server: discovery and /readyz checks")
		admin      = fs.String("admin", defaultControllerAdmin, "admin server `address` (/metrics, /healthz, /readyz, /status); empty: off")
		cacheFile  = fs.String("cache-file", "", "`file` caching the discovered API servers for the next start (empty: none)")
		localAPI   = fs.String("local-api-server", "", "`host:port` of this node's API server for the health check (default: the kubeconfig's server, else 127.0.0.1:<api port>)")
		check      = fs.Bool("check", false, "validate the configuration, print what would run, and exit")
		listen     stringsFlag
		backends   stringsFlag
		logf       logFlags
	)
	fs.Var(&listen, "listen", "proxy listen `address` (repeatable; default :<userSpaceProxyBindPort>)")
	fs.Var(&backends, "backend", "static API server `address` host:port for the proxy (repeatable); with --kubeconfig they only seed discovery")
	logf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return usageErrorf(fs, "--config is required")
	}
	cfg, err := config.LoadFile(*path)
	if err == nil {
		// Before --check: a file with nothing to run fails it as it
		// would fail the run, with the same message.
		err = cfg.Runnable()
	}
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	ctl := cfg.Controller()
	if *check {
		if err := printCheck(stdout, *path, cfg); err != nil {
			return err
		}
		return printControllerCheck(stdout, ctl)
	}
	// The controller serves the VIPs through its proxy until VRRP has
	// stopped: on SIGTERM the VIPs stay until a new Master speaks.
	log, reg, g, err := listenVRRP(cfg, logf, stderr, true)
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	c := &controller{cfg: ctl, log: log, runners: g.Routers()}
	defer c.close()
	for _, r := range c.runners {
		for _, p := range r.Config().VIPs {
			c.vips = append(c.vips, p.Addr())
		}
	}

	// The proxy and its discovery, as `nlb proxy --discover`.
	disc := &proxyDiscover{enabled: *kubeconfig != "", kubeconfig: *kubeconfig, apiPort: ctl.APIPort, cacheFile: *cacheFile}
	if err := disc.prepare(); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	if !ctl.DisableLoadBalancer {
		lcfg := lb.Config{Listen: listen, Backends: backends}
		if len(lcfg.Listen) == 0 {
			lcfg.Listen = []string{":" + strconv.Itoa(ctl.ProxyPort)}
		}
		if !disc.enabled && len(lcfg.Backends) == 0 {
			lcfg.Backends = []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(ctl.APIPort))}
		}
		if err := disc.fill(&lcfg); err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		lcfg.SetDefaults()
		if err := lcfg.Validate(); err != nil {
			return fmt.Errorf("controller: proxy: %w", err)
		}
		if c.proxy, err = lb.New(lcfg, disc.options(lb.Options{Logger: log.With("component", "proxy"), Registerer: reg})); err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		if err := c.proxy.Listen(ctx); err != nil {
			return bindError("controller", "proxy listener (--listen, userSpaceProxyBindPort)", err)
		}
		if c.steer, err = attachSteering(ctl, c.vips, c.proxy.Listeners(), log.With("component", "steering")); err != nil {
			c.proxy.Shutdown(context.Background())
			return fmt.Errorf("controller: %w", err)
		}
		for _, r := range c.runners {
			vips := make([]netip.Addr, len(r.Config().VIPs))
			for i, p := range r.Config().VIPs {
				vips[i] = p.Addr()
			}
			r.SetBeforeRemove(func() { c.proxy.CloseAccepted(vips) })
		}
		if sc := newSteeringCollector(c.steer); sc != nil {
			if err := reg.Register(sc); err != nil {
				return fmt.Errorf("controller: steering metrics: %w", err)
			}
		}
	}

	// Health tracking: one Tracker per instance (their base priorities
	// differ), all fed the same results.
	if ctl.Health.Enabled {
		target, probe, err := localAPICheck(*localAPI, disc, ctl.APIPort)
		if err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		h, err := newHealthFeed(ctl.Health, target, probe, c.proxy, c.runners, reg, log.With("component", "health"))
		if err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		c.health = h
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *admin != "" {
		stop, err := serveAdmin(ctx, *admin, reg, log, c.adminHandlers())
		if err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		defer stop()
	}

	log.Info("starting", "version", version, "instances", len(c.runners), "api_port", ctl.APIPort,
		"proxy_port", ctl.ProxyPort, "load_balancer", !ctl.DisableLoadBalancer, "steering", c.steerMode(),
		"health", ctl.Health.Enabled, "discovery", disc.enabled)
	return c.run(ctx, cancel, disc)
}

// controller is one running `nlb controller`.
type controller struct {
	cfg     config.Controller
	log     *slog.Logger
	runners []*router.Router
	vips    []netip.Addr
	proxy   *lb.Proxy   // nil with disableLoadBalancer
	steer   steering    // nil with disableLoadBalancer
	health  *healthFeed // nil when tracking is off
}

// run runs every part until ctx ends or one fails, then stops them in the
// order that keeps clients best served: VRRP first (a priority-0 advert;
// the VIPs stay, steered into the proxy, until the new Master's first
// advert, at most the Master_Down_Interval of priority 0), then steering,
// then the proxy drains.
func (c *controller) run(ctx context.Context, cancel context.CancelFunc, disc *proxyDiscover) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		cancel() // one part failing stops them all: the supervisor restarts us
	}
	vrrpDone := make(chan struct{})
	var vwg sync.WaitGroup
	for _, r := range c.runners {
		vwg.Add(1)
		go func() {
			defer vwg.Done()
			if err := r.Run(ctx); err != nil {
				fail(fmt.Errorf("controller: vrrp instance %s: %w", r.Config().Name, err))
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
		stopDiscovery := disc.start(pctx, c.proxy, c.log)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ctx.Done()
			<-vrrpDone
			if c.steer != nil {
				// Close is idempotent (close calls it again); c.steer
				// stays for /status and /metrics readers.
				if err := c.steer.Close(); err != nil {
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

func (c *controller) close() {
	if c.steer != nil {
		if err := c.steer.Close(); err != nil {
			c.log.Error("removing steering", "err", err)
		}
	}
	for _, r := range c.runners {
		_ = r.Close()
	}
}

func (c *controller) steerMode() string {
	if c.steer == nil {
		return "off"
	}
	return c.steer.Mode()
}

// ready reports whether this node can serve the VIP now.
func (c *controller) ready() bool {
	if c.health != nil && !c.health.healthy() {
		return false
	}
	return c.proxy == nil || proxyServes(c.proxy)
}

// proxyServes is the proxy's readiness for VRRP: listening with a healthy
// backend, or failing open to all of them. Failing open counts as serving:
// when every check fails everywhere, dropping the VIP on every node would
// only add an outage.
func proxyServes(p *lb.Proxy) bool {
	return p.Ready() || (len(p.Addrs()) > 0 && p.Status().FailOpen)
}

// controllerStatus is the JSON of the controller's /status; `nlb status`
// renders it.
type controllerStatus struct {
	Instances []controllerInstance `json:"instances"`
	Health    *healthStatus        `json:"health,omitempty"`
	Steering  steeringStatus       `json:"steering"`
	Proxy     *lb.Status           `json:"proxy,omitempty"`
}

type controllerInstance struct {
	router.Status
	Recent []transitionStatus `json:"recent_transitions,omitempty"`
}

type transitionStatus struct {
	At     string `json:"at"`
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason"`
}

type steeringStatus struct {
	Mode      string   `json:"mode"`
	VIPs      []string `json:"vips,omitempty"`
	Port      int      `json:"port"`
	ProxyPort int      `json:"proxy_port,omitempty"`
}

func (c *controller) status() controllerStatus {
	var st controllerStatus
	for _, r := range c.runners {
		s := r.VRRPStatus()
		ci := controllerInstance{Status: router.StatusOf(r.Config(), s)}
		for _, t := range s.Recent {
			ci.Recent = append(ci.Recent, transitionStatus{
				At: t.At.UTC().Format(time.RFC3339Nano), From: t.From.String(), To: t.To.String(), Reason: t.Reason,
			})
		}
		st.Instances = append(st.Instances, ci)
	}
	if c.health != nil {
		hs := c.health.status()
		st.Health = &hs
	}
	st.Steering = steeringStatus{Mode: c.steerMode(), Port: c.cfg.APIPort}
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

// adminHandlers are the controller's /readyz and /status.
func (c *controller) adminHandlers() map[string]http.Handler {
	return map[string]http.Handler{
		"/readyz": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if !c.ready() {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ok\n")
		}),
		"/status": jsonHandler(func() any { return c.status() }),
	}
}

// printControllerCheck adds the controller settings to --check's output.
func printControllerCheck(w io.Writer, ctl config.Controller) error {
	if ctl.DisableLoadBalancer {
		fmt.Fprintf(w, "  load balancer: disabled (VIPs only)\n")
	} else {
		fmt.Fprintf(w, "  proxy on :%d, VIP:%d steered into it (%s)\n", ctl.ProxyPort, ctl.APIPort, ctl.Steering)
	}
	h := ctl.Health
	if !h.Enabled {
		_, err := fmt.Fprintf(w, "  API server health tracking: off\n")
		return err
	}
	action := "gives up mastership (priority 0)"
	if h.Weight < 0 {
		action = fmt.Sprintf("lowers its priority by %d", -h.Weight)
	} else if h.Weight > 0 {
		action = fmt.Sprintf("loses the +%d it has while healthy", h.Weight)
	}
	_, err := fmt.Fprintf(w, "  API server health: every %s (timeout %s); after %d failures the node %s; back after %d successes\n",
		h.Interval, h.Timeout, h.Fall, action, h.Rise)
	return err
}
