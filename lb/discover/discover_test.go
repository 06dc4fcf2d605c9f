package discover

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/nlbtest"
	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/lb/k8s"
)

// wait bounds the waits for events: a safety limit only.
const wait = 30 * time.Second

// newProxy returns an unbound proxy with backends and no health checks.
func newProxy(t *testing.T, backends ...string) *lb.Proxy {
	t.Helper()
	p, err := lb.New(lb.Config{Listen: []string{"127.0.0.1:0"}, Backends: backends,
		HealthCheck: lb.HealthCheck{Type: lb.CheckNone}}, lb.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// backends returns p's configured (not removed) backends, sorted.
func backends(p *lb.Proxy) []string {
	var a []string
	for _, b := range p.Status().Backends {
		if !b.Removed {
			a = append(a, b.Address)
		}
	}
	slices.Sort(a)
	return a
}

// testPKI is a CA and a server certificate for 127.0.0.1 and "kubernetes".
type testPKI struct {
	caPEM  []byte
	server tls.Certificate
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	ca, err := nlbtest.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.Server("kube-apiserver", []string{"kubernetes"}, net.IPv4(127, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{caPEM: ca.CertPEM, server: server.TLS}
}

// writeKubeconfig writes a token kubeconfig for server with p's CA and
// returns its path.
func writeKubeconfig(t *testing.T, dir, server string, p *testPKI) string {
	t.Helper()
	doc := fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: admin
clusters:
- name: k0s
  cluster:
    server: %s
    certificate-authority-data: %s
contexts:
- name: admin
  context: {cluster: k0s, user: admin}
users:
- name: admin
  user: {token: s3cret}
`, server, base64.StdEncoding.EncodeToString(p.caPEM))
	path := filepath.Join(dir, "admin.conf")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReloadExclusive: a discovery change that arrives while a reload runs
// waits for it, so the reload (which reads the discovered list first)
// cannot put an older list back; and a reload after it takes the
// discovered list, not the file's.
func TestReloadExclusive(t *testing.T) {
	fileBackends := []string{"192.0.2.1:6443"}
	p := newProxy(t, fileBackends...)
	d := New(Config{Enabled: true, Kubeconfig: "admin.conf"})
	d.kc = &k8s.Kubeconfig{} // prepared
	discovered := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.2:6443"), netip.MustParseAddrPort("192.0.2.3:6443")}

	inside, release := make(chan struct{}), make(chan struct{})
	reloaded := make(chan error, 1)
	go d.Exclusive(func() {
		close(inside)
		<-release
		cfg := lb.Config{Listen: []string{"127.0.0.1:0"}, Backends: fileBackends, HealthCheck: lb.HealthCheck{Type: lb.CheckNone}}
		err := d.Fill(&cfg)
		if err == nil {
			err = p.Reload(cfg)
		}
		reloaded <- err
	})
	<-inside
	updated := make(chan struct{})
	go func() { d.update(p, discovered); close(updated) }()
	select {
	case <-updated:
		t.Fatal("a discovery change was applied in the middle of a reload")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
	select {
	case <-updated:
	case <-time.After(wait):
		t.Fatal("the discovery change never applied")
	}
	want := []string{"192.0.2.2:6443", "192.0.2.3:6443"}
	if got := backends(p); !slices.Equal(got, want) {
		t.Errorf("backends after the change %v, want %v", got, want)
	}
	// A later reload keeps the discovered backends.
	cfg := lb.Config{Listen: []string{"127.0.0.1:0"}, Backends: fileBackends, HealthCheck: lb.HealthCheck{Type: lb.CheckNone}}
	if err := d.Fill(&cfg); err != nil {
		t.Fatal(err)
	}
	if err := p.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := backends(p); !slices.Equal(got, want) {
		t.Errorf("backends after a reload %v, want %v", got, want)
	}
}

// TestFill: the backends before discovery has spoken are the configured
// ones plus the cache's on APIPort (deduplicated), else the kubeconfig's
// server host on APIPort; once it has, the discovered list. Without
// Enabled the configuration is untouched.
func TestFill(t *testing.T) {
	pki := newPKI(t)
	dir := t.TempDir()
	kc := writeKubeconfig(t, dir, "https://192.0.2.10", pki)
	cache := filepath.Join(dir, "cache")
	if err := os.WriteFile(cache, []byte(`{"backends": ["192.0.2.1:7000", "192.0.2.2:7000"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	badCache := filepath.Join(dir, "bad")
	if err := os.WriteFile(badCache, []byte(`not json`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		cfg        Config
		configured []string
		want       []string
		err        string
	}{
		{"not enabled", Config{Kubeconfig: kc, APIPort: 6443}, []string{"192.0.2.1:6443"}, []string{"192.0.2.1:6443"}, ""},
		{"nothing to discover with", Config{}, []string{"192.0.2.1:6443"}, []string{"192.0.2.1:6443"}, ""},
		{"configured and cached", Config{Enabled: true, Kubeconfig: kc, APIPort: 6443, CacheFile: cache},
			[]string{"192.0.2.1:6443"}, []string{"192.0.2.1:6443", "192.0.2.2:6443"}, ""},
		{"configured, no cache yet", Config{Enabled: true, Kubeconfig: kc, APIPort: 6443, CacheFile: filepath.Join(dir, "none")},
			[]string{"192.0.2.5:6443"}, []string{"192.0.2.5:6443"}, ""},
		{"only the kubeconfig's server", Config{Enabled: true, Kubeconfig: kc, APIPort: 6444}, nil, []string{"192.0.2.10:6444"}, ""},
		{"a bad cache", Config{Enabled: true, Kubeconfig: kc, APIPort: 6443, CacheFile: badCache}, nil, nil, "proxy: "},
		{"no kubeconfig", Config{Enabled: true, APIPort: 6443}, nil, nil, "proxy: --discover needs --kubeconfig"},
		{"no port", Config{Enabled: true, Kubeconfig: kc}, nil, nil, "proxy: --api-port 0: not a port"},
		{"a port too high", Config{Kubeconfig: kc, APIPort: 65536}, nil, nil, "proxy: --api-port 65536: not a port"},
		{"a missing kubeconfig", Config{Enabled: true, Kubeconfig: filepath.Join(dir, "missing"), APIPort: 6443}, nil, nil, "proxy: "},
	} {
		d := New(tc.cfg)
		cfg := lb.Config{Backends: slices.Clone(tc.configured)}
		err := d.Fill(&cfg)
		if tc.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := cfg.Backends; !slices.Equal(got, tc.want) {
			t.Errorf("%s: backends %v, want %v", tc.name, got, tc.want)
		}
		// The kubeconfig, when given, makes the health check.
		if got := d.Options(lb.Options{}).Check != nil; got != (tc.cfg.Kubeconfig != "") {
			t.Errorf("%s: health check set %v", tc.name, got)
		}
		if (d.Kubeconfig() != nil) != (tc.cfg.Kubeconfig != "") || (d.APICheck() != nil) != (tc.cfg.Kubeconfig != "") {
			t.Errorf("%s: kubeconfig %v, check %v after Fill", tc.name, d.Kubeconfig(), d.APICheck())
		}
	}
}

// TestStartDisabled: without discovery, Start does nothing and its stop
// returns at once; Run refuses.
func TestStartDisabled(t *testing.T) {
	p := newProxy(t, "192.0.2.1:6443")
	d := New(Config{})
	if err := d.Prepare(); err != nil {
		t.Fatal(err)
	}
	d.Start(context.Background(), p, slog.New(slog.DiscardHandler))()
	if err := d.Run(context.Background(), p, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("Run without discovery: no error")
	}
	if got := backends(p); !slices.Equal(got, []string{"192.0.2.1:6443"}) {
		t.Errorf("backends %v", got)
	}
}

// sliceServer serves the EndpointSlices of default/kubernetes (a list, then
// a watch that sends each change) over TLS, as kube-apiserver does.
type sliceServer struct {
	mu      sync.Mutex
	addrs   []string
	rv      int
	changed chan struct{}
	auth    string
}

func (s *sliceServer) set(addrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addrs, s.rv = addrs, s.rv+1
	close(s.changed)
	s.changed = make(chan struct{})
}

// slice returns the EndpointSlice JSON (its port 443, which discovery
// must override) and the channel closed at the next change.
func (s *sliceServer) slice() (string, string, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var eps []string
	for _, a := range s.addrs {
		eps = append(eps, fmt.Sprintf(`{"addresses":[%q],"conditions":{"ready":true}}`, a))
	}
	rv := fmt.Sprint(s.rv)
	return fmt.Sprintf(`{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"kubernetes","namespace":"default","resourceVersion":%q,"labels":{"kubernetes.io/service-name":"kubernetes"}},"addressType":"IPv4","ports":[{"name":"https","protocol":"TCP","port":443}],"endpoints":[%s]}`,
		rv, strings.Join(eps, ",")), rv, s.changed
}

func (s *sliceServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.auth = r.Header.Get("Authorization")
	s.mu.Unlock()
	if r.URL.Path != "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices" {
		http.NotFound(w, r)
		return
	}
	obj, rv, changed := s.slice()
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Query().Get("watch") != "true" {
		fmt.Fprintf(w, `{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":%q},"items":[%s]}`, rv, obj)
		return
	}
	w.WriteHeader(http.StatusOK)
	if from := r.URL.Query().Get("resourceVersion"); from != "" && from != rv {
		// A change between the LIST and this WATCH: as an API server
		// does, send what happened after the version asked for.
		fmt.Fprintf(w, `{"type":"MODIFIED","object":%s}`+"\n", obj)
	}
	w.(http.Flusher).Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-changed:
			obj, _, changed = s.slice()
			fmt.Fprintf(w, `{"type":"MODIFIED","object":%s}`+"\n", obj)
			w.(http.Flusher).Flush()
		}
	}
}

// TestStartFeedsProxy: discovery reads the EndpointSlices with the
// kubeconfig's identity, gives the hosts on APIPort to the proxy, follows
// changes, keeps the cache, and Fill then returns the discovered list; the
// stop func waits for it to end.
func TestStartFeedsProxy(t *testing.T) {
	pki := newPKI(t)
	src := &sliceServer{addrs: []string{"192.0.2.1", "192.0.2.2"}, rv: 1, changed: make(chan struct{})}
	srv := httptest.NewUnstartedServer(src)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}
	srv.Config.ErrorLog = nil
	srv.StartTLS()
	defer srv.Close()
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	d := New(Config{Enabled: true, Kubeconfig: writeKubeconfig(t, dir, srv.URL, pki), APIPort: 6443, CacheFile: cache})
	p := newProxy(t, "192.0.2.9:6443")
	cfg := lb.Config{}
	if err := d.Fill(&cfg); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(b)
	}), nil))
	stop := d.Start(context.Background(), p, log)
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	waitBackends := func(want ...string) {
		t.Helper()
		nlbtest.Eventually(t, wait, "discovered backends", func() error {
			if got := backends(p); !slices.Equal(got, want) {
				return fmt.Errorf("backends %v, want %v", got, want)
			}
			return nil
		})
	}
	waitBackends("192.0.2.1:6443", "192.0.2.2:6443")
	src.set("192.0.2.2", "192.0.2.3")
	waitBackends("192.0.2.2:6443", "192.0.2.3:6443")
	cfg = lb.Config{Backends: []string{"192.0.2.9:6443"}}
	if err := d.Fill(&cfg); err != nil {
		t.Fatal(err)
	}
	if want := []string{"192.0.2.2:6443", "192.0.2.3:6443"}; !slices.Equal(cfg.Backends, want) {
		t.Errorf("Fill after discovery: %v, want %v", cfg.Backends, want)
	}
	src.mu.Lock()
	auth := src.auth
	src.mu.Unlock()
	if auth != "Bearer s3cret" {
		t.Errorf("discovery's Authorization %q, want the kubeconfig's token", auth)
	}
	nlbtest.Eventually(t, wait, "the cache", func() error {
		list, err := k8s.LoadCache(cache)
		if err == nil && len(list) == 2 && list[1] == netip.MustParseAddrPort("192.0.2.3:6443") {
			return nil
		}
		return fmt.Errorf("cache %v, %v", list, err)
	})
	stop()
	stopped = true
	logMu.Lock()
	defer logMu.Unlock()
	// stop waited for discovery's end.
	for _, want := range []string{"discovering API servers", "stopped watching API server endpoints"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q when stop returns:\n%s", want, logs.String())
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
