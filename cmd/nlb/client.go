package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/lb/k8s"
	"github.com/nlb-dev/nlb/nllb"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const clientUsage = `Usage: nlb client --kubeconfig FILE [flags]

Node-local load balancing on a worker, in place of k0s's Envoy (NLLB): two
listeners on a loopback address, the API server on --api-port (7443) and
konnectivity on --konnectivity-port (7132), each balancing over every API
server of the cluster (konnectivity to the same hosts on
--konnectivity-upstream-port, k0s's agentPort 8132).

Upstreams: at start, the cached list (--cache-file) plus the server of
--kubeconfig (the join address); then the EndpointSlices of the service
default/kubernetes, watched through the local listener itself with the
kubeconfig's identity (it needs get/list/watch on endpointslices in the
namespace default: lb/k8s/rbac.yaml). An empty list is never applied; every
new list is cached. Changes apply live: connections to upstreams that stay are
untouched, removed ones are drained.

Health checks prove that an upstream is a kube-apiserver of this cluster: a
TLS handshake whose certificate chains to the kubeconfig's CA and names the
upstream address (or "kubernetes", the name every API server certificate
carries), with the kubeconfig's client certificate; --readyz adds GET /readyz
(200) with that identity. Every 500 ms, 400 ms timeout, 2 failures: a dead or
blackholed API server stops getting connections within 1.5 s, and a refused
or timed-out dial (250 ms) is retried on the next upstream at once. Only when
no upstream is healthy does the balancer fail open to all of them (k0s's
rule), never to dead hosts beside live ones. Konnectivity upstreams get a
TCP connect check with the same timings. Connections to an upstream that
fails its checks or leaves the list are closed after --drain-period (1 s),
so that clients pinned to it (a kubelet's one HTTP/2 connection) reconnect
through a healthy one instead of hanging until TCP gives up.

--config takes a k0s ClusterConfig (or its spec or spec.network): the bind
ports come from spec.network.nodeLocalLoadBalancing (envoyProxy or traefik
.apiServerBindPort and .konnectivityServerBindPort; both types are accepted
as aliases), the konnectivity upstream port from spec.konnectivity.agentPort.
--api-port, --konnectivity-port and --konnectivity-upstream-port override
them.

Point clients at it with 'nlb kubeconfig --in kubelet.conf --out FILE
--server https://127.0.0.1:7443'.

Admin server (--admin): /metrics (both listeners, label listener=apiserver or
konnectivity), /healthz, /readyz (the API server listener has a healthy
upstream), /status (JSON for both listeners and the discovered list),
/apiserver/... and /konnectivity/... (each listener's own admin endpoints).

Flags:
`

// clientGCPercent is the garbage collector's GOGC in client mode, unless
// the environment sets GOGC. An idle client keeps about 1 MiB of live heap
// while its health checks allocate about 0.2 MiB/s of garbage; at Go's
// default of 100 the heap grows to the 4 MiB minimum goal before each
// collection, at 50 to 2 MiB: 1 MiB less resident memory on every worker,
// for a collection every few seconds of a 1 MiB heap.
const clientGCPercent = 50

// runClient implements `nlb client`.
func runClient(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("client", clientUsage, stdout)
	configFile := fs.String("config", "", "k0s ClusterConfig `file` (spec.network.nodeLocalLoadBalancing gives the bind ports)")
	kubeconfig := fs.String("kubeconfig", "", "the worker's kubeconfig `file`, e.g. the kubelet's (required)")
	cacheFile := fs.String("cache-file", "/var/lib/nlb/apiservers", "`file` caching the discovered API servers (empty: none)")
	bind := fs.String("bind", "", "listen `IP` (default: the first loopback address localhost resolves to, else 127.0.0.1)")
	apiPort := fs.Int("api-port", config.DefaultNLLBAPIServerBindPort, "API server listen `port` (overrides --config)")
	konnPort := fs.Int("konnectivity-port", config.DefaultNLLBKonnectivityServerBindPort, "konnectivity listen `port` (overrides --config)")
	konnUpstream := fs.Int("konnectivity-upstream-port", config.DefaultKonnectivityAgentPort, "konnectivity server `port` on the API server hosts (overrides --config's spec.konnectivity.agentPort)")
	readyz := fs.Bool("readyz", false, "also GET /readyz (200) with the kubeconfig's identity in health checks")
	admin := fs.String("admin", "", "admin server `address`, e.g. 127.0.0.1:9902 (empty: none)")
	interval := fs.Duration("check-interval", nllb.DefaultCheckInterval, "health check `interval`")
	timeout := fs.Duration("check-timeout", nllb.DefaultCheckTimeout, "health check `timeout`")
	rise := fs.Int("rise", nllb.DefaultRise, "successful checks that make an upstream healthy")
	fall := fs.Int("fall", nllb.DefaultFall, "failed checks that make an upstream unhealthy")
	drain := fs.Duration("drain-period", nllb.DefaultDrainPeriod, "keep connections of a removed or unhealthy upstream this `long` before closing them")
	shutdown := fs.Duration("shutdown-timeout", nllb.DefaultShutdownTimeout, "on SIGTERM, wait this `long` for open connections before closing them")
	check := fs.Bool("check", false, "check the flags, configuration and kubeconfig and exit")
	var lf logFlags
	lf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *kubeconfig == "" {
		return usageErrorf(fs, "--kubeconfig is required")
	}
	log, err := lf.logger(stderr)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	o := nllb.Options{
		CacheFile:                *cacheFile,
		Bind:                     *bind,
		APIPort:                  *apiPort,
		KonnectivityPort:         *konnPort,
		KonnectivityUpstreamPort: *konnUpstream,
		Readyz:                   *readyz,
		Checks:                   nllb.Checks{Interval: *interval, Timeout: *timeout, Rise: *rise, Fall: *fall},
		DrainPeriod:              *drain,
		ShutdownTimeout:          *shutdown,
		Logger:                   log,
	}
	if *configFile != "" {
		cfg, err := config.LoadFile(*configFile)
		if err != nil {
			return fmt.Errorf("client: %w", err)
		}
		nllbCfg := &cfg.NodeLocalLoadBalancing
		if !nllbCfg.Enabled {
			log.Warn("spec.network.nodeLocalLoadBalancing.enabled is false in the configuration; running anyway", "file", *configFile)
		}
		a, k := nllbCfg.BindPorts()
		if !set["api-port"] {
			o.APIPort = a
		}
		if !set["konnectivity-port"] {
			o.KonnectivityPort = k
		}
		if !set["konnectivity-upstream-port"] {
			o.KonnectivityUpstreamPort = cfg.KonnectivityAgentPort()
		}
	}
	if o.Bind == "" {
		o.Bind = nllb.LoopbackBind(ctx, net.DefaultResolver)
	}
	if o.Kubeconfig, err = k8s.LoadKubeconfig(*kubeconfig); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	o.Cached = nllb.ReadCache(o.Kubeconfig, o.CacheFile, log)
	o.Registry = prometheus.NewRegistry()
	o.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	c, err := nllb.New(o)
	if err != nil {
		return err
	}
	if *check {
		ups := ""
		for i, b := range c.Status().APIServer.Backends {
			if i > 0 {
				ups += ", "
			}
			ups += b.Address
		}
		_, err := fmt.Fprintf(stdout, "configuration ok: apiserver %s, konnectivity %s (to port %d)\n  upstreams at start: %s\n",
			net.JoinHostPort(o.Bind, strconv.Itoa(o.APIPort)), net.JoinHostPort(o.Bind, strconv.Itoa(o.KonnectivityPort)),
			o.KonnectivityUpstreamPort, ups)
		return err
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(clientGCPercent)
	}
	if err := c.Listen(ctx); err != nil {
		return err
	}
	if *admin != "" {
		ln, err := net.Listen("tcp", *admin)
		if err != nil {
			c.Close()
			return fmt.Errorf("client: --admin: %w", err)
		}
		srv := &http.Server{Handler: c.AdminHandler(), ReadHeaderTimeout: 5 * time.Second}
		log.Info("admin listening", "addr", ln.Addr().String())
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("admin server stopped", "err", err)
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = srv.Shutdown(sctx)
			cancel()
		}()
	}
	notifyReady(ctx, log)
	return c.Run(ctx)
}
