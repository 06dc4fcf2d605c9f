package main

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
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/vrrp"
	"github.com/nlb-dev/nlb/vrrp/announce"
	"github.com/nlb-dev/nlb/vrrp/clock"
	"github.com/nlb-dev/nlb/vrrp/link"
	"github.com/nlb-dev/nlb/vrrp/socket"
	"github.com/nlb-dev/nlb/vrrp/vip"
)

const vrrpUsage = `Usage: nlb vrrp --config FILE [--check] [flags]

Runs the VRRP instances of a k0s configuration: a whole ClusterConfig, or just
its spec.network.controlPlaneLoadBalancing section. Every node starts as
Backup; the VIPs are added on the node that becomes Master, followed by
gratuitous ARPs / unsolicited neighbour advertisements. SIGTERM or SIGINT
releases the VIPs with a priority-0 advertisement and exits.

Flags:
`

func runVRRP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("vrrp", vrrpUsage, stdout)
	var (
		path  = fs.String("config", "", "configuration `file` (k0s ClusterConfig or controlPlaneLoadBalancing section, YAML)")
		check = fs.Bool("check", false, "validate the configuration, print what would run, and exit")
		admin = fs.String("admin", "", "serve /metrics, /healthz and /status on this `address` (e.g. 127.0.0.1:9647); empty: off")
		logf  logFlags
	)
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
		return fmt.Errorf("vrrp: %w", err)
	}
	if *check {
		return printCheck(stdout, *path, cfg)
	}
	v, err := startVRRP(cfg, logf, stderr, false)
	if err != nil {
		return fmt.Errorf("vrrp: %w", err)
	}
	defer v.close()
	log, reg, runners := v.log, v.reg, v.runners

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *admin != "" {
		stop, err := serveAdmin(ctx, *admin, reg, log, map[string]http.Handler{"/status": vrrpStatusHandler(runners)})
		if err != nil {
			return err
		}
		defer stop()
	}

	log.Info("starting", "version", version, "instances", len(runners))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.run(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("vrrp: instance %s: %w", r.cfg.Name, err))
				mu.Unlock()
				// One instance failing stops them all: a half-running
				// daemon is worse than a restart by the supervisor.
				cancel()
			}
		}()
	}
	wg.Wait()
	log.Info("stopped")
	return errors.Join(errs...)
}

// vrrpSet is what `nlb vrrp` and `nlb controller` start the same way: the
// logger, the Prometheus registry with process and VRRP metrics, and one
// runner per configured instance (stale VIPs already removed).
type vrrpSet struct {
	log     *slog.Logger
	reg     *prometheus.Registry
	runners []*vrrpRunner
}

// startVRRP builds a vrrpSet from a loaded configuration: it logs the
// warnings, resolves the interfaces and opens every instance's sockets.
// handover sets vrrp.InstanceConfig.HandoverOnShutdown on every instance.
func startVRRP(cfg *config.Config, logf logFlags, stderr io.Writer, handover bool) (*vrrpSet, error) {
	log, err := logf.logger(stderr)
	if err != nil {
		return nil, err
	}
	for _, w := range cfg.Warnings() {
		log.Warn("configuration", "warning", w)
	}
	if err := cfg.ResolveInterfaces(link.NewResolver()); err != nil {
		return nil, err
	}
	if err := cfg.Runnable(); err != nil {
		return nil, err
	}
	insts := cfg.VRRPInstances()
	v := &vrrpSet{log: log, reg: prometheus.NewRegistry()}
	if err := registerProcessCollectors(v.reg); err != nil {
		return nil, err
	}
	metrics, err := vrrp.NewMetrics(v.reg)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	for _, in := range insts {
		r, err := newVRRPRunner(in, log, metrics, handover)
		if err != nil {
			v.close()
			return nil, err
		}
		v.runners = append(v.runners, r)
	}
	return v, nil
}

func (v *vrrpSet) close() {
	for _, r := range v.runners {
		r.close()
	}
}

// vrrpRunner is one configured instance with its OS resources.
type vrrpRunner struct {
	cfg  config.Instance
	log  *slog.Logger
	inst *vrrp.Instance
	conn *socket.Conn
	ann  *announce.Announcer
	vips *vip.Manager
	// beforeRemove, when set (before run), runs just before the VIPs are
	// removed: the controller closes its proxied connections to them
	// while the VIPs can still carry the FIN, so that clients reconnect
	// (to the new holder) at once instead of finding out by timeout.
	beforeRemove func()
}

func newVRRPRunner(in config.Instance, log *slog.Logger, metrics *vrrp.Metrics, handover bool) (*vrrpRunner, error) {
	fail := func(err error) (*vrrpRunner, error) {
		return nil, fmt.Errorf("vrrp: instance %s on %s: %w", in.Name, in.Interface, err)
	}
	r := &vrrpRunner{cfg: in, log: log.With("iface", in.Interface)}
	src := in.UnicastSource
	if !src.IsValid() {
		var err error
		if src, err = link.PrimaryAddress(in.Interface, in.IPv6, in.VIPs); err != nil {
			return fail(err)
		}
	}
	unicast := len(in.UnicastPeers) > 0
	sc := socket.Config{Source: src, Unicast: unicast, Peers: in.UnicastPeers}
	var err error
	if in.IPv6 {
		r.conn, err = socket.ListenIPv6(in.Interface, sc)
	} else {
		r.conn, err = socket.ListenIPv4(in.Interface, sc)
	}
	if err != nil {
		return fail(err)
	}
	if r.ann, err = announce.Dial(in.Interface); err != nil {
		r.close()
		return fail(err)
	}
	addrs := make([]netip.Addr, len(in.VIPs))
	for i, p := range in.VIPs {
		addrs[i] = p.Addr()
	}
	ilog := log.With("iface", in.Interface) // the instance adds its name and VRID
	// Check before the instance starts: at start it removes stale VIPs,
	// and a VIP that is a node address is never one.
	// Not ilog: the manager names the interface of each message itself.
	mgr := vip.New(in.Interface, in.VIPs, vip.Options{AddressLabel: in.AddressLabel, Logger: log.With("instance", in.Name)})
	r.vips = mgr
	if err := mgr.Check(); err != nil {
		r.close()
		return fail(err)
	}
	// A VIP left by a crashed predecessor answers ARP beside the new
	// Master's until removed: remove it now, before the slower start-up
	// of the proxy and steering (the instance removes it again at Run).
	if err := mgr.Remove(); err != nil {
		r.close()
		return fail(err)
	}
	icfg := in.VRRPConfig(src)
	icfg.FineSleep = clock.FineSleeper()
	icfg.HandoverOnShutdown = handover
	fx := vrrp.Effects{
		// The VIPs expire unless the Master's adverts keep refreshing
		// them: a killed or stopped nlb does not keep them.
		AddVIPs:     func(_ context.Context, lifetime time.Duration) error { return mgr.AddFor(lifetime) },
		RefreshVIPs: func(_ context.Context, lifetime time.Duration) error { return mgr.Refresh(lifetime) },
		RemoveVIPs: func(context.Context) error {
			if r.beforeRemove != nil {
				r.beforeRemove()
			}
			return mgr.Remove()
		},
		Announce: func(context.Context) error { return r.ann.Announce(addrs) },
	}
	if r.inst, err = vrrp.NewInstance(icfg, r.conn, fx, ilog, metrics); err != nil {
		r.close()
		return fail(err)
	}
	ilog.Info("configured", "instance", in.Name, "vrid", in.VRID, "version", int(in.Version), "priority", in.Priority, "interval", in.Interval.String(),
		"source", src.String(), "unicast", unicast, "vips", fmt.Sprint(in.VIPs))
	return r, nil
}

// run runs the instance, in fault while its interface is down or without
// carrier (keepalived's interface tracking), until ctx ends.
func (r *vrrpRunner) run(ctx context.Context) error {
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := link.WatchCarrier(wctx, r.cfg.Interface, r.log, func(up bool) {
			if !up {
				r.log.Warn("interface down or without carrier: fault", "instance", r.cfg.Name)
			}
			r.inst.SetFault(!up)
		})
		if err != nil {
			r.log.Warn("not tracking the interface's link state", "instance", r.cfg.Name, "err", err)
		}
	}()
	defer func() { cancel(); <-done }()
	return r.inst.Run(ctx)
}

func (r *vrrpRunner) close() {
	if r.conn != nil {
		_ = r.conn.Close()
	}
	if r.ann != nil {
		_ = r.ann.Close()
	}
	if r.vips != nil {
		_ = r.vips.Close()
	}
}

// printCheck reports a valid configuration the way `nlb vrrp` would run it.
func printCheck(w io.Writer, path string, cfg *config.Config) error {
	insts := cfg.VRRPInstances()
	fmt.Fprintf(w, "%s: valid, %d VRRP instance(s)\n", path, len(insts))
	for _, in := range insts {
		iface := in.Interface
		if iface == "" {
			iface = "(default-route interface)"
		}
		mode := "multicast"
		if len(in.UnicastPeers) > 0 {
			mode = fmt.Sprintf("unicast %s -> %v", in.UnicastSource, in.UnicastPeers)
		}
		fmt.Fprintf(w, "  %s: VRRPv%d vrid %d priority %d interval %s on %s, %s, VIPs %v\n",
			in.Name, in.Version, in.VRID, in.Priority, in.Interval, iface, mode, in.VIPs)
	}
	for _, warn := range cfg.Warnings() {
		fmt.Fprintf(w, "  warning: %s\n", warn)
	}
	return nil
}

// vrrpStatus is the JSON shape of /status for `nlb vrrp`.
type vrrpStatus struct {
	Instances []instanceStatus `json:"instances"`
}

type instanceStatus struct {
	Name           string   `json:"name"`
	VRID           uint8    `json:"vrid"`
	Interface      string   `json:"interface"`
	State          string   `json:"state"`
	Priority       uint8    `json:"priority"`
	Master         string   `json:"master,omitempty"`
	VIPs           []string `json:"vips"`
	VIPsConfigured bool     `json:"vips_configured"`
	Fault          bool     `json:"fault,omitempty"`
	Transitions    uint64   `json:"transitions"`
	LastTransition string   `json:"last_transition,omitempty"`
	LastReason     string   `json:"last_reason,omitempty"`
	MasterDownMS   float64  `json:"master_down_interval_ms"`
}

func vrrpStatusHandler(runners []*vrrpRunner) http.Handler {
	return jsonHandler(func() any {
		var st vrrpStatus
		for _, r := range runners {
			st.Instances = append(st.Instances, toInstanceStatus(r, r.inst.Status()))
		}
		return st
	})
}

// jsonHandler serves what snapshot returns as indented JSON.
func jsonHandler(snapshot func() any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(snapshot())
	})
}

// toInstanceStatus is the JSON form of one instance's status.
func toInstanceStatus(r *vrrpRunner, s vrrp.InstanceStatus) instanceStatus {
	is := instanceStatus{
		Name: s.Name, VRID: s.VRID, Interface: r.cfg.Interface, State: s.State.String(),
		Priority: s.Priority, VIPsConfigured: s.VIPsConfigured, Fault: s.Fault, Transitions: s.Transitions,
		LastReason: s.LastReason, MasterDownMS: float64(s.MasterDownInterval) / float64(time.Millisecond),
	}
	if s.Master.IsValid() {
		is.Master = s.Master.String()
	}
	if !s.LastTransition.IsZero() {
		is.LastTransition = s.LastTransition.UTC().Format(time.RFC3339Nano)
	}
	for _, v := range r.cfg.VIPs {
		is.VIPs = append(is.VIPs, v.String())
	}
	return is
}

// registerProcessCollectors adds the Go runtime and process metrics.
func registerProcessCollectors(reg *prometheus.Registry) error {
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	return nil
}

// serveAdmin serves /metrics, /healthz and the given handlers (such as
// /status) on addr until ctx ends or stop is called.
func serveAdmin(ctx context.Context, addr string, reg *prometheus.Registry, log *slog.Logger, handlers map[string]http.Handler) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin: listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	for path, h := range handlers {
		mux.Handle(path, h)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server stopped", "err", err)
		}
	}()
	log.Info("admin listening", "addr", ln.Addr().String())
	var once sync.Once
	stop = func() {
		once.Do(func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		})
	}
	go func() { <-ctx.Done(); stop() }()
	return stop, nil
}
