package main

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/cplb"
	"github.com/nlb-dev/nlb/ebpf/xdplb"
	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/lb/discover"
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

With keepalived.virtualServers (k0s's switch to keepalived's IPVS), those
VIPs are balanced by the XDP fast path instead of the steering: on the VRRP
interface an XDP program (native, else generic, else tcx when another XDP
program holds it) sends each TCP flow to VIP:api port to an API server by
direct server return (Maglev on the client address, the same table on every
node, so a VIP move keeps every connection to a live API server). The
backends and their /readyz health are the proxy's, which then listens on
127.0.0.1 only. Every controller holds the VIPs on dummyvip0 (or lo) as a
real server, with arp_ignore/arp_announce set; the datapath is pinned under
--bpf-pin-dir and outlives a crash; a graceful stop removes it but leaves
the real-server addresses (the local API server stays in the other nodes'
tables). The backends must share the VIP's layer-2 segment and listen on
the same port. lbAlgo, persistenceTimeoutSeconds and delayLoop are accepted
and superseded (logged once; README); lbKind NAT and TUN are refused.

With keepalived.disableLoadBalancer: true only the VIPs run (no proxy, no
steering, no fast path); health tracking still applies.

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
tracking's, nlb_steering_connections_total{result} (sk_lookup only:
steered, no_listener, assign_failed), and with virtualServers the fast
path's nlb_xdp_{packets,bytes,new_flows,rehashed_flows}_total{vip,port},
nlb_xdp_backend_*_total{vip,port,backend} and nlb_xdp_events_total{event}.

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
		pinDir     = fs.String("bpf-pin-dir", cplb.DefaultPinDir, "bpffs `directory` where the XDP fast path is pinned (<dir>/<interface>), so that it outlives the process")
		stateFile  = fs.String("dsr-state-file", cplb.DefaultStateFile, "`file` keeping the ARP sysctls the fast path's real-server side changed (a tmpfs: a reboot clears both)")
		flowTable  = fs.Int("xdp-flow-table-size", xdplb.DefaultFlowTableSize, "`flows` the XDP fast path's flow table holds (preallocated; nlb status shows its memory)")
		xdpMode    = fs.String("xdp-mode", "auto", "how the XDP fast path attaches: auto (xdp-native, else xdp-generic, else tcx-ingress; tcx-ingress first on a veth), or one of those `mode`s only")
		overlay    = fs.String("overlay", "", "nlb overlay `file`: nlb's additions (priority, preempt, garp, steering, apiServerHealth ...) to --config's controlPlaneLoadBalancing, which keeps k0s's fields only (README \"k0s\")")
		runOff     = fs.Bool("run-disabled-cplb", false, "run the vrrpInstances of a controlPlaneLoadBalancing section with enabled: false: k0s's own file, where k0s leaves control plane load balancing to nlb (refused when enabled is true)")
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
	if *flowTable < 1 {
		return usageErrorf(fs, "--xdp-flow-table-size must be at least 1, got %d", *flowTable)
	}
	var modes []string
	switch *xdpMode {
	case "auto":
	case "xdp-native", "xdp-generic", "tcx-ingress":
		modes = []string{*xdpMode}
	default:
		return usageErrorf(fs, "--xdp-mode must be auto, xdp-native, xdp-generic or tcx-ingress, got %q", *xdpMode)
	}
	cfg, err := loadController(*path, *overlay, *runOff)
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	ctl := cfg.Controller()
	if *check {
		if err := printCheck(stdout, *path, cfg); err != nil {
			return err
		}
		printAdoption(stdout, *overlay, *runOff)
		return printControllerCheck(stdout, ctl)
	}
	// The controller serves the VIPs through its proxy until VRRP has
	// stopped: on SIGTERM the VIPs stay until a new Master speaks.
	log, reg, g, err := listenVRRP(cfg, logf, stderr, true)
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	defer g.Close()
	ccfg := cplb.Config{Controller: ctl, VRRP: cplb.Routers(g), Attach: cplb.Steer, Logger: log, Registerer: reg,
		FastPath: cplb.OSFastPath(cplb.OSFastPathOptions{PinDir: *pinDir, StateFile: *stateFile, FlowTableSize: *flowTable, AttachModes: modes,
			Logger: log.With("component", "dsr")})}
	// The proxy's backend changes reach the fast path's tables at once.
	var ctlp atomic.Pointer[cplb.Controller]
	changed := func() {
		if c := ctlp.Load(); c != nil {
			c.BackendsChanged()
		}
	}

	// The proxy and its discovery, as `nlb proxy --discover`.
	d := discover.New(discover.Config{Enabled: *kubeconfig != "", Kubeconfig: *kubeconfig, APIPort: ctl.APIPort, CacheFile: *cacheFile})
	if err := d.Prepare(); err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	if !ctl.DisableLoadBalancer {
		lcfg := cplb.ProxyConfig(ctl, listen, backends, d.Enabled())
		if err := d.Fill(&lcfg); err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		lcfg.SetDefaults()
		if err := lcfg.Validate(); err != nil {
			return fmt.Errorf("controller: proxy: %w", err)
		}
		p, err := lb.New(lcfg, d.Options(lb.Options{Logger: log.With("component", "proxy"), Registerer: reg, Changed: changed}))
		if err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		ccfg.Proxy = p
		ccfg.Discover = func(ctx context.Context) func() { return d.Start(ctx, p, log) }
	}
	if ctl.Health.Enabled {
		// GET /readyz with the admin kubeconfig's CA and identity when
		// there is one, else a TCP connect.
		if ccfg.HealthTarget, err = cplb.LocalAPI(*localAPI, d.Kubeconfig(), *kubeconfig, ctl.APIPort); err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		ccfg.Probe = cplb.DialProbe
		if chk := d.APICheck(); chk != nil {
			ccfg.Probe = chk.Check
		}
	}
	c, err := cplb.New(ccfg)
	if err != nil {
		return fmt.Errorf("controller: %w", err)
	}
	ctlp.Store(c)
	defer c.Close()
	if err := c.Listen(ctx); err != nil {
		return bindError("controller", "proxy listener (--listen, userSpaceProxyBindPort)", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *admin != "" {
		stop, err := serveAdmin(ctx, *admin, reg, log, c.Handlers())
		if err != nil {
			return fmt.Errorf("controller: %w", err)
		}
		defer stop()
	}

	log.Info("starting", "version", version, "instances", len(g.Routers()), "api_port", ctl.APIPort,
		"proxy_port", ctl.ProxyPort, "load_balancer", !ctl.DisableLoadBalancer, "steering", c.SteeringMode(),
		"health", ctl.Health.Enabled, "discovery", d.Enabled())
	notifyReady(ctx, log)
	return c.Run(ctx)
}

// printControllerCheck adds the controller settings to --check's output.
func printControllerCheck(w io.Writer, ctl config.Controller) error {
	if ctl.DisableLoadBalancer {
		fmt.Fprintf(w, "  load balancer: disabled (VIPs only)\n")
	} else if len(ctl.VirtualServers) > 0 {
		for _, vs := range ctl.VirtualServers {
			fmt.Fprintf(w, "  virtual server %s:%d: XDP fast path (direct server return, Maglev on the client address) on the VRRP Master\n",
				vs.VIP, vs.Port)
			for _, n := range vs.Notes {
				fmt.Fprintf(w, "    %s\n", n)
			}
		}
		fmt.Fprintf(w, "  proxy on 127.0.0.1:%d (this node only; its /readyz checks feed the fast path's tables)\n", ctl.ProxyPort)
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
	if _, err := fmt.Fprintf(w, "  API server health: every %s (timeout %s); after %d failures the node %s; back after %d successes\n",
		h.Interval, h.Timeout, h.Fall, action, h.Rise); err != nil {
		return err
	}
	return printStartupGrace(w, h)
}
