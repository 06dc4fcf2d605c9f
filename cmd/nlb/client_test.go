package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/lb/k8s"
	"github.com/nlb-dev/nlb/nllb"
)

// testCA is nlbtest's CA with helpers that fail the test.
type testCA struct{ *nlbtest.CA }

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	ca, err := nlbtest.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{ca}
}

// issue returns a leaf certificate (and its PEM forms): a client
// certificate, or a serving one for the names (nlbtest's ServerNames: IP
// literals become IP SANs, the rest DNS SANs).
func (ca *testCA) issue(t *testing.T, cn string, client bool, names ...string) (tls.Certificate, []byte, []byte) {
	t.Helper()
	leaf, err := ca.ServerNames(cn, names...)
	if client {
		leaf, err = ca.Client(cn)
	}
	if err != nil {
		t.Fatal(err)
	}
	return leaf.TLS, leaf.CertPEM, leaf.KeyPEM
}

// writeKubeconfig writes a kubeconfig with embedded CA, client certificate
// and key, pointing at server.
func writeKubeconfig(t *testing.T, path, server string, caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	b64 := func(b []byte) string { return base64Std(b) }
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: k0s
  cluster:
    server: %s
    certificate-authority-data: %s
- name: other
  cluster:
    server: https://203.0.113.9:6443
    insecure-skip-tls-verify: true
contexts:
- name: k0s
  context:
    cluster: k0s
    user: kubelet
- name: other
  context:
    cluster: other
    user: kubelet
current-context: k0s
users:
- name: kubelet
  user:
    client-certificate-data: %s
    client-key-data: %s
`, server, b64(caPEM), b64(certPEM), b64(keyPEM))
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
}

// fakeAPI is a TLS server standing in for kube-apiserver: /readyz and the
// EndpointSlices of default/kubernetes (list and watch), with a switch that
// blackholes it (connections are accepted by the kernel but never
// answered) and one that closes it (connections are refused).
type fakeAPI struct {
	t        *testing.T
	addr     netip.AddrPort
	srv      *http.Server
	ln       net.Listener
	slices   *sliceSource
	ready    atomic.Bool
	frozen   atomic.Bool
	requests atomic.Int64
	clientCN atomic.Value // last client certificate CN seen on /readyz

	mu    sync.Mutex
	held  []net.Conn
	close chan struct{}
}

// sliceSource is the shared EndpointSlice state of a fake cluster.
type sliceSource struct {
	mu      sync.Mutex
	addrs   []string
	port    int32
	rv      int
	changed chan struct{} // closed and replaced on every change
}

func newSliceSource(port int, addrs ...string) *sliceSource {
	return &sliceSource{addrs: addrs, port: int32(port), rv: 1, changed: make(chan struct{})}
}

func (s *sliceSource) set(addrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addrs, s.rv = addrs, s.rv+1
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *sliceSource) slice() (discoveryv1.EndpointSlice, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name, proto, ready := "https", corev1.ProtocolTCP, true
	port := s.port
	es := discoveryv1.EndpointSlice{
		TypeMeta: metav1.TypeMeta{Kind: "EndpointSlice", APIVersion: "discovery.k8s.io/v1"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "kubernetes", Namespace: "default", ResourceVersion: strconv.Itoa(s.rv),
			Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Protocol: &proto, Port: &port}},
	}
	for _, a := range s.addrs {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{a}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		})
	}
	return es, s.changed
}

// freezeListener holds accepted connections unanswered while frozen.
type freezeListener struct {
	net.Listener
	f *fakeAPI
}

func (l freezeListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !l.f.frozen.Load() {
			return freezeConn{Conn: c, f: l.f}, nil
		}
		l.f.mu.Lock()
		l.f.held = append(l.f.held, c)
		l.f.mu.Unlock()
	}
}

// freezeConn stops reading while frozen: established connections go
// quiet as with a blackholed host.
type freezeConn struct {
	net.Conn
	f *fakeAPI
}

func (c freezeConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	for c.f.frozen.Load() {
		time.Sleep(10 * time.Millisecond)
	}
	return n, err
}

// startFakeAPI serves a fake API server on addr with a certificate from ca
// naming names; clientCA, when set, is required for client certificates.
func startFakeAPI(t *testing.T, addr netip.AddrPort, cert tls.Certificate, clientCA *x509.CertPool, src *sliceSource) (*fakeAPI, error) {
	t.Helper()
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		return nil, err
	}
	f := &fakeAPI{t: t, addr: netip.MustParseAddrPort(ln.Addr().String()), ln: ln, slices: src, close: make(chan struct{})}
	f.ready.Store(true)
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCA != nil {
		tc.ClientCAs, tc.ClientAuth = clientCA, tls.VerifyClientCertIfGiven
	}
	f.srv = &http.Server{Handler: http.HandlerFunc(f.serveHTTP), TLSConfig: tc, ErrorLog: nil, ReadHeaderTimeout: 5 * time.Second}
	f.srv.SetKeepAlivesEnabled(true)
	go f.srv.ServeTLS(freezeListener{Listener: ln, f: f}, "", "")
	t.Cleanup(f.stop)
	return f, nil
}

// stop closes the server: new connections are refused, existing ones
// reset.
func (f *fakeAPI) stop() {
	f.mu.Lock()
	select {
	case <-f.close:
	default:
		close(f.close)
	}
	for _, c := range f.held {
		c.Close()
	}
	f.held = nil
	f.mu.Unlock()
	f.frozen.Store(false)
	f.srv.Close()
}

func (f *fakeAPI) serveHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		f.clientCN.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
	}
	switch {
	case r.URL.Path == "/readyz":
		if !f.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	case r.URL.Path == "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices":
		es, changed := f.slices.slice()
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("watch") != "true" {
			json.NewEncoder(w).Encode(discoveryv1.EndpointSliceList{
				TypeMeta: metav1.TypeMeta{Kind: "EndpointSliceList", APIVersion: "discovery.k8s.io/v1"},
				ListMeta: metav1.ListMeta{ResourceVersion: es.ResourceVersion},
				Items:    []discoveryv1.EndpointSlice{es},
			})
			return
		}
		w.WriteHeader(http.StatusOK)
		if from := r.URL.Query().Get("resourceVersion"); from != "" && from != es.ResourceVersion {
			// A change between the LIST and this WATCH: as an API
			// server does, send what happened after the version asked for.
			raw, _ := json.Marshal(es)
			json.NewEncoder(w).Encode(metav1.WatchEvent{Type: "MODIFIED", Object: runtime.RawExtension{Raw: raw}})
		}
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-f.close:
				return
			case <-time.After(30 * time.Second):
				return
			case <-changed:
				es, changed = f.slices.slice()
				raw, _ := json.Marshal(es)
				json.NewEncoder(w).Encode(metav1.WatchEvent{Type: "MODIFIED", Object: runtime.RawExtension{Raw: raw}})
				w.(http.Flusher).Flush()
			}
		}
	default:
		http.NotFound(w, r)
	}
}

// fakeCluster is three fake API servers on 127.0.0.2-4 sharing one port
// (an EndpointSlice has one port for all endpoints) and a TCP server per
// host on another shared port for konnectivity.
type fakeCluster struct {
	ca, otherCA *testCA
	apis        []*fakeAPI
	konn        []net.Listener
	port        int
	konnPort    int
	src         *sliceSource
	dir         string
	kubeconfig  string
	clientCert  tls.Certificate
	hosts       []string
}

// listenSamePort binds one listener per host on a common free port.
func listenSamePort(t *testing.T, hosts []string, bind func(port int) error) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", net.JoinHostPort(hosts[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if bind(port) == nil {
			return port
		}
	}
	t.Fatal("no common free port")
	return 0
}

func newFakeCluster(t *testing.T) *fakeCluster {
	t.Helper()
	c := &fakeCluster{ca: newTestCA(t, "kubernetes-ca"), otherCA: newTestCA(t, "impostor-ca"),
		hosts: []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}, dir: t.TempDir()}
	pool := x509.NewCertPool()
	pool.AddCert(c.ca.Cert)
	var certPEM, keyPEM []byte
	c.clientCert, certPEM, keyPEM = c.ca.issue(t, "system:node:worker", true)
	c.port = listenSamePort(t, c.hosts, func(port int) error {
		c.src = newSliceSource(port, c.hosts...)
		var apis []*fakeAPI
		for _, h := range c.hosts {
			cert, _, _ := c.ca.issue(t, "kube-apiserver", false, h, "kubernetes", "localhost", "127.0.0.1")
			f, err := startFakeAPI(t, netip.AddrPortFrom(netip.MustParseAddr(h), uint16(port)), cert, pool, c.src)
			if err != nil {
				for _, a := range apis {
					a.stop()
				}
				return err
			}
			apis = append(apis, f)
		}
		c.apis = apis
		return nil
	})
	c.konnPort = listenSamePort(t, c.hosts, func(port int) error {
		var lns []net.Listener
		for _, h := range c.hosts {
			ln, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
			if err != nil {
				for _, l := range lns {
					l.Close()
				}
				return err
			}
			lns = append(lns, ln)
		}
		c.konn = lns
		return nil
	})
	for _, ln := range c.konn {
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { io.Copy(conn, conn); conn.Close() }()
			}
		}()
	}
	c.kubeconfig = filepath.Join(c.dir, "kubelet.conf")
	writeKubeconfig(t, c.kubeconfig, "https://"+net.JoinHostPort(c.hosts[0], strconv.Itoa(c.port)), c.ca.CertPEM, certPEM, keyPEM)
	return c
}

func (c *fakeCluster) upstream(i int) string {
	return net.JoinHostPort(c.hosts[i], strconv.Itoa(c.port))
}

// startClient runs client mode in-process with fast settings and returns
// it once both listeners are bound.
func (c *fakeCluster) startClient(t *testing.T, readyz bool, cacheFile string) *testClient {
	t.Helper()
	return c.startClientWatched(t, readyz, cacheFile, nil)
}

// startClientWatched is startClient with the API server listener's
// mark-downs recorded in downs, if not nil (see markDowns).
func (c *fakeCluster) startClientWatched(t *testing.T, readyz bool, cacheFile string, downs *markDowns) *testClient {
	t.Helper()
	kc, err := k8s.LoadKubeconfig(c.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	o := nllb.Options{
		Kubeconfig:               kc,
		CacheFile:                cacheFile,
		Bind:                     "127.0.0.1",
		KonnectivityUpstreamPort: c.konnPort,
		Readyz:                   readyz,
		Checks: nllb.Checks{
			Interval: nllb.DefaultCheckInterval, Timeout: nllb.DefaultCheckTimeout,
			Rise: nllb.DefaultRise, Fall: nllb.DefaultFall,
		},
		DrainPeriod:     nllb.DefaultDrainPeriod,
		ShutdownTimeout: 2 * time.Second,
	}
	reg := prometheus.NewRegistry()
	var h slog.Handler = slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})
	if downs != nil {
		h = hookHandler{Handler: h, hook: func(msg string, attrs map[string]string) {
			if msg == "backend unhealthy" && attrs["listener"] == "apiserver" {
				downs.record(t, reg, attrs["backend"])
			}
		}}
	}
	o.Logger, o.Registry = slog.New(h), reg
	o.Cached = nllb.ReadCache(kc, cacheFile, o.Logger)
	cl, err := nllb.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := cl.Listen(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("client: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("client did not stop")
		}
	})
	return &testClient{Client: cl, reg: reg}
}

// testClient is a client under test and its registry.
type testClient struct {
	*nllb.Client
	reg *prometheus.Registry
}

// hookHandler passes every record it handles, with its attributes (those
// of With included) as strings, to hook before its Handler.
type hookHandler struct {
	slog.Handler
	attrs []slog.Attr
	hook  func(msg string, attrs map[string]string)
}

func (h hookHandler) Handle(ctx context.Context, r slog.Record) error {
	m := map[string]string{}
	for _, a := range h.attrs {
		m[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	h.hook(r.Message, m)
	return h.Handler.Handle(ctx, r)
}

func (h hookHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return hookHandler{Handler: h.Handler.WithAttrs(as), attrs: append(slices.Clip(h.attrs), as...), hook: h.hook}
}

func (h hookHandler) WithGroup(name string) slog.Handler {
	return hookHandler{Handler: h.Handler.WithGroup(name), attrs: h.attrs, hook: h.hook}
}

// markDowns records, for every upstream of the API server listener marked
// unhealthy, how many of its health checks had failed at that moment: lb
// logs the mark-down from the goroutine that runs the upstream's checks,
// right after counting the check that caused it and before the next one
// starts, so the count read then is exact, however slow the machine.
type markDowns struct {
	mu     sync.Mutex
	failed map[string][]float64
}

func (d *markDowns) record(t *testing.T, reg *prometheus.Registry, backend string) {
	n, err := failedChecks(reg, backend)
	if err != nil {
		t.Errorf("at the mark-down of %s: %v", backend, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failed == nil {
		d.failed = map[string][]float64{}
	}
	d.failed[backend] = append(d.failed[backend], n)
}

// after returns the failed-check counts of backend's mark-downs that came
// after n failed checks.
func (d *markDowns) after(backend string, n float64) []float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []float64
	for _, f := range d.failed[backend] {
		if f > n {
			out = append(out, f)
		}
	}
	return out
}

// failedChecks reads nlb_proxy_health_checks_total{result="failed"} of the
// API server listener's backend from reg.
func failedChecks(reg *prometheus.Registry, backend string) (float64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() != "nlb_proxy_health_checks_total" {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			want := map[string]string{"listener": "apiserver", "backend": backend, "result": "failed"}
			for _, l := range m.GetLabel() {
				if v, ok := want[l.GetName()]; ok {
					if v != l.GetValue() {
						continue next
					}
					delete(want, l.GetName())
				}
			}
			if len(want) == 0 {
				return m.GetCounter().GetValue(), nil
			}
		}
	}
	return 0, fmt.Errorf("no nlb_proxy_health_checks_total for %s", backend)
}

// checkMarkDown waits until backend, seen unhealthy, has its mark-down
// logged (/status can show it an instant before), and fails the test unless
// it was marked down by at most fall failed checks after the f0 counted
// before the fault: detection counted in checks, which a slow machine does
// not change (the time it takes is bench/client's detect_ms).
func checkMarkDown(t *testing.T, downs *markDowns, backend string, f0 float64) {
	t.Helper()
	var after []float64
	waitFor(t, clientWait, backend+"'s mark-down logged", func() bool {
		after = downs.after(backend, f0)
		return len(after) > 0
	})
	if n := after[0] - f0; n > nllb.DefaultFall {
		t.Errorf("%s marked unhealthy after %v failed checks, want at most fall (%d)", backend, n, nllb.DefaultFall)
	} else {
		t.Logf("%s marked unhealthy after %v failed checks (fall %d)", backend, n, nllb.DefaultFall)
	}
}

// testWriter sends logs to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// clientset returns a client-go clientset that talks through cl's API
// server listener, as a kubelet with a rewritten kubeconfig would.
func (c *fakeCluster) clientset(t *testing.T, cl *testClient) kubernetes.Interface {
	t.Helper()
	self, err := cl.URL()
	if err != nil {
		t.Fatal(err)
	}
	// Its connections are closed at the end of the test, before the
	// client stops, so that the client's graceful shutdown finds none.
	var conns nllb.ConnTracker
	t.Cleanup(conns.CloseAll)
	rc := &rest.Config{Host: self, Timeout: 10 * time.Second, Dial: conns.DialContext}
	rc.TLSClientConfig.CAData = c.ca.CertPEM
	rc.TLSClientConfig.ServerName = "kubernetes"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// clientWait bounds the waits of the client tests: a safety limit only,
// far above what any step takes (speed is bench/client's), so that a
// loaded machine running the race detector does not fail them.
const clientWait = 30 * time.Second

// waitFor waits (nlbtest.Eventually) until cond holds, at most d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	nlbtest.Eventually(t, d, what, nlbtest.Holds(cond))
}

// backendHealth returns address → healthy for the live (not removed)
// backends of s.
func backendHealth(s lb.Status) map[string]bool {
	m := map[string]bool{}
	for _, b := range s.Backends {
		if !b.Removed {
			m[b.Address] = b.Healthy
		}
	}
	return m
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// lister lists EndpointSlices through the client in a loop, one request
// at a time, counting successes and failures, as a kubelet or client-go
// program would.
type lister struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	starts     []time.Time // of the failed requests
}

func (l *lister) run(ctx context.Context, cs kubernetes.Interface) {
	for ctx.Err() == nil {
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := cs.DiscoveryV1().EndpointSlices("default").List(rctx, metav1.ListOptions{})
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			l.failed.Add(1)
			l.mu.Lock()
			l.errs = append(l.errs, err.Error())
			l.starts = append(l.starts, start)
			l.mu.Unlock()
		} else {
			l.ok.Add(1)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// failedSince returns the errors of the failed requests that started at
// or after t.
func (l *lister) failedSince(t time.Time) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for i, s := range l.starts {
		if !s.Before(t) {
			out = append(out, l.errs[i])
		}
	}
	return out
}

// freshGET sends GET /readyz through addr on a new connection.
func freshGET(caPEM []byte, url string) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "kubernetes", MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get(url + "/readyz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}

// TestClientDiscoveryFailover runs client mode against three fake API
// servers: the upstreams are discovered through the client itself (and
// cached), konnectivity goes to the same hosts, a refused dial is retried on
// the next upstream, dead and blackholed upstreams are marked down after at
// most `fall` failed checks and their connections closed, and a client-go
// program keeps working throughout: its requests fail only while they are
// stuck on the blackholed upstream, none started after its connections were
// closed. Only counts and the order of events are asserted, never times
// (detection time and failed requests against real API servers are
// bench/client's detect_ms and failed_requests).
func TestClientDiscoveryFailover(t *testing.T) {
	c := newFakeCluster(t)
	cacheFile := filepath.Join(c.dir, "state", "apiservers")
	var downs markDowns
	cl := c.startClientWatched(t, true, cacheFile, &downs)

	all := []string{c.upstream(0), c.upstream(1), c.upstream(2)}
	waitFor(t, clientWait, "three discovered upstreams", func() bool {
		s := cl.Status()
		h := backendHealth(s.APIServer)
		return len(s.Discovered) == 3 && len(h) == 3 && h[all[0]] && h[all[1]] && h[all[2]]
	})
	konn := backendHealth(cl.Status().Konnectivity)
	for _, h := range c.hosts {
		if _, ok := konn[net.JoinHostPort(h, strconv.Itoa(c.konnPort))]; !ok {
			t.Errorf("konnectivity upstreams %v lack %s:%d", konn, h, c.konnPort)
		}
	}
	waitFor(t, clientWait, "the cache file", func() bool {
		b, err := k8s.LoadCache(cacheFile)
		return err == nil && len(b) == 3
	})
	// Konnectivity passes bytes through.
	kc, err := net.Dial("tcp", cl.Status().Konnectivity.Listeners[0])
	if err != nil {
		t.Fatal(err)
	}
	kc.Write([]byte("ping"))
	buf := make([]byte, 4)
	kc.SetReadDeadline(time.Now().Add(clientWait))
	if _, err := io.ReadFull(kc, buf); err != nil || string(buf) != "ping" {
		t.Errorf("konnectivity echo: %q, %v", buf, err)
	}
	kc.Close()

	cs := c.clientset(t, cl)
	var l lister
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); l.run(ctx, cs) }()
	defer func() { cancel(); wg.Wait() }()
	waitFor(t, clientWait, "the lister's first successes", func() bool { return l.ok.Load() > 5 })

	// Refused: every new connection right after the kill still succeeds,
	// the dial to the dead upstream being retried on another one.
	self, _ := cl.URL()
	f0, err := failedChecks(cl.reg, all[2])
	if err != nil {
		t.Fatal(err)
	}
	c.apis[2].stop()
	var rwg sync.WaitGroup
	var refusedFails atomic.Int64
	for range 3 {
		for range 10 {
			rwg.Add(1)
			go func() {
				defer rwg.Done()
				if err := freshGET(c.ca.CertPEM, self); err != nil {
					refusedFails.Add(1)
					t.Logf("request after kill: %v", err)
				}
			}()
		}
		rwg.Wait()
	}
	if n := refusedFails.Load(); n > 0 {
		t.Errorf("%d of 30 new connections failed after an upstream was killed", n)
	}
	waitFor(t, clientWait, "the killed upstream unhealthy", func() bool {
		return !backendHealth(cl.Status().APIServer)[all[2]]
	})
	checkMarkDown(t, &downs, all[2], f0)
	for _, b := range cl.Status().APIServer.Backends {
		if b.Address == all[2] {
			t.Logf("killed upstream: %d dial failures retried elsewhere", b.DialFailures)
		}
	}

	// Blackholed: accepted by the kernel, never answered. The victim is
	// the live upstream carrying the most connections (the lister's
	// HTTP/2 connection and discovery's watch), so that pinned
	// connections are cut off and must be closed and re-established.
	victim, most := 0, int64(-1)
	for _, b := range cl.Status().APIServer.Backends {
		for i := range 2 {
			if b.Address == all[i] && b.Active > most {
				victim, most = i, b.Active
			}
		}
	}
	if most < 1 {
		t.Fatalf("no connection on the live upstreams to cut off: %+v", cl.Status().APIServer.Backends)
	}
	t.Logf("blackholing %s with %d active connections", all[victim], most)
	if f0, err = failedChecks(cl.reg, all[victim]); err != nil {
		t.Fatal(err)
	}
	c.apis[victim].frozen.Store(true)
	waitFor(t, clientWait, "the blackholed upstream unhealthy", func() bool {
		return !backendHealth(cl.Status().APIServer)[all[victim]]
	})
	checkMarkDown(t, &downs, all[victim], f0)
	// Its connections are closed (after --drain-period), and nothing new
	// goes to it: from then on, no request may fail.
	waitFor(t, clientWait, "the blackholed upstream's connections closed", func() bool {
		for _, b := range cl.Status().APIServer.Backends {
			if b.Address == all[victim] {
				return !b.Healthy && !b.Draining && b.Active == 0
			}
		}
		return false
	})
	cut := time.Now()
	okCut := l.ok.Load()
	// New connections go to the live upstream only.
	for i := range 10 {
		if err := freshGET(c.ca.CertPEM, self); err != nil {
			t.Errorf("new connection %d after the blackholed upstream was marked down: %v", i, err)
		}
	}
	waitFor(t, clientWait, "the lister's successes after the cut", func() bool { return l.ok.Load() > okCut+10 })
	cancel()
	wg.Wait()
	t.Logf("lister: %d ok, %d failed %v", l.ok.Load(), l.failed.Load(), l.errs)
	if errs := l.failedSince(cut); len(errs) > 0 {
		t.Errorf("lister: %d requests started after the blackholed upstream's connections were closed failed: %v", len(errs), errs)
	}

	// A removal from the EndpointSlice applies live to both listeners.
	c.src.set(c.hosts[1-victim], c.hosts[2])
	waitFor(t, clientWait, "the removal", func() bool {
		s := cl.Status()
		return len(backendHealth(s.APIServer)) == 2 && len(backendHealth(s.Konnectivity)) == 2
	})
}

// TestClientCacheBootstrap starts client mode while the kubeconfig's server
// (the join controller) is down: it balances over the cached upstreams plus
// that server at once, discovers through itself, and replaces the list.
func TestClientCacheBootstrap(t *testing.T) {
	c := newFakeCluster(t)
	cacheFile := filepath.Join(c.dir, "apiservers")
	cache := fmt.Sprintf(`{"backends": [%q, %q]}`, c.upstream(1), c.upstream(2))
	if err := os.WriteFile(cacheFile, []byte(cache), 0o600); err != nil {
		t.Fatal(err)
	}
	c.apis[0].stop()
	cl := c.startClient(t, false, cacheFile)
	h := backendHealth(cl.Status().APIServer)
	for i := range 3 {
		if _, ok := h[c.upstream(i)]; !ok {
			t.Fatalf("bootstrap upstreams %v lack %s (cache ∪ kubeconfig server)", h, c.upstream(i))
		}
	}
	self, _ := cl.URL()
	for i := range 10 {
		if err := freshGET(c.ca.CertPEM, self); err != nil {
			t.Fatalf("request %d with the join controller down: %v", i, err)
		}
	}
	// Discovery through the client itself lists all three (the join
	// controller is still in the slice, but unhealthy).
	waitFor(t, clientWait, "discovery", func() bool {
		s := cl.Status()
		return len(s.Discovered) == 3
	})
	waitFor(t, clientWait, "the join controller unhealthy", func() bool {
		h := backendHealth(cl.Status().APIServer)
		return len(h) == 3 && !h[c.upstream(0)] && h[c.upstream(1)] && h[c.upstream(2)]
	})
	c.src.set(c.hosts[1], c.hosts[2])
	waitFor(t, clientWait, "the join controller removed", func() bool {
		h := backendHealth(cl.Status().APIServer)
		_, ok := h[c.upstream(0)]
		return len(h) == 2 && !ok
	})
	waitFor(t, clientWait, "the cache file updated", func() bool {
		b, err := k8s.LoadCache(cacheFile)
		return err == nil && len(b) == 2
	})
}

// TestClientAdmin checks the combined admin endpoints.
func TestClientAdmin(t *testing.T) {
	c := newFakeCluster(t)
	cl := c.startClient(t, false, "")
	waitFor(t, clientWait, "discovery", func() bool { return len(cl.Status().Discovered) == 3 })
	srv := httptestServer(t, cl.AdminHandler())
	for path, want := range map[string]string{
		"/healthz":             "ok",
		"/readyz":              "",
		"/status":              `"discovered"`,
		"/apiserver/status":    c.upstream(0),
		"/konnectivity/status": strconv.Itoa(c.konnPort),
		"/metrics":             `listener="konnectivity"`,
	} {
		resp, err := http.Get(srv + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %s, body lacks %q:\n%.500s", path, resp.Status, want, body)
		}
	}
}

// httptestServer serves h on a loopback port and returns its URL.
func httptestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// TestClientFlags: --config takes the NLLB bind ports (Traefik as an alias),
// flags override them, and --check reports the listeners.
func TestClientFlags(t *testing.T) {
	c := newFakeCluster(t)
	cfgFile := filepath.Join(c.dir, "k0s.yaml")
	os.WriteFile(cfgFile, []byte(`apiVersion: k0s.k0sproject.io/v1beta1
kind: ClusterConfig
metadata: {name: k0s}
spec:
  konnectivity: {agentPort: 8140, adminPort: 8133}
  network:
    nodeLocalLoadBalancing:
      enabled: true
      type: Traefik
      traefik:
        apiServerBindPort: 7444
        konnectivityServerBindPort: 7133
`), 0o600)
	var out, errOut strings.Builder
	err := runClient(context.Background(), []string{"--check", "--config", cfgFile, "--kubeconfig", c.kubeconfig,
		"--bind", "127.0.0.1", "--cache-file", "", "--konnectivity-port", "7200"}, &out, &errOut)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "apiserver 127.0.0.1:7444, konnectivity 127.0.0.1:7200 (to port 8140)") {
		t.Errorf("--check output %q", out.String())
	}
	out.Reset()
	err = runClient(context.Background(), []string{"--check", "--config", cfgFile, "--kubeconfig", c.kubeconfig,
		"--bind", "127.0.0.1", "--cache-file", "", "--konnectivity-upstream-port", "9132"}, &out, &errOut)
	if err != nil || !strings.Contains(out.String(), "konnectivity 127.0.0.1:7133 (to port 9132)") {
		t.Errorf("--konnectivity-upstream-port over the file: %v, %q", err, out.String())
	}
	if err := runClient(context.Background(), []string{"--check"}, &out, &errOut); err == nil {
		t.Error("no --kubeconfig: no error")
	}
}

// TestProxyDiscover: `nlb proxy --discover` takes its backends from the
// EndpointSlices (through the kubeconfig's server) on --api-port, checks
// them with GET /readyz and the kubeconfig's identity, and follows changes.
func TestProxyDiscover(t *testing.T) {
	c := newFakeCluster(t)
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := adminLn.Addr().String()
	adminLn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var stderr netlab.SyncBuffer
	go func() {
		done <- runProxy(ctx, []string{"--listen", "127.0.0.1:0", "--admin", admin, "--discover",
			"--kubeconfig", c.kubeconfig, "--api-port", strconv.Itoa(c.port), "--log-format", "text"}, io.Discard, &stderr)
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("proxy: %v", err)
			}
		case <-time.After(40 * time.Second):
			t.Error("proxy did not stop")
		}
		if t.Failed() {
			t.Log(stderr.String())
		}
	}()
	status := func() lb.Status {
		var s lb.Status
		resp, err := http.Get("http://" + admin + "/status")
		if err != nil {
			return s
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&s)
		return s
	}
	waitFor(t, clientWait, "three discovered healthy backends", func() bool {
		h := backendHealth(status())
		return len(h) == 3 && h[c.upstream(0)] && h[c.upstream(1)] && h[c.upstream(2)]
	})
	// New backends are presumed healthy until checked: wait for a
	// /readyz with the kubeconfig's identity on each.
	waitFor(t, clientWait, "/readyz checks with the kubeconfig's client certificate", func() bool {
		for _, f := range c.apis {
			if cn, _ := f.clientCN.Load().(string); cn != "system:node:worker" {
				return false
			}
		}
		return true
	})
	c.apis[1].ready.Store(false)
	waitFor(t, clientWait, "an unready upstream unhealthy", func() bool {
		return !backendHealth(status())[c.upstream(1)]
	})
	c.src.set(c.hosts[0], c.hosts[2])
	waitFor(t, clientWait, "the removal", func() bool {
		h := backendHealth(status())
		_, ok := h[c.upstream(1)]
		return len(h) == 2 && !ok
	})
	if err := runProxy(context.Background(), []string{"--check", "--discover", "--listen", "127.0.0.1:0"}, io.Discard, io.Discard); err == nil {
		t.Error("--discover without --kubeconfig: no error")
	}
}
