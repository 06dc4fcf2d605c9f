package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/lb/discover"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const proxyUsage = `Usage: nlb proxy [flags]

Run the L4 TCP load balancer: accept on --listen, splice each connection to
a healthy --backend (round robin or least connections), retry the next
backend when a dial is refused or times out (and, when all failed, all of
them again within dialBudget), drain backends that go away.

Everything beyond listen addresses and backends lives in --config, a YAML
file (unknown fields are errors):

  listen: [":6444"]              # also --listen; default :6444
  backends: ["10.0.0.1:6443"]    # also --backend
  balance: roundRobin            # or leastConnections
  connectTimeout: 250ms          # per dial, then the next backend
  dialBudget: 3s                 # a client's total wait for a backend: when every
                                 # backend failed, pause and try them all again
  idleTimeout: 0s                # 0: never close idle connections
  maxConnections: 10000          # beyond: new clients are closed and counted
  drainPeriod: 2m10s             # keep connections of a removed/unhealthy backend
  drainStagger: 10s              # then close them spread over this window
  shutdownTimeout: 30s           # graceful shutdown on SIGINT/SIGTERM
  keepAlive: {idle: 15s, interval: 5s, count: 3}
  userTimeout: 30s               # TCP_USER_TIMEOUT; 0 leaves the kernel default
  loopbackCongestionControl: reno  # TCP congestion control of loopback legs (no
                                   # pacing timers where nothing queues); "system"
                                   # keeps net.ipv4.tcp_congestion_control
  healthCheck:
    type: tcp                    # tcp, tls, https (GET path, 200 = healthy) or none
    interval: 500ms
    timeout: 250ms
    rise: 2                      # successes to become healthy
    fall: 3                      # failures to become unhealthy
    path: /readyz
    caFile: ""                   # tls/https: CA bundle (default system roots)
    certFile: ""                 # tls/https: client certificate and key,
    keyFile: ""                  #   e.g. for kube-apiserver without anonymous auth
    serverName: ""
    insecureSkipVerify: false
  admin: 127.0.0.1:9901          # also --admin

Flags given on the command line replace the file's values. SIGHUP re-reads
the file (flags still apply) and swaps backends and settings without
dropping connections; listen addresses need a restart.

When every backend is unhealthy the proxy fails open to all of them (as
k0s does) and says so in the log, /status and nlb_proxy_fail_open.

Admin server (--admin): /metrics (Prometheus), /healthz (process up),
/readyz (listening with a healthy backend), /status (JSON: listeners,
backends with health, active connections and bytes, fail_open).

Metrics (prefix nlb_proxy_): active_connections, connections_total,
bytes_total{direction}, limit_reached_total, max_connections,
no_backend_total, dial_retries_total, dial_waited_total,
dial_budget_exhausted_total, idle_timeouts_total, drained_connections_total,
fail_open, backend_active_connections{backend},
backend_connections_total{backend}, backend_bytes_total{backend,direction},
dial_failures_total{backend}, backend_healthy{backend},
backend_suspect{backend}, backend_draining{backend},
health_checks_total{backend,result}. Direction "in" is client to backend.

Flags:
`

// stringsFlag is a repeatable string flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// bindError prefixes err with cmd and, when it is a listen address that
// could not be bound (lb.ListenError), with the flag that gave it:
// "proxy: --listen: lb: listen tcp 127.0.0.1:6444: bind: address already
// in use".
func bindError(cmd, flag string, err error) error {
	if le := (*lb.ListenError)(nil); errors.As(err, &le) {
		return fmt.Errorf("%s: %s: %w", cmd, flag, err)
	}
	return fmt.Errorf("%s: %w", cmd, err)
}

func runProxy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("proxy", proxyUsage, stdout)
	var listen, backends stringsFlag
	fs.Var(&listen, "listen", "`address` to accept on, host:port (repeatable; default :6444)")
	fs.Var(&backends, "backend", "backend `address`, host:port (repeatable)")
	configFile := fs.String("config", "", "YAML configuration `file` for everything else")
	admin := fs.String("admin", "", "admin server `address`, e.g. 127.0.0.1:9901 (empty: none)")
	logFormat := fs.String("log-format", "json", "log format: json or text")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	check := fs.Bool("check", false, "check the configuration and exit")
	discCfg := addProxyDiscoverFlags(fs) // --discover, --kubeconfig, --api-port, --cache-file (proxy_discover.go)
	// Hidden: a CPU profile of the whole run, for performance work.
	cpuProfile := fs.String("cpuprofile", "", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	disc := discover.New(*discCfg)

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("proxy: --log-level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var log *slog.Logger
	switch *logFormat {
	case "json":
		log = slog.New(slog.NewJSONHandler(stderr, hopts))
	case "text":
		log = slog.New(slog.NewTextHandler(stderr, hopts))
	default:
		return fmt.Errorf("proxy: --log-format must be json or text, got %q", *logFormat)
	}

	load := func() (lb.Config, error) {
		var cfg lb.Config
		if *configFile != "" {
			var err error
			if cfg, err = lb.LoadFile(*configFile); err != nil {
				return cfg, err
			}
		}
		if len(listen) > 0 {
			cfg.Listen = listen
		}
		if len(backends) > 0 {
			cfg.Backends = backends
		}
		if *admin != "" {
			cfg.Admin = *admin
		}
		if err := disc.Fill(&cfg); err != nil {
			return cfg, err
		}
		cfg.SetDefaults()
		return cfg, cfg.Validate()
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	if *check {
		if err := cfg.LoadFiles(); err != nil {
			return err
		}
		_, err := fmt.Fprintln(stdout, "configuration ok")
		return err
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("proxy: --cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("proxy: --cpuprofile: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	p, err := lb.New(cfg, disc.Options(lb.Options{Logger: log, Registerer: reg}))
	if err != nil {
		return err
	}
	if err := p.Listen(ctx); err != nil {
		return bindError("proxy", "--listen", err)
	}

	var adminSrv *http.Server
	if cfg.Admin != "" {
		ln, err := net.Listen("tcp", cfg.Admin)
		if err != nil {
			p.Shutdown(context.Background())
			return fmt.Errorf("proxy: --admin: %w", err)
		}
		adminSrv = &http.Server{Handler: p.AdminHandler(reg), ReadHeaderTimeout: 10 * time.Second}
		log.Info("admin server listening", "addr", ln.Addr().String())
		go func() {
			if err := adminSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("admin server", "err", err)
			}
		}()
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	serveCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for {
			select {
			case <-serveCtx.Done():
				return
			case <-hup:
				disc.Exclusive(func() {
					next, err := load()
					if err == nil {
						err = p.Reload(next)
					}
					if err != nil {
						log.Error("reload failed: keeping the running configuration", "err", err)
					}
				})
			}
		}
	}()

	stopDiscovery := disc.Start(serveCtx, p, log)
	err = p.Serve(serveCtx)
	stopDiscovery()
	if adminSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		adminSrv.Shutdown(sctx)
		cancel()
	}
	return err
}
