package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/lb/k8s"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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

// clientOptions configure client mode.
type clientOptions struct {
	kubeconfig   string
	cacheFile    string
	bind         string // an IP address
	apiPort      int
	konnPort     int
	konnUpstream int
	readyz       bool
	checks       checkTimings
	drainPeriod  time.Duration // 0: lb's default (2m10s)
	// shutdownTimeout bounds the wait for open connections on exit; 0:
	// lb's default (30 s).
	shutdownTimeout time.Duration
}

// defaultClientShutdown is how long client mode waits for open connections
// when it stops. The kubelet's and kube-proxy's watches never end by
// themselves, so a long wait only delays a restart; they reconnect.
const defaultClientShutdown = 5 * time.Second

// defaultClientDrain is how long client mode keeps connections to an
// upstream that failed its checks or left the EndpointSlice. Short, unlike
// the controller-side proxy's 2m10s: a kubelet multiplexes everything over
// one HTTP/2 connection, which would otherwise hang on a blackholed API
// server until TCP_USER_TIMEOUT (30 s); closed, client-go reconnects at once
// through a healthy upstream. Closes are spread over 10 s (DrainStagger),
// the first at once.
const defaultClientDrain = time.Second

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
	interval := fs.Duration("check-interval", defaultClientCheckInterval, "health check `interval`")
	timeout := fs.Duration("check-timeout", defaultClientCheckTimeout, "health check `timeout`")
	rise := fs.Int("rise", defaultClientRise, "successful checks that make an upstream healthy")
	fall := fs.Int("fall", defaultClientFall, "failed checks that make an upstream unhealthy")
	drain := fs.Duration("drain-period", defaultClientDrain, "keep connections of a removed or unhealthy upstream this `long` before closing them")
	shutdown := fs.Duration("shutdown-timeout", defaultClientShutdown, "on SIGTERM, wait this `long` for open connections before closing them")
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

	o := clientOptions{
		kubeconfig:      *kubeconfig,
		cacheFile:       *cacheFile,
		bind:            *bind,
		apiPort:         *apiPort,
		konnPort:        *konnPort,
		konnUpstream:    *konnUpstream,
		readyz:          *readyz,
		checks:          checkTimings{interval: *interval, timeout: *timeout, rise: *rise, fall: *fall},
		drainPeriod:     *drain,
		shutdownTimeout: *shutdown,
	}
	if *configFile != "" {
		cfg, err := config.LoadFile(*configFile)
		if err != nil {
			return fmt.Errorf("client: %w", err)
		}
		nllb := &cfg.NodeLocalLoadBalancing
		if !nllb.Enabled {
			log.Warn("spec.network.nodeLocalLoadBalancing.enabled is false in the configuration; running anyway", "file", *configFile)
		}
		a, k := nllb.BindPorts()
		if !set["api-port"] {
			o.apiPort = a
		}
		if !set["konnectivity-port"] {
			o.konnPort = k
		}
		if !set["konnectivity-upstream-port"] {
			o.konnUpstream = cfg.KonnectivityAgentPort()
		}
	}
	if o.bind == "" {
		o.bind = loopbackBind(ctx, net.DefaultResolver)
	}
	c, err := newNLLBClient(o, log, nil)
	if err != nil {
		return err
	}
	if *check {
		ups := ""
		for i, b := range c.api.Status().Backends {
			if i > 0 {
				ups += ", "
			}
			ups += b.Address
		}
		_, err := fmt.Fprintf(stdout, "configuration ok: apiserver %s, konnectivity %s (to port %d)\n  upstreams at start: %s\n",
			net.JoinHostPort(o.bind, strconv.Itoa(o.apiPort)), net.JoinHostPort(o.bind, strconv.Itoa(o.konnPort)),
			o.konnUpstream, ups)
		return err
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(clientGCPercent)
	}
	if err := c.listen(ctx); err != nil {
		return err
	}
	if *admin != "" {
		ln, err := net.Listen("tcp", *admin)
		if err != nil {
			c.shutdown()
			return fmt.Errorf("client: --admin: %w", err)
		}
		srv := &http.Server{Handler: c.adminHandler(), ReadHeaderTimeout: 5 * time.Second}
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
	return c.run(ctx)
}

// loopbackBind returns the first loopback address localhost resolves to,
// else 127.0.0.1, as k0s's NLLB chooses its bind address.
func loopbackBind(ctx context.Context, r *net.Resolver) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", "localhost")
	if err == nil {
		for _, a := range addrs {
			if a = a.Unmap(); a.IsLoopback() {
				return a.WithZone("").String()
			}
		}
	}
	return "127.0.0.1"
}

// nllbClient is client mode: two proxies fed by one discovery.
type nllbClient struct {
	o     clientOptions
	log   *slog.Logger
	reg   *prometheus.Registry
	kc    *k8s.Kubeconfig
	check *k8s.APICheck
	// join is the kubeconfig's server as host:port, the bootstrap upstream.
	join string
	// cached is the cache file's list at start.
	cached    []netip.AddrPort
	api, konn *lb.Proxy

	mu         sync.Mutex
	discovered []netip.AddrPort // the last list from discovery (or the cache)
	changes    int              // OnChange calls so far
}

// newNLLBClient reads the kubeconfig and the cache and builds both proxies.
// It binds nothing. A nil reg gets a fresh registry with the Go and process
// collectors.
func newNLLBClient(o clientOptions, log *slog.Logger, reg *prometheus.Registry) (*nllbClient, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"--api-port", o.apiPort}, {"--konnectivity-port", o.konnPort}, {"--konnectivity-upstream-port", o.konnUpstream}} {
		if p.v < 0 || p.v > 65535 {
			return nil, fmt.Errorf("client: %s %d: not a port", p.name, p.v)
		}
	}
	if o.konnUpstream == 0 {
		return nil, errors.New("client: --konnectivity-upstream-port must not be 0")
	}
	if _, err := netip.ParseAddr(o.bind); err != nil {
		return nil, fmt.Errorf("client: --bind: %w", err)
	}
	kc, err := k8s.LoadKubeconfig(o.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	chk, err := k8s.NewAPICheck(kc, o.readyz)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	server, err := kc.Server()
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	join, err := k8s.ServerHostPort(server)
	if err != nil {
		return nil, fmt.Errorf("client: kubeconfig %s: %w", o.kubeconfig, err)
	}
	c := &nllbClient{o: o, log: log, reg: reg, kc: kc, check: chk, join: join}
	if o.cacheFile != "" {
		c.cached, err = k8s.LoadCache(o.cacheFile)
		switch {
		case err == nil:
			log.Info("bootstrapping from the cache and the kubeconfig", "cache", k8s.Addrs(c.cached, 0), "kubeconfig_server", join)
		case errors.Is(err, fs.ErrNotExist):
			log.Info("no API server cache yet: bootstrapping from the kubeconfig", "file", o.cacheFile, "kubeconfig_server", join)
		default:
			log.Warn("ignoring the API server cache", "err", err)
		}
		if err := os.MkdirAll(filepath.Dir(o.cacheFile), 0o700); err != nil {
			log.Warn("cannot create the cache directory", "err", err)
		}
	}

	hc := func(kind string) lb.HealthCheck {
		return lb.HealthCheck{
			Type:     kind,
			Interval: lb.Duration(o.checks.interval),
			Timeout:  lb.Duration(o.checks.timeout),
			Rise:     o.checks.rise,
			Fall:     o.checks.fall,
		}
	}
	apiKind := lb.CheckTLS
	if o.readyz {
		apiKind = lb.CheckHTTPS
	}
	apiCfg := lb.Config{
		Listen:   []string{net.JoinHostPort(o.bind, strconv.Itoa(o.apiPort))},
		Backends: c.apiBackends(c.cached, true),
		// Watches are long-lived: spread them by count, not by turn.
		Balance:         lb.LeastConnections,
		DrainPeriod:     lb.Duration(o.drainPeriod),
		ShutdownTimeout: lb.Duration(o.shutdownTimeout),
		HealthCheck:     hc(apiKind),
	}
	konnCfg := lb.Config{
		Listen:   []string{net.JoinHostPort(o.bind, strconv.Itoa(o.konnPort))},
		Backends: c.konnBackends(c.cached, true),
		// Agents connect until they reach every server: take turns, as
		// k0s's Envoy does for konnectivity.
		Balance:         lb.RoundRobin,
		DrainPeriod:     lb.Duration(o.drainPeriod),
		ShutdownTimeout: lb.Duration(o.shutdownTimeout),
		HealthCheck:     hc(lb.CheckTCP),
	}
	c.api, err = lb.New(withDefaults(apiCfg), lb.Options{
		Logger:     log.With("listener", "apiserver"),
		Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"listener": "apiserver"}, reg),
		Check:      chk.Check,
	})
	if err != nil {
		return nil, fmt.Errorf("client: apiserver listener: %w", err)
	}
	c.konn, err = lb.New(withDefaults(konnCfg), lb.Options{
		Logger:     log.With("listener", "konnectivity"),
		Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"listener": "konnectivity"}, reg),
	})
	if err != nil {
		return nil, fmt.Errorf("client: konnectivity listener: %w", err)
	}
	return c, nil
}

// withDefaults returns cfg with lb's defaults filled in.
func withDefaults(cfg lb.Config) lb.Config {
	cfg.SetDefaults()
	return cfg
}

// apiBackends returns the API server upstreams for list, plus the
// kubeconfig's server when bootstrapping.
func (c *nllbClient) apiBackends(list []netip.AddrPort, bootstrap bool) []string {
	out := k8s.Addrs(list, 0)
	if bootstrap {
		out = append(out, c.join)
	}
	return dedupe(out)
}

// konnBackends returns the konnectivity upstreams: the same hosts on the
// konnectivity port.
func (c *nllbClient) konnBackends(list []netip.AddrPort, bootstrap bool) []string {
	out := k8s.Addrs(list, uint16(c.o.konnUpstream))
	if bootstrap {
		host, _, _ := net.SplitHostPort(c.join)
		out = append(out, net.JoinHostPort(host, strconv.Itoa(c.o.konnUpstream)))
	}
	return dedupe(out)
}

// dedupe drops repeated entries, keeping the first.
func dedupe(s []string) []string {
	seen := make(map[string]bool, len(s))
	out := s[:0]
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// onChange applies a list from discovery to both proxies. Discovery applies
// the cache file's list first; while that is all it has seen, the
// kubeconfig's server stays in, as at bootstrap (k0s races both). Every
// list the API sends replaces the set. Discovery never sends an empty list.
func (c *nllbClient) onChange(list []netip.AddrPort) {
	c.mu.Lock()
	bootstrap := c.changes == 0 && c.cached != nil && slices.Equal(list, c.cached)
	c.changes++
	c.discovered = slices.Clone(list)
	c.mu.Unlock()
	api, konn := c.apiBackends(list, bootstrap), c.konnBackends(list, bootstrap)
	c.log.Info("upstreams changed", "apiserver", api, "konnectivity", konn)
	c.api.SetBackends(api)
	c.konn.SetBackends(konn)
}

// listen binds both listeners.
func (c *nllbClient) listen(ctx context.Context) error {
	if err := c.api.Listen(ctx); err != nil {
		return bindError("client", "apiserver listener (--api-port)", err)
	}
	if err := c.konn.Listen(ctx); err != nil {
		_ = c.api.Shutdown(context.Background())
		return bindError("client", "konnectivity listener (--konnectivity-port)", err)
	}
	return nil
}

// shutdown closes both listeners after listen when run will not be called.
func (c *nllbClient) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.api.Shutdown(ctx)
	_ = c.konn.Shutdown(ctx)
}

// selfURL is the API server listener's URL, for discovery through it.
func (c *nllbClient) selfURL() (string, error) {
	for _, a := range c.api.Addrs() {
		ta, ok := a.(*net.TCPAddr)
		if !ok {
			continue
		}
		ip := ta.IP
		if ip.IsUnspecified() {
			if ip.To4() != nil {
				ip = net.IPv4(127, 0, 0, 1)
			} else {
				ip = net.IPv6loopback
			}
		}
		return "https://" + net.JoinHostPort(ip.String(), strconv.Itoa(ta.Port)), nil
	}
	return "", errors.New("client: the API server listener is not bound")
}

// run serves both listeners and discovers upstreams through the API server
// listener until ctx ends, then shuts down gracefully.
func (c *nllbClient) run(ctx context.Context) error {
	self, err := c.selfURL()
	if err != nil {
		c.shutdown()
		return err
	}
	rc, err := c.kc.RESTConfig()
	if err != nil {
		c.shutdown()
		return fmt.Errorf("client: %w", err)
	}
	rc.Host = self
	// Through the local listener the certificate is verified against
	// "kubernetes", the name every API server certificate carries (k0s's
	// also carry 127.0.0.1 and localhost, but not necessarily ::1), unless
	// the kubeconfig names one itself.
	if rc.TLSClientConfig.ServerName == "" {
		rc.TLSClientConfig.ServerName = k8s.APIServerName
	}
	// Discovery's own connections go through the listener: close them
	// when it stops, so that the graceful shutdown does not wait for them.
	var conns connTracker
	rc.Dial = conns.dial
	api, err := k8s.NewAPI(rc)
	if err != nil {
		c.shutdown()
		return fmt.Errorf("client: %w", err)
	}
	disc, err := k8s.New(k8s.Config{
		Client:    api,
		CacheFile: c.o.cacheFile,
		Logger:    c.log.With("component", "discovery"),
		OnChange:  c.onChange,
	})
	if err != nil {
		c.shutdown()
		return fmt.Errorf("client: %w", err)
	}
	c.log.Info("discovering API servers through the local listener", "url", self)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	runDisc := func(ctx context.Context) error {
		err := disc.Run(ctx)
		conns.closeAll()
		return err
	}
	for i, f := range []func(context.Context) error{c.api.Serve, c.konn.Serve, runDisc} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(ctx)
			cancel() // one stopping stops all
		}()
	}
	wg.Wait()
	for i, err := range errs {
		// Connections still open at the shutdown deadline were closed
		// (and logged): the normal end of long-lived watches.
		if errors.Is(err, context.DeadlineExceeded) {
			errs[i] = nil
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return nil
}

// connTracker dials and remembers connections so that they can all be
// closed at once.
type connTracker struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// dial is a rest.Config Dial func.
func (t *connTracker) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	if t.conns == nil {
		t.conns = map[net.Conn]struct{}{}
	}
	t.conns[c] = struct{}{}
	t.mu.Unlock()
	return trackedConn{Conn: c, t: t}, nil
}

// closeAll closes every connection dialed and not yet closed.
func (t *connTracker) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.conns {
		c.Close()
	}
	clear(t.conns)
}

// trackedConn forgets itself on Close.
type trackedConn struct {
	net.Conn
	t *connTracker
}

func (c trackedConn) Close() error {
	c.t.mu.Lock()
	delete(c.t.conns, c.Conn)
	c.t.mu.Unlock()
	return c.Conn.Close()
}

// clientStatus is client mode's /status document.
type clientStatus struct {
	APIServer        lb.Status `json:"apiserver"`
	Konnectivity     lb.Status `json:"konnectivity"`
	Discovered       []string  `json:"discovered"`
	KubeconfigServer string    `json:"kubeconfig_server"`
	CacheFile        string    `json:"cache_file,omitempty"`
}

// status returns a snapshot of both proxies and the discovered list.
func (c *nllbClient) status() clientStatus {
	c.mu.Lock()
	disc := k8s.Addrs(c.discovered, 0)
	c.mu.Unlock()
	return clientStatus{
		APIServer:        c.api.Status(),
		Konnectivity:     c.konn.Status(),
		Discovered:       disc,
		KubeconfigServer: c.join,
		CacheFile:        c.o.cacheFile,
	}
}

// adminHandler serves /metrics, /healthz, /readyz (the API server
// listener's), /status and each listener's own admin endpoints under
// /apiserver/ and /konnectivity/.
func (c *nllbClient) adminHandler() http.Handler {
	apiAdmin := c.api.AdminHandler(c.reg)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(c.reg, promhttp.HandlerOpts{Registry: c.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.Handle("/readyz", apiAdmin)
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(c.status())
	})
	mux.Handle("/apiserver/", http.StripPrefix("/apiserver", apiAdmin))
	mux.Handle("/konnectivity/", http.StripPrefix("/konnectivity", c.konn.AdminHandler(c.reg)))
	return mux
}

// checkTimings are the active health-check settings of client mode and of
// `nlb proxy --discover`.
type checkTimings struct {
	interval, timeout time.Duration
	rise, fall        int
}

// Defaults: a blackholed upstream fails a check after timeout; the fall-th
// failure comes at most interval + (fall-1)*interval + timeout after its
// last success: 0.5 + 0.5 + 0.4 = 1.4 s, inside the 2 s goal. A refused
// upstream fails at once (and the dial fails over at once).
const (
	defaultClientCheckInterval = 500 * time.Millisecond
	defaultClientCheckTimeout  = 400 * time.Millisecond
	defaultClientRise          = 2
	defaultClientFall          = 2
)
