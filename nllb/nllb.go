// Package nllb is `nlb client`: node-local load balancing on a worker, in
// place of k0s's Envoy (NLLB). Two lb.Proxy listeners on a loopback
// address, the API server (k0s's 7443) and konnectivity (7132), balance
// over every API server of the cluster (konnectivity to the same hosts on
// its own port, k0s's agentPort 8132). The upstreams start as the cache
// file's list plus the kubeconfig's server (the join address), then follow
// the EndpointSlices of default/kubernetes, watched through the local
// listener itself with the kubeconfig's identity (lb/k8s). API server
// upstreams are checked with k8s.APICheck, konnectivity ones with a TCP
// connect.
//
// New builds the client without I/O; Listen binds both listeners; Run
// serves them and runs discovery until its context ends, then shuts down.
// Status is the one declaration of the client's /status document.
package nllb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/lb/k8s"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Checks are the active health-check settings of both listeners.
type Checks struct {
	Interval, Timeout time.Duration
	Rise, Fall        int
}

// Defaults: a blackholed upstream fails a check after the timeout; the
// fall-th failure comes at most interval + (fall-1)*interval + timeout
// after its last success: 0.5 + 0.5 + 0.4 = 1.4 s, inside the 2 s goal. A
// refused upstream fails at once (and the dial fails over at once).
const (
	DefaultCheckInterval = 500 * time.Millisecond
	DefaultCheckTimeout  = 400 * time.Millisecond
	DefaultRise          = 2
	DefaultFall          = 2
)

// DefaultDrainPeriod is how long the client keeps connections to an
// upstream that failed its checks or left the EndpointSlice. Short, unlike
// the controller-side proxy's 2m10s: a kubelet multiplexes everything over
// one HTTP/2 connection, which would otherwise hang on a blackholed API
// server until TCP_USER_TIMEOUT (30 s); closed, client-go reconnects at once
// through a healthy upstream. Closes are spread over 10 s (DrainStagger),
// the first at once.
const DefaultDrainPeriod = time.Second

// DefaultShutdownTimeout is how long the client waits for open connections
// when it stops. The kubelet's and kube-proxy's watches never end by
// themselves, so a long wait only delays a restart; they reconnect.
const DefaultShutdownTimeout = 5 * time.Second

// Options configure a Client. The error messages name the `nlb client`
// flags that set them.
type Options struct {
	// Kubeconfig is the worker's kubeconfig, loaded (k8s.LoadKubeconfig):
	// its server is the bootstrap upstream, its CA and identity those of
	// the health checks and of discovery. Required.
	Kubeconfig *k8s.Kubeconfig
	// CacheFile is the file discovery keeps the API server list in, for
	// the next start (empty: none).
	CacheFile string
	// Cached is the cache file's list at start (ReadCache): with the
	// kubeconfig's server, the upstreams until discovery speaks.
	Cached []netip.AddrPort
	// Bind is the listen IP address.
	Bind string
	// APIPort and KonnectivityPort are the listen ports (0: any);
	// KonnectivityUpstreamPort is the konnectivity server's port on the
	// API server hosts.
	APIPort, KonnectivityPort, KonnectivityUpstreamPort int
	// Readyz adds GET /readyz (200) to the API server health checks.
	Readyz bool
	// Checks are the health-check timings; zero fields get lb's defaults.
	Checks Checks
	// DrainPeriod keeps connections of a removed or unhealthy upstream
	// this long before closing them; ShutdownTimeout bounds the wait for
	// open connections on exit. 0: lb's defaults (2m10s, 30 s).
	DrainPeriod, ShutdownTimeout time.Duration
	// Logger receives the client's logs; nil: discarded.
	Logger *slog.Logger
	// Registry receives both listeners' metrics (label listener=apiserver
	// or konnectivity) and serves /metrics; nil: a new empty one.
	Registry *prometheus.Registry
	// Dial opens discovery's connections to the local listener; nil: a
	// net.Dialer (10 s timeout, 30 s keep-alive).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Client is client mode: two proxies fed by one discovery.
type Client struct {
	o     Options
	log   *slog.Logger
	reg   *prometheus.Registry
	check *k8s.APICheck
	// join is the kubeconfig's server as host:port, the bootstrap upstream.
	join      string
	api, konn *lb.Proxy

	mu         sync.Mutex
	discovered []netip.AddrPort // the last list from discovery (or the cache)
	changes    int              // onChange calls so far
}

// New checks o and builds both proxies. It binds, dials and starts
// nothing; the files it reads are those the kubeconfig names (CA, client
// certificate, token).
func New(o Options) (*Client, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"--api-port", o.APIPort}, {"--konnectivity-port", o.KonnectivityPort}, {"--konnectivity-upstream-port", o.KonnectivityUpstreamPort}} {
		if p.v < 0 || p.v > 65535 {
			return nil, fmt.Errorf("client: %s %d: not a port", p.name, p.v)
		}
	}
	if o.KonnectivityUpstreamPort == 0 {
		return nil, errors.New("client: --konnectivity-upstream-port must not be 0")
	}
	if _, err := netip.ParseAddr(o.Bind); err != nil {
		return nil, fmt.Errorf("client: --bind: %w", err)
	}
	kc := o.Kubeconfig
	if kc == nil {
		return nil, errors.New("client: no kubeconfig")
	}
	chk, err := k8s.NewAPICheck(kc, o.Readyz)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	join, err := joinAddress(kc)
	if err != nil {
		return nil, err
	}
	c := &Client{o: o, log: log, reg: reg, check: chk, join: join}

	hc := func(kind string) lb.HealthCheck {
		return lb.HealthCheck{
			Type:     kind,
			Interval: lb.Duration(o.Checks.Interval),
			Timeout:  lb.Duration(o.Checks.Timeout),
			Rise:     o.Checks.Rise,
			Fall:     o.Checks.Fall,
		}
	}
	apiKind := lb.CheckTLS
	if o.Readyz {
		apiKind = lb.CheckHTTPS
	}
	apiCfg := lb.Config{
		Listen:   []string{net.JoinHostPort(o.Bind, strconv.Itoa(o.APIPort))},
		Backends: c.apiBackends(o.Cached, true),
		// Watches are long-lived: spread them by count, not by turn.
		Balance:         lb.LeastConnections,
		DrainPeriod:     lb.Duration(o.DrainPeriod),
		ShutdownTimeout: lb.Duration(o.ShutdownTimeout),
		HealthCheck:     hc(apiKind),
	}
	konnCfg := lb.Config{
		Listen:   []string{net.JoinHostPort(o.Bind, strconv.Itoa(o.KonnectivityPort))},
		Backends: c.konnBackends(o.Cached, true),
		// Agents connect until they reach every server: take turns, as
		// k0s's Envoy does for konnectivity.
		Balance:         lb.RoundRobin,
		DrainPeriod:     lb.Duration(o.DrainPeriod),
		ShutdownTimeout: lb.Duration(o.ShutdownTimeout),
		HealthCheck:     hc(lb.CheckTCP),
	}
	apiCfg.SetDefaults()
	konnCfg.SetDefaults()
	c.api, err = lb.New(apiCfg, lb.Options{
		Logger:     log.With("listener", "apiserver"),
		Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"listener": "apiserver"}, reg),
		Check:      chk.Check,
	})
	if err != nil {
		return nil, fmt.Errorf("client: apiserver listener: %w", err)
	}
	c.konn, err = lb.New(konnCfg, lb.Options{
		Logger:     log.With("listener", "konnectivity"),
		Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"listener": "konnectivity"}, reg),
	})
	if err != nil {
		return nil, fmt.Errorf("client: konnectivity listener: %w", err)
	}
	return c, nil
}

// joinAddress returns the kubeconfig's server as host:port.
func joinAddress(kc *k8s.Kubeconfig) (string, error) {
	server, err := kc.Server()
	if err != nil {
		return "", fmt.Errorf("client: %w", err)
	}
	join, err := k8s.ServerHostPort(server)
	if err != nil {
		return "", fmt.Errorf("client: kubeconfig %s: %w", kc.Path, err)
	}
	return join, nil
}

// ReadCache returns the API server list in the cache file (empty: none)
// for Options.Cached, logging what the client bootstraps from, and creates
// the file's directory for discovery to write it. A missing or bad file
// gives nil (logged): the client then starts from the kubeconfig's server
// alone.
func ReadCache(kc *k8s.Kubeconfig, file string, log *slog.Logger) []netip.AddrPort {
	if file == "" {
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	join, err := joinAddress(kc)
	if err != nil {
		return nil // New reports it
	}
	cached, err := k8s.LoadCache(file)
	switch {
	case err == nil:
		log.Info("bootstrapping from the cache and the kubeconfig", "cache", k8s.Addrs(cached, 0), "kubeconfig_server", join)
	case errors.Is(err, fs.ErrNotExist):
		log.Info("no API server cache yet: bootstrapping from the kubeconfig", "file", file, "kubeconfig_server", join)
	default:
		log.Warn("ignoring the API server cache", "err", err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		log.Warn("cannot create the cache directory", "err", err)
	}
	return cached
}

// apiBackends returns the API server upstreams for list, plus the
// kubeconfig's server when bootstrapping.
func (c *Client) apiBackends(list []netip.AddrPort, bootstrap bool) []string {
	out := k8s.Addrs(list, 0)
	if bootstrap {
		out = append(out, c.join)
	}
	return dedupe(out)
}

// konnBackends returns the konnectivity upstreams: the same hosts on the
// konnectivity port.
func (c *Client) konnBackends(list []netip.AddrPort, bootstrap bool) []string {
	out := k8s.Addrs(list, uint16(c.o.KonnectivityUpstreamPort))
	if bootstrap {
		host, _, _ := net.SplitHostPort(c.join)
		out = append(out, net.JoinHostPort(host, strconv.Itoa(c.o.KonnectivityUpstreamPort)))
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
func (c *Client) onChange(list []netip.AddrPort) {
	c.mu.Lock()
	bootstrap := c.changes == 0 && c.o.Cached != nil && slices.Equal(list, c.o.Cached)
	c.changes++
	c.discovered = slices.Clone(list)
	c.mu.Unlock()
	api, konn := c.apiBackends(list, bootstrap), c.konnBackends(list, bootstrap)
	c.log.Info("upstreams changed", "apiserver", api, "konnectivity", konn)
	c.api.SetBackends(api)
	c.konn.SetBackends(konn)
}

// Listen binds both listeners. An address in use names the flag that gave
// it.
func (c *Client) Listen(ctx context.Context) error {
	if err := c.api.Listen(ctx); err != nil {
		return bindError("apiserver listener (--api-port)", err)
	}
	if err := c.konn.Listen(ctx); err != nil {
		_ = c.api.Shutdown(context.Background())
		return bindError("konnectivity listener (--konnectivity-port)", err)
	}
	return nil
}

// bindError prefixes err, and when it is a listen address that could not
// be bound (lb.ListenError) the listener's name.
func bindError(what string, err error) error {
	if le := (*lb.ListenError)(nil); errors.As(err, &le) {
		return fmt.Errorf("client: %s: %w", what, err)
	}
	return fmt.Errorf("client: %w", err)
}

// Close closes both listeners after Listen when Run will not be called.
func (c *Client) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.api.Shutdown(ctx)
	_ = c.konn.Shutdown(ctx)
}

// URL is the API server listener's URL once bound: discovery goes through
// it, and so do the worker's clients.
func (c *Client) URL() (string, error) {
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

// Run serves both listeners (bound by Listen) and discovers upstreams
// through the API server listener until ctx ends or one of them fails,
// then shuts down gracefully. Connections still open at the shutdown
// deadline are closed, the normal end of long-lived watches, not an error.
func (c *Client) Run(ctx context.Context) error {
	self, err := c.URL()
	if err != nil {
		c.Close()
		return err
	}
	rc, err := c.o.Kubeconfig.RESTConfig()
	if err != nil {
		c.Close()
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
	conns := ConnTracker{Dial: c.o.Dial}
	rc.Dial = conns.DialContext
	api, err := k8s.NewAPI(rc)
	if err != nil {
		c.Close()
		return fmt.Errorf("client: %w", err)
	}
	disc, err := k8s.New(k8s.Config{
		Client:    api,
		CacheFile: c.o.CacheFile,
		Logger:    c.log.With("component", "discovery"),
		OnChange:  c.onChange,
	})
	if err != nil {
		c.Close()
		return fmt.Errorf("client: %w", err)
	}
	c.log.Info("discovering API servers through the local listener", "url", self)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	runDisc := func(ctx context.Context) error {
		err := disc.Run(ctx)
		conns.CloseAll()
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

// ConnTracker dials and remembers connections so that they can all be
// closed at once. The zero value is ready to use.
type ConnTracker struct {
	// Dial opens the connections; nil: a net.Dialer with a 10 s timeout
	// and 30 s keep-alive.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// DialContext dials addr and tracks the connection until it is closed. It
// has the signature of k8s.RESTConfig.Dial.
func (t *ConnTracker) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	dial := t.Dial
	if dial == nil {
		d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	c, err := dial(ctx, network, addr)
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

// CloseAll closes every connection dialled and not yet closed.
func (t *ConnTracker) CloseAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c := range t.conns {
		c.Close()
	}
	clear(t.conns)
}

// open returns the number of tracked connections.
func (t *ConnTracker) open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// trackedConn forgets itself on Close.
type trackedConn struct {
	net.Conn
	t *ConnTracker
}

// Close closes the connection and stops tracking it.
func (c trackedConn) Close() error {
	c.t.mu.Lock()
	delete(c.t.conns, c.Conn)
	c.t.mu.Unlock()
	return c.Conn.Close()
}

// Status is the client's /status document: both listeners, the list
// discovery last gave (or the cache's) and the bootstrap upstream. It is
// the one declaration of that JSON: `nlb status` and the labs decode it.
type Status struct {
	APIServer        lb.Status `json:"apiserver"`
	Konnectivity     lb.Status `json:"konnectivity"`
	Discovered       []string  `json:"discovered"`
	KubeconfigServer string    `json:"kubeconfig_server"`
	CacheFile        string    `json:"cache_file,omitempty"`
}

// Backend returns the API server upstream with address addr (host:port)
// that is not a removed, draining leftover.
func (s *Status) Backend(addr string) (lb.BackendStatus, bool) {
	for _, b := range s.APIServer.Backends {
		if b.Address == addr && !b.Removed {
			return b, true
		}
	}
	return lb.BackendStatus{}, false
}

// Upstreams returns the configured (not removed) API server upstreams,
// sorted.
func (s *Status) Upstreams() []string {
	var out []string
	for _, b := range s.APIServer.Backends {
		if !b.Removed {
			out = append(out, b.Address)
		}
	}
	slices.Sort(out)
	return out
}

// Status returns a snapshot of both proxies and the discovered list.
func (c *Client) Status() Status {
	c.mu.Lock()
	disc := k8s.Addrs(c.discovered, 0)
	c.mu.Unlock()
	return Status{
		APIServer:        c.api.Status(),
		Konnectivity:     c.konn.Status(),
		Discovered:       disc,
		KubeconfigServer: c.join,
		CacheFile:        c.o.CacheFile,
	}
}

// AdminHandler serves /metrics (the registry), /healthz, /readyz (the API
// server listener's: it has a healthy upstream), /status (Status) and each
// listener's own admin endpoints under /apiserver/ and /konnectivity/.
func (c *Client) AdminHandler() http.Handler {
	apiAdmin := c.api.AdminHandler(c.reg)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(c.reg, promhttp.HandlerOpts{Registry: c.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.Handle("/readyz", apiAdmin)
	mux.HandleFunc("/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(c.Status())
	})
	mux.Handle("/apiserver/", http.StripPrefix("/apiserver", apiAdmin))
	mux.Handle("/konnectivity/", http.StripPrefix("/konnectivity", c.konn.AdminHandler(c.reg)))
	return mux
}

// Resolver looks up host names; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// LoopbackBind returns the first loopback address localhost resolves to,
// else 127.0.0.1, as k0s's NLLB chooses its bind address. The lookup is
// bounded to 2 s.
func LoopbackBind(ctx context.Context, r Resolver) string {
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
