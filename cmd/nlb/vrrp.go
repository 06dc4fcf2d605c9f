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
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/vrrp/router"
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
		// The k0s adoption path, as for nlb controller (README "k0s").
		overlay = fs.String("overlay", "", "nlb overlay `file`: nlb's additions (priority, preempt, garp ...) to --config's controlPlaneLoadBalancing, which keeps k0s's fields only (README \"k0s\")")
		runOff  = fs.Bool("run-disabled-cplb", false, "run the vrrpInstances of a controlPlaneLoadBalancing section with enabled: false: k0s's own file, where k0s leaves control plane load balancing to nlb (refused when enabled is true)")
		logf    logFlags
	)
	logf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *path == "" {
		return usageErrorf(fs, "--config is required")
	}
	// Before --check: a file with nothing to run fails it as it would
	// fail the run, with the same message.
	cfg, err := loadController(*path, *overlay, *runOff)
	if err != nil {
		return fmt.Errorf("vrrp: %w", err)
	}
	if *check {
		if err := printCheck(stdout, *path, cfg); err != nil {
			return err
		}
		printAdoption(stdout, *overlay, *runOff)
		return nil
	}
	log, reg, g, err := listenVRRP(cfg, logf, stderr, false)
	if err != nil {
		// Not wrapped: an instance's error already starts with
		// "vrrp: instance NAME on IFACE", a flag's names the flag.
		return err
	}
	defer g.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *admin != "" {
		status := jsonHandler(func() any { return g.Status() })
		stop, err := serveAdmin(ctx, *admin, reg, log, map[string]http.Handler{"/status": status})
		if err != nil {
			return err
		}
		defer stop()
	}

	log.Info("starting", "version", version, "instances", len(g.Routers()))
	notifyReady(ctx, log)
	err = g.Run(ctx)
	log.Info("stopped")
	return err
}

// listenVRRP is how `nlb vrrp` and `nlb controller` start alike: the
// logger, the Prometheus registry with the process metrics, and the VRRP
// instances opened (router.ListenGroup: stale VIPs already removed).
// handover sets router.Options.HandoverOnShutdown.
func listenVRRP(cfg *config.Config, logf logFlags, stderr io.Writer, handover bool) (*slog.Logger, *prometheus.Registry, *router.Group, error) {
	log, err := logf.logger(stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	reg := prometheus.NewRegistry()
	if err := registerProcessCollectors(reg); err != nil {
		return nil, nil, nil, err
	}
	g, err := router.ListenGroup(cfg, reg, router.Options{Logger: log, HandoverOnShutdown: handover})
	if err != nil {
		return nil, nil, nil, err
	}
	return log, reg, g, nil
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

// jsonHandler serves what snapshot returns as indented JSON.
func jsonHandler(snapshot func() any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(snapshot())
	})
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
