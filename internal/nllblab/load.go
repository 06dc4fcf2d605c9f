package nllblab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/nlb-dev/nlb/internal/k8slab"
)

// LoadOptions shape the client programs of a Load.
type LoadOptions struct {
	// KeepAlive is the number of loops that LIST over one kept-alive
	// connection each (client-go's default transport, HTTP/2); 0 means 3.
	KeepAlive int
	// NewConn is the number of loops that open a new connection (HTTP/1.1
	// without keep-alive) for every LIST; 0 means 2.
	NewConn int
	// Interval is the pause between two requests of a loop; 0 means 50 ms.
	Interval time.Duration
	// RequestTimeout bounds one client-go call; 0 means 15 s.
	RequestTimeout time.Duration
}

func (o *LoadOptions) setDefaults() {
	if o.KeepAlive == 0 {
		o.KeepAlive = 3
	}
	if o.NewConn == 0 {
		o.NewConn = 2
	}
	if o.Interval == 0 {
		o.Interval = 50 * time.Millisecond
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 15 * time.Second
	}
}

// Loop kinds.
const (
	KindKeepAlive = "keepalive"
	KindNewConn   = "newconn"
	KindWatch     = "watch"
)

// LoopCounts are one client program's counts. Requests, FailedRequests
// and FailedConnects count HTTP round trips (client-go retries a GET
// after a reset or EOF by itself; each attempt counts): a round trip
// fails as a connect when it fails before it has a connection (TCP and TLS
// through `nlb client` included), as a request when it fails after, while
// the response is read, or with a 5xx status.
type LoopCounts struct {
	Kind           string `json:"kind"`
	Requests       int64  `json:"requests"`
	FailedRequests int64  `json:"failed_requests"`
	FailedConnects int64  `json:"failed_connects"`
	// InFlightConnects are the round trips among FailedRequests that
	// failed before they had a connection, but whose connection was on
	// its way before the upstream was gone (see Load.SetFault): a TLS
	// handshake the dying upstream accepted and then reset.
	InFlightConnects int64 `json:"in_flight_connects"`
	// Calls are client-go calls (LIST); CallErrors those that returned an
	// error after client-go's own retries.
	Calls      int64 `json:"calls"`
	CallErrors int64 `json:"call_errors"`
}

// Counts sum the loops of a Load.
type Counts struct {
	Requests, FailedRequests, FailedConnects int64
	InFlightConnects                         int64
	Calls, CallErrors                        int64
	// WatchErrors counts the informer's watch errors (each followed by a
	// new LIST/WATCH through `nlb client`).
	WatchErrors int64
	Loops       []LoopCounts
	// Errors are the first few errors seen, with their loop and time.
	Errors []string
}

// loopStats are the live counters of one loop.
type loopStats struct {
	id                              int
	kind                            string
	requests, failedReq, failedConn atomic.Int64
	inFlightConn                    atomic.Int64
	calls, callErrs                 atomic.Int64
	lastOK                          atomic.Int64 // UnixNano start of the last successful call
	// fault is the UnixNano time from which the upstream is gone (see
	// Load.SetFault); connections started before it that fail count as
	// in flight.
	fault *atomic.Int64
	errs  *errorLog
}

func (s *loopStats) counts() LoopCounts {
	return LoopCounts{
		Kind: s.kind, Requests: s.requests.Load(), FailedRequests: s.failedReq.Load(),
		FailedConnects: s.failedConn.Load(), InFlightConnects: s.inFlightConn.Load(),
		Calls: s.calls.Load(), CallErrors: s.callErrs.Load(),
	}
}

// errorLog keeps the first errors.
type errorLog struct {
	mu   sync.Mutex
	errs []string
}

func (l *errorLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) < 20 {
		l.errs = append(l.errs, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
	}
}

func (l *errorLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errs...)
}

// countingRT counts round trips and their failures.
type countingRT struct {
	rt http.RoundTripper
	s  *loopStats
}

func (c countingRT) RoundTrip(req *http.Request) (*http.Response, error) {
	var gotConn atomic.Bool
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) }}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	c.s.requests.Add(1)
	start := time.Now().UnixNano()
	resp, err := c.rt.RoundTrip(req)
	if err != nil && errors.Is(req.Context().Err(), context.Canceled) {
		return resp, err // the program stopped: not the upstream's fault
	}
	if err != nil {
		if gotConn.Load() {
			c.s.failedReq.Add(1)
			c.s.errs.add("%s-%d request %s: %v", c.s.kind, c.s.id, req.URL.Path, err)
		} else if start < c.s.fault.Load() {
			// The connection was on its way to the upstream while it
			// died: in flight, not a new connection sent to a dead one.
			c.s.failedReq.Add(1)
			c.s.inFlightConn.Add(1)
			c.s.errs.add("%s-%d connect in flight at the fault %s: %v", c.s.kind, c.s.id, req.URL.Path, err)
		} else {
			c.s.failedConn.Add(1)
			c.s.errs.add("%s-%d connect %s: %v", c.s.kind, c.s.id, req.URL.Path, err)
		}
		return resp, err
	}
	if resp.StatusCode >= 500 {
		c.s.failedReq.Add(1)
		c.s.errs.add("%s-%d request %s: %s", c.s.kind, c.s.id, req.URL.Path, resp.Status)
		return resp, nil
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, s: c.s, path: req.URL.Path, ctx: req.Context()}
	return resp, nil
}

// countingBody counts a response whose body fails to read as a failed
// request.
type countingBody struct {
	io.ReadCloser
	s      *loopStats
	path   string
	ctx    context.Context
	failed bool
	closed bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && !b.failed && !b.closed && !errors.Is(b.ctx.Err(), context.Canceled) {
		b.failed = true
		b.s.failedReq.Add(1)
		b.s.errs.add("%s-%d response %s: %v", b.s.kind, b.s.id, b.path, err)
	}
	return n, err
}

func (b *countingBody) Close() error {
	b.closed = true
	return b.ReadCloser.Close()
}

// Load is a set of client-go programs on the worker talking to the API
// servers through `nlb client`: LIST loops over kept-alive and over new
// connections, and an informer watching the ConfigMaps of
// k8slab.TestNamespace.
type Load struct {
	opts     LoadOptions
	loops    []*loopStats
	watch    *loopStats
	errs     errorLog
	informer cache.SharedIndexInformer
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	conns    connTracker
	fault    atomic.Int64
}

// SetFault tells the counters when the upstream was gone: a round trip
// started before t that fails before it has a connection counts as a
// failed request in flight, one started at or after t as a failed
// connect. Call it with the far future when a fault begins and with the
// moment it is complete (the API server's process reaped, the link down)
// once it is.
func (l *Load) SetFault(t time.Time) {
	l.fault.Store(t.UnixNano())
}

// connTracker remembers the connections a Load opened, so that Stop can
// close them: kept-alive connections left open would stay on `nlb
// client`'s upstreams and blur the next scenario's counts.
type connTracker struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// wrap returns dial, remembering every connection it opens.
func (t *connTracker) wrap(dial func(context.Context, string, string) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.closed {
			c.Close()
			return nil, errors.New("nllblab: load stopped")
		}
		if t.conns == nil {
			t.conns = map[net.Conn]struct{}{}
		}
		t.conns[c] = struct{}{}
		return c, nil
	}
}

// closeAll closes every connection and refuses new ones.
func (t *connTracker) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for c := range t.conns {
		c.Close()
	}
	clear(t.conns)
}

// workerConfig returns the worker identity's client configuration for
// the local listener, from the worker namespace.
func (l *Load) workerConfig(c *k8slab.Cluster) *rest.Config {
	cfg := c.RESTConfig(k8slab.Worker, c.Worker, LocalServer)
	cfg.TLSClientConfig.ServerName = ServerName
	cfg.Dial = l.conns.wrap(cfg.Dial)
	return cfg
}

// StartLoad starts the client programs. Stop ends them.
func StartLoad(c *k8slab.Cluster, opts LoadOptions) (*Load, error) {
	opts.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{opts: opts, cancel: cancel}
	var clients []*kubernetes.Clientset
	for i := range opts.KeepAlive + opts.NewConn {
		s := &loopStats{id: i + 1, kind: KindKeepAlive, errs: &l.errs, fault: &l.fault}
		var cs *kubernetes.Clientset
		var err error
		if i < opts.KeepAlive {
			cfg := l.workerConfig(c)
			cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return countingRT{rt: rt, s: s} }
			cs, err = kubernetes.NewForConfig(cfg)
		} else {
			s.kind, s.id = KindNewConn, i-opts.KeepAlive+1
			cs, err = l.newConnClient(c, s)
		}
		if err != nil {
			cancel()
			return nil, err
		}
		l.loops = append(l.loops, s)
		clients = append(clients, cs)
	}

	// The informer: one LIST, then a WATCH, re-established by client-go's
	// reflector whenever it breaks.
	l.watch = &loopStats{id: 1, kind: KindWatch, errs: &l.errs, fault: &l.fault}
	wcfg := l.workerConfig(c)
	wcfg.Timeout = 0 // a watch has no deadline
	wcfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return countingRT{rt: rt, s: l.watch} }
	wcs, err := kubernetes.NewForConfig(wcfg)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("nllblab: %w", err)
	}
	lw := cache.NewListWatchFromClient(wcs.CoreV1().RESTClient(), "configmaps", k8slab.TestNamespace, fields.Everything())
	l.informer = cache.NewSharedIndexInformer(lw, &corev1.ConfigMap{}, 0, cache.Indexers{})
	if err := l.informer.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
		l.watch.callErrs.Add(1)
		l.errs.add("watch: %v", err)
	}); err != nil {
		cancel()
		return nil, fmt.Errorf("nllblab: %w", err)
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.informer.Run(ctx.Done())
	}()

	for i, s := range l.loops {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.run(ctx, s, clients[i])
		}()
	}
	return l, nil
}

// newConnClient returns a clientset whose every request opens a new
// connection through `nlb client`.
func (l *Load) newConnClient(c *k8slab.Cluster, s *loopStats) (*kubernetes.Clientset, error) {
	base := l.workerConfig(c)
	tlsCfg, err := rest.TLSConfigFor(base)
	if err != nil {
		return nil, fmt.Errorf("nllblab: %w", err)
	}
	tr := &http.Transport{
		DialContext:         base.Dial,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 10 * time.Second,
		DisableKeepAlives:   true,
	}
	cfg := &rest.Config{
		Host:      LocalServer,
		Transport: countingRT{rt: tr, s: s},
		Timeout:   base.Timeout,
		QPS:       base.QPS,
		Burst:     base.Burst,
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("nllblab: %w", err)
	}
	return cs, nil
}

// run is one LIST loop.
func (l *Load) run(ctx context.Context, s *loopStats, cs *kubernetes.Clientset) {
	t := time.NewTicker(l.opts.Interval)
	defer t.Stop()
	for ctx.Err() == nil {
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, l.opts.RequestTimeout)
		_, err := cs.CoreV1().ConfigMaps(k8slab.TestNamespace).List(cctx, metav1.ListOptions{})
		cancel()
		if ctx.Err() != nil {
			return // stopped: not the upstream's fault
		}
		s.calls.Add(1)
		if err != nil {
			s.callErrs.Add(1)
			l.errs.add("%s-%d call: %v", s.kind, s.id, err)
		} else {
			s.lastOK.Store(start.UnixNano())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// WaitProgress waits until every loop has had a successful call that
// started after since, and the informer has synced.
func (l *Load) WaitProgress(ctx context.Context, since time.Time) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		var behind []string
		for _, s := range l.loops {
			if s.lastOK.Load() <= since.UnixNano() {
				behind = append(behind, fmt.Sprintf("%s-%d", s.kind, s.id))
			}
		}
		if !l.informer.HasSynced() {
			behind = append(behind, "informer (not synced)")
		}
		if len(behind) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nllblab: no successful call since %s from %v: %w; errors: %q",
				since.Format("15:04:05.000"), behind, ctx.Err(), l.errs.list())
		case <-t.C:
		}
	}
}

// WaitSeen waits until the informer holds the ConfigMap name of
// k8slab.TestNamespace with resourceVersion rv (any when empty).
func (l *Load) WaitSeen(ctx context.Context, name, rv string) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	key := k8slab.TestNamespace + "/" + name
	for {
		obj, ok, err := l.informer.GetStore().GetByKey(key)
		if err == nil && ok {
			if cm, isCM := obj.(*corev1.ConfigMap); isCM && (rv == "" || cm.ResourceVersion == rv) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nllblab: the watch did not deliver configmap %s (rv %q): %w; errors: %q", key, rv, ctx.Err(), l.errs.list())
		case <-t.C:
		}
	}
}

// Counts returns the counts so far.
func (l *Load) Counts() Counts {
	var c Counts
	for _, s := range l.loops {
		lc := s.counts()
		c.Loops = append(c.Loops, lc)
		c.Requests += lc.Requests
		c.FailedRequests += lc.FailedRequests
		c.FailedConnects += lc.FailedConnects
		c.InFlightConnects += lc.InFlightConnects
		c.Calls += lc.Calls
		c.CallErrors += lc.CallErrors
	}
	c.Loops = append(c.Loops, l.watch.counts())
	c.WatchErrors = l.watch.callErrs.Load()
	c.Errors = l.errs.list()
	return c
}

// Stop ends the programs, closes their connections and returns the
// final counts.
func (l *Load) Stop() Counts {
	l.cancel()
	l.wg.Wait()
	l.conns.closeAll()
	return l.Counts()
}
