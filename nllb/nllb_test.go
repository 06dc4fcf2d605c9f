package nllb

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
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

	"github.com/nlb-dev/nlb/internal/nlbtest"
	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/lb/k8s"
	"github.com/prometheus/client_golang/prometheus"
)

// wait bounds the waits for events: a safety limit only.
const wait = 30 * time.Second

// caPEM returns a throwaway CA certificate (PEM, nlbtest's): the client
// needs one in its kubeconfig to build its health check.
func caPEM(t *testing.T) []byte {
	t.Helper()
	ca, err := nlbtest.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	return ca.CertPEM
}

// kubeconfig writes and loads a token kubeconfig for server; withCA false
// leaves the CA out.
func kubeconfig(t *testing.T, server string, withCA bool) *k8s.Kubeconfig {
	t.Helper()
	ca := ""
	if withCA {
		ca = "\n    certificate-authority-data: " + base64.StdEncoding.EncodeToString(caPEM(t))
	}
	doc := fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: k0s
clusters:
- name: k0s
  cluster:
    server: %s%s
contexts:
- name: k0s
  context: {cluster: k0s, user: worker}
users:
- name: worker
  user: {token: s3cret}
`, server, ca)
	path := filepath.Join(t.TempDir(), "kubelet.conf")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	kc, err := k8s.LoadKubeconfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

// options are test options: join 192.0.2.11:6443, konnectivity on 8132,
// any listen ports on 127.0.0.1.
func options(t *testing.T, cached ...string) Options {
	t.Helper()
	o := Options{
		Kubeconfig:               kubeconfig(t, "https://192.0.2.11:6443", true),
		Bind:                     "127.0.0.1",
		KonnectivityUpstreamPort: 8132,
	}
	for _, c := range cached {
		o.Cached = append(o.Cached, netip.MustParseAddrPort(c))
	}
	return o
}

func addrs(ss ...string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range ss {
		out = append(out, netip.MustParseAddrPort(s))
	}
	return out
}

// upstreams returns the configured (not removed) backends of s, in order.
func upstreams(s lb.Status) []string {
	out := []string{}
	for _, b := range s.Backends {
		if !b.Removed {
			out = append(out, b.Address)
		}
	}
	return out
}

// TestNewBootstrap: at start the upstreams are the cache's list plus the
// kubeconfig's server (once), and konnectivity goes to the same hosts on
// its own port.
func TestNewBootstrap(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cached    []string
		api, konn []string
	}{
		{"no cache", nil, []string{"192.0.2.11:6443"}, []string{"192.0.2.11:8132"}},
		{"cache without the join address", []string{"192.0.2.12:6443", "192.0.2.13:6443"},
			[]string{"192.0.2.12:6443", "192.0.2.13:6443", "192.0.2.11:6443"},
			[]string{"192.0.2.12:8132", "192.0.2.13:8132", "192.0.2.11:8132"}},
		{"cache with the join address", []string{"192.0.2.11:6443", "192.0.2.12:6443"},
			[]string{"192.0.2.11:6443", "192.0.2.12:6443"}, []string{"192.0.2.11:8132", "192.0.2.12:8132"}},
	} {
		c, err := New(options(t, tc.cached...))
		if err != nil {
			t.Fatal(err)
		}
		st := c.Status()
		if got := upstreams(st.APIServer); !slices.Equal(got, tc.api) {
			t.Errorf("%s: API server upstreams %v, want %v", tc.name, got, tc.api)
		}
		if got := upstreams(st.Konnectivity); !slices.Equal(got, tc.konn) {
			t.Errorf("%s: konnectivity upstreams %v, want %v", tc.name, got, tc.konn)
		}
		if st.KubeconfigServer != "192.0.2.11:6443" || len(st.Discovered) != 0 {
			t.Errorf("%s: kubeconfig server %q, discovered %v", tc.name, st.KubeconfigServer, st.Discovered)
		}
	}
}

// TestOnChange: discovery's lists replace the upstreams of both listeners;
// the kubeconfig's server stays only while the one list seen is the cache's
// (the first list discovery applies at start).
func TestOnChange(t *testing.T) {
	type step struct {
		list      []string
		api, konn []string
	}
	for _, tc := range []struct {
		name   string
		cached []string
		steps  []step
	}{
		{"the cache's list first, then the API's", []string{"192.0.2.12:6443", "192.0.2.13:6443"}, []step{
			{[]string{"192.0.2.12:6443", "192.0.2.13:6443"},
				[]string{"192.0.2.12:6443", "192.0.2.13:6443", "192.0.2.11:6443"},
				[]string{"192.0.2.12:8132", "192.0.2.13:8132", "192.0.2.11:8132"}},
			{[]string{"192.0.2.12:6443", "192.0.2.13:6443"},
				[]string{"192.0.2.12:6443", "192.0.2.13:6443"}, []string{"192.0.2.12:8132", "192.0.2.13:8132"}},
		}},
		{"the API's list first", []string{"192.0.2.12:6443"}, []step{
			{[]string{"192.0.2.13:6443", "192.0.2.14:6443"},
				[]string{"192.0.2.13:6443", "192.0.2.14:6443"}, []string{"192.0.2.13:8132", "192.0.2.14:8132"}},
		}},
		{"no cache", nil, []step{
			{[]string{"192.0.2.12:6443"}, []string{"192.0.2.12:6443"}, []string{"192.0.2.12:8132"}},
			{[]string{"192.0.2.11:6443", "192.0.2.12:6443"},
				[]string{"192.0.2.11:6443", "192.0.2.12:6443"}, []string{"192.0.2.11:8132", "192.0.2.12:8132"}},
		}},
	} {
		c, err := New(options(t, tc.cached...))
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range tc.steps {
			c.onChange(addrs(s.list...))
			st := c.Status()
			if got := upstreams(st.APIServer); !slices.Equal(got, s.api) {
				t.Errorf("%s, list %d: API server upstreams %v, want %v", tc.name, i, got, s.api)
			}
			if got := upstreams(st.Konnectivity); !slices.Equal(got, s.konn) {
				t.Errorf("%s, list %d: konnectivity upstreams %v, want %v", tc.name, i, got, s.konn)
			}
			if !slices.Equal(st.Discovered, s.list) {
				t.Errorf("%s, list %d: discovered %v, want %v", tc.name, i, st.Discovered, s.list)
			}
		}
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"api port", func(o *Options) { o.APIPort = 65536 }, "client: --api-port 65536: not a port"},
		{"konnectivity port", func(o *Options) { o.KonnectivityPort = -1 }, "client: --konnectivity-port -1: not a port"},
		{"konnectivity upstream port", func(o *Options) { o.KonnectivityUpstreamPort = 70000 }, "client: --konnectivity-upstream-port 70000: not a port"},
		{"konnectivity upstream port 0", func(o *Options) { o.KonnectivityUpstreamPort = 0 }, "client: --konnectivity-upstream-port must not be 0"},
		{"bind", func(o *Options) { o.Bind = "localhost" }, "client: --bind: "},
		{"no kubeconfig", func(o *Options) { o.Kubeconfig = nil }, "client: no kubeconfig"},
		{"no CA", func(o *Options) { o.Kubeconfig = kubeconfig(t, "https://192.0.2.11:6443", false) }, "client: the kubeconfig has no CA"},
		{"not https", func(o *Options) { o.Kubeconfig = kubeconfig(t, "http://192.0.2.11:6443", true) }, "client: kubeconfig "},
		{"health check", func(o *Options) { o.Checks.Rise = -1 }, "client: apiserver listener: "},
	} {
		o := options(t)
		tc.edit(&o)
		_, err := New(o)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestReadCache: the cache's list when there is one, else nil, with the
// bootstrap logged; the directory is made for discovery to write the file.
func TestReadCache(t *testing.T) {
	kc := kubeconfig(t, "https://192.0.2.11:6443", true)
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, []byte(`{"backends": ["192.0.2.12:6443"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte(`{`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file string
		want       []netip.AddrPort
		log        string
	}{
		{"a cache", good, addrs("192.0.2.12:6443"), "bootstrapping from the cache and the kubeconfig"},
		{"no cache yet", filepath.Join(dir, "state", "apiservers"), nil, "no API server cache yet"},
		{"a bad cache", bad, nil, "ignoring the API server cache"},
		{"no cache file", "", nil, ""},
	} {
		var logs bytes.Buffer
		got := ReadCache(kc, tc.file, slog.New(slog.NewTextHandler(&logs, nil)))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		if !strings.Contains(logs.String(), tc.log) || tc.log != "" && !strings.Contains(logs.String(), "kubeconfig_server=192.0.2.11:6443") && tc.name != "a bad cache" {
			t.Errorf("%s: log %q, want %q", tc.name, logs.String(), tc.log)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "state")); err != nil || !fi.IsDir() {
		t.Errorf("the cache directory was not made: %v", err)
	}
}

// fakeResolver answers localhost with addrs or err.
type fakeResolver struct {
	addrs []netip.Addr
	err   error
}

func (r fakeResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	if network != "ip" || host != "localhost" {
		return nil, fmt.Errorf("unexpected lookup %s %s", network, host)
	}
	return r.addrs, r.err
}

func TestLoopbackBind(t *testing.T) {
	ip := netip.MustParseAddr
	for _, tc := range []struct {
		name string
		r    fakeResolver
		want string
	}{
		{"IPv6 first", fakeResolver{addrs: []netip.Addr{ip("::1"), ip("127.0.0.1")}}, "::1"},
		{"first loopback", fakeResolver{addrs: []netip.Addr{ip("192.0.2.1"), ip("127.0.1.1")}}, "127.0.1.1"},
		{"mapped", fakeResolver{addrs: []netip.Addr{ip("::ffff:127.0.0.2")}}, "127.0.0.2"},
		{"zone", fakeResolver{addrs: []netip.Addr{ip("::1%lo")}}, "::1"},
		{"none", fakeResolver{addrs: []netip.Addr{ip("192.0.2.1")}}, "127.0.0.1"},
		{"error", fakeResolver{err: errors.New("no resolver")}, "127.0.0.1"},
	} {
		if got := LoopbackBind(context.Background(), tc.r); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestStatusJSON: the JSON names of the /status document, which nlb status
// and the labs read.
func TestStatusJSON(t *testing.T) {
	b, err := json.Marshal(Status{Discovered: []string{"192.0.2.12:6443"}, KubeconfigServer: "192.0.2.11:6443"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"apiserver", "discovered", "konnectivity", "kubeconfig_server"}; !slices.Equal(keys, want) {
		t.Errorf("keys %v, want %v (cache_file omitted when empty)", keys, want)
	}
	st := Status{APIServer: lb.Status{Backends: []lb.BackendStatus{
		{Address: "192.0.2.13:6443", Healthy: true}, {Address: "192.0.2.12:6443", Removed: true}, {Address: "192.0.2.12:6443"},
	}}}
	if got := st.Upstreams(); !slices.Equal(got, []string{"192.0.2.12:6443", "192.0.2.13:6443"}) {
		t.Errorf("Upstreams %v", got)
	}
	if b, ok := st.Backend("192.0.2.12:6443"); !ok || b.Removed {
		t.Errorf("Backend: %+v, %v, want the one not removed", b, ok)
	}
	if _, ok := st.Backend("192.0.2.14:6443"); ok {
		t.Error("Backend of an unknown address found")
	}
}

// TestAdminHandler: /healthz, /readyz (the API server listener's: not
// listening yet, so not ready), /status (Status), /metrics (both
// listeners, labelled) and each listener's own endpoints.
func TestAdminHandler(t *testing.T) {
	o := options(t, "192.0.2.12:6443")
	o.CacheFile = "/var/lib/nlb/apiservers"
	reg := prometheus.NewRegistry()
	o.Registry = reg
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.AdminHandler())
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before listening: %d, want 503", code)
	}
	code, body := get("/status")
	var st Status
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("/status: %d %v\n%s", code, err, body)
	}
	if st.KubeconfigServer != "192.0.2.11:6443" || st.CacheFile != o.CacheFile ||
		!slices.Equal(upstreams(st.APIServer), []string{"192.0.2.12:6443", "192.0.2.11:6443"}) ||
		!slices.Equal(upstreams(st.Konnectivity), []string{"192.0.2.12:8132", "192.0.2.11:8132"}) {
		t.Errorf("/status: %s", body)
	}
	for path, want := range map[string]string{
		"/metrics":             `nlb_proxy_backend_healthy{backend="192.0.2.12:8132",listener="konnectivity"}`,
		"/apiserver/status":    `"address": "192.0.2.12:6443"`,
		"/konnectivity/status": `"address": "192.0.2.12:8132"`,
	} {
		if code, body := get(path); code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, body lacks %q:\n%.800s", path, code, want, body)
		}
	}
	if code, body := get("/metrics"); !strings.Contains(body, `listener="apiserver"`) {
		t.Errorf("/metrics: %d, no apiserver listener metrics", code)
	}
}

// TestConnTracker: connections dialled through the tracker (with its Dial
// seam) are closed by CloseAll; closed ones are forgotten.
func TestConnTracker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	var dials atomic.Int32
	tr := ConnTracker{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	var conns []net.Conn
	for range 3 {
		c, err := tr.DialContext(context.Background(), "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if dials.Load() != 3 || tr.open() != 3 {
		t.Fatalf("%d dials, %d tracked", dials.Load(), tr.open())
	}
	conns[0].Close()
	if n := tr.open(); n != 2 {
		t.Errorf("%d tracked after a close, want 2", n)
	}
	tr.CloseAll()
	if n := tr.open(); n != 0 {
		t.Errorf("%d tracked after CloseAll", n)
	}
	for i, c := range conns[1:] {
		if _, err := c.Write([]byte("x")); err == nil {
			t.Errorf("connection %d still open after CloseAll", i+1)
		}
	}
}

// echoHosts serves TCP echo on the same free port of each host and
// returns the port.
func echoHosts(t *testing.T, hosts ...string) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", net.JoinHostPort(hosts[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		lns := []net.Listener{ln}
		for _, h := range hosts[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
			if err != nil {
				break
			}
			lns = append(lns, l)
		}
		if len(lns) < len(hosts) {
			for _, l := range lns {
				l.Close()
			}
			continue
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var conns []net.Conn
		for _, l := range lns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
					go func() { _, _ = io.Copy(c, c); c.Close() }()
				}
			}()
		}
		t.Cleanup(func() {
			for _, l := range lns {
				l.Close()
			}
			mu.Lock()
			for _, c := range conns {
				c.Close()
			}
			mu.Unlock()
			wg.Wait()
		})
		return port
	}
	t.Fatal("no common free port")
	return 0
}

// echo writes and reads back a message on c.
func echo(c net.Conn) error {
	if err := c.SetDeadline(time.Now().Add(wait)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != "ping" {
		return fmt.Errorf("echo %q", buf)
	}
	return nil
}

// TestRunRemovedUpstreamClosed runs the client on loopback with two
// konnectivity upstreams: a connection to an upstream that leaves the
// discovered list is closed after the drain period (so that its client
// reconnects through a live one), a connection to the upstream that stays
// is kept, and new ones go to the live upstream. Discovery dials through
// Options.Dial; Run returns nil when its context ends.
func TestRunRemovedUpstreamClosed(t *testing.T) {
	hosts := []string{"127.0.0.2", "127.0.0.3"}
	port := echoHosts(t, hosts...)
	o := options(t)
	// The join address has no API server: discovery fails and retries,
	// which does not matter here.
	o.Kubeconfig = kubeconfig(t, "https://127.0.0.2:1", true)
	o.Cached = addrs("127.0.0.2:1", "127.0.0.3:1")
	o.KonnectivityUpstreamPort = port
	o.DrainPeriod = 50 * time.Millisecond
	o.ShutdownTimeout = time.Second
	o.Checks = Checks{Interval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond, Rise: 1, Fall: 1}
	var dials atomic.Int32
	o.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()

	konn := c.Status().Konnectivity.Listeners[0]

	// /readyz is the API server listener's: with no API server up it is
	// not ready, while konnectivity (healthy upstreams) is.
	admin := httptest.NewServer(c.AdminHandler())
	defer admin.Close()
	nlbtest.Eventually(t, wait, "the API server upstreams (nothing listening) unhealthy", nlbtest.Holds(func() bool {
		return !slices.ContainsFunc(c.Status().APIServer.Backends, func(b lb.BackendStatus) bool { return b.Healthy })
	}))
	for path, want := range map[string]int{"/readyz": http.StatusServiceUnavailable, "/konnectivity/readyz": http.StatusOK} {
		resp, err := http.Get(admin.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %s, want %d", path, resp.Status, want)
		}
	}
	// Round robin: two connections, one to each upstream.
	var conns []net.Conn
	for range 2 {
		conn, err := net.Dial("tcp", konn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := echo(conn); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	active := func() map[string]int64 {
		m := map[string]int64{}
		for _, b := range c.Status().Konnectivity.Backends {
			m[b.Address] = b.Active
		}
		return m
	}
	removed, kept := net.JoinHostPort(hosts[0], strconv.Itoa(port)), net.JoinHostPort(hosts[1], strconv.Itoa(port))
	if a := active(); a[removed] != 1 || a[kept] != 1 {
		t.Fatalf("active connections %v, want one on each upstream", a)
	}
	// Which local connection goes to the removed upstream: the first, by
	// round robin from the first backend; checked by its closing below.
	c.onChange(addrs("127.0.0.3:1"))
	closed := make(chan int, 2)
	for i, conn := range conns {
		go func() {
			_ = conn.SetReadDeadline(time.Now().Add(wait))
			_, err := conn.Read(make([]byte, 1))
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				closed <- i
			}
		}()
	}
	select {
	case i := <-closed:
		// The other one stays: it still echoes.
		other := conns[1-i]
		_ = other.SetReadDeadline(time.Time{})
		if _, err := other.Write([]byte("ping")); err != nil {
			t.Errorf("the connection to the kept upstream: %v", err)
		}
	case <-time.After(wait):
		t.Fatalf("no connection closed %v after its upstream was removed", wait)
	}
	if a := active(); a[kept] != 1 {
		t.Errorf("active connections %v after the removal, want the kept one's", a)
	}
	conn, err := net.Dial("tcp", konn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := echo(conn); err != nil {
		t.Errorf("a new connection after the removal: %v", err)
	}
	if a := active(); a[kept] != 2 {
		t.Errorf("active connections %v, want the new one on the kept upstream", a)
	}
	nlbtest.Eventually(t, wait, "discovery dials through Options.Dial", nlbtest.Holds(func() bool { return dials.Load() > 0 }))
	for _, conn := range append(conns, conn) {
		conn.Close()
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return after its context ended")
	}
}
