package lb

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
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
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/nlbtest"
	"github.com/prometheus/client_golang/prometheus"
)

// testLogger writes the proxy's log into the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// waitFor polls cond for up to 10 s: bounded, never a timing assertion.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	nlbtest.Eventually(t, 10*time.Second, what, nlbtest.Holds(cond))
}

// echoServer echoes every connection and passes half-closes back.
func echoServer(t *testing.T) string {
	return serve(t, "127.0.0.1:0", func(c *net.TCPConn) {
		io.Copy(c, c)
		c.CloseWrite()
	})
}

func serve(t *testing.T, addr string, fn func(*net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				fn(c.(*net.TCPConn))
			}()
		}
	}()
	return ln.Addr().String()
}

// closedAddr returns a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

type testProxy struct {
	*Proxy
	addr string
	reg  *prometheus.Registry
}

func startProxy(t *testing.T, cfg Config, opts Options, tweak ...func(*Proxy)) *testProxy {
	t.Helper()
	if len(cfg.Listen) == 0 {
		cfg.Listen = []string{"127.0.0.1:0"}
	}
	if cfg.HealthCheck.Type == "" {
		cfg.HealthCheck.Type = CheckNone
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	p, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range tweak {
		f(p)
	}
	if err := p.Listen(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx) }()
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), 100*time.Millisecond)
		p.Shutdown(sctx)
		c()
		cancel()
		<-served
	})
	return &testProxy{Proxy: p, addr: p.Addrs()[0].String(), reg: reg}
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A regression that leaves a read or write hanging fails the test
	// instead of running into the package timeout.
	c.SetDeadline(time.Now().Add(testConnDeadline))
	return c.(*net.TCPConn)
}

// testConnDeadline bounds every test connection's I/O; no test needs a
// connection longer.
const testConnDeadline = 2 * time.Minute

// roundTrip sends msg and expects it echoed. It writes while it reads, so
// that a message larger than the socket buffers cannot deadlock.
func roundTrip(c net.Conn, msg string) error {
	werr := make(chan error, 1)
	go func() {
		_, err := io.WriteString(c, msg)
		werr <- err
	}()
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return errors.Join(err, <-werr)
	}
	if err := <-werr; err != nil {
		return err
	}
	if string(buf) != msg {
		if len(msg) > 64 {
			return fmt.Errorf("echo of %d bytes differs", len(msg))
		}
		return fmt.Errorf("echo %q, want %q", buf, msg)
	}
	return nil
}

func backendStatus(p *Proxy, addr string) BackendStatus {
	for _, b := range p.Status().Backends {
		if b.Address == addr {
			return b
		}
	}
	return BackendStatus{}
}

func TestProxyLargeTransferBothWaysWithHalfClose(t *testing.T) {
	for _, m := range loopModes {
		t.Run(m.name, func(t *testing.T) {
			p := startProxy(t, Config{Backends: []string{echoServer(t)}}, Options{}, withLoops(m.loops))
			c := dial(t, p.addr)
			data := make([]byte, 24<<20+12345)
			rand.Read(data)
			go func() {
				// Write in uneven pieces with pauses, then half-close.
				for off := 0; off < len(data); {
					n := min(len(data)-off, 1<<20+off%7919)
					if _, err := c.Write(data[off : off+n]); err != nil {
						return
					}
					off += n
					if off%(4<<20) < n {
						time.Sleep(5 * time.Millisecond)
					}
				}
				c.CloseWrite()
			}()
			got, err := io.ReadAll(c) // ends only when the backend's half-close comes through
			if err != nil {
				t.Fatal(err)
			}
			if sha256.Sum256(got) != sha256.Sum256(data) {
				t.Fatalf("echo of %d bytes differs (got %d bytes)", len(data), len(got))
			}
			waitFor(t, "connection released", func() bool { return p.Status().Active == 0 })
			st := p.Status().Backends[0]
			if st.BytesIn != uint64(len(data)) || st.BytesOut != uint64(len(data)) || st.Total != 1 {
				t.Errorf("status %+v, want %d bytes each way", st, len(data))
			}
		})
	}
}

func TestHalfCloseRequestThenResponse(t *testing.T) {
	// The backend reads the whole request until EOF, then answers: the
	// client's half-close must reach it while the other direction stays
	// open.
	backend := serve(t, "127.0.0.1:0", func(c *net.TCPConn) {
		req, _ := io.ReadAll(c)
		fmt.Fprintf(c, "got %d bytes", len(req))
		c.CloseWrite()
	})
	p := startProxy(t, Config{Backends: []string{backend}}, Options{})
	c := dial(t, p.addr)
	c.Write(bytes.Repeat([]byte("x"), 100000))
	c.CloseWrite()
	resp, err := io.ReadAll(c)
	if err != nil || string(resp) != "got 100000 bytes" {
		t.Fatalf("response %q, %v", resp, err)
	}
}

// TestSplicePathTaken: a bulk transfer is spliced, and its payload does
// not pass through user space.
func TestSplicePathTaken(t *testing.T) {
	sink := serve(t, "127.0.0.1:0", func(c *net.TCPConn) {
		n, _ := io.Copy(io.Discard, c)
		fmt.Fprint(c, n)
	})
	p := startProxy(t, Config{Backends: []string{sink}}, Options{})

	// 1. The proxy's own count: most of the payload went through
	// splice(2); only the 16 KiB reads that detect a transfer (and its
	// pauses) are copied.
	// 2. The kernel's count, which does not trust the proxy's: the
	// process's rchar (bytes read by read-family syscalls) grows by what
	// the test's own sink reads, not twice that as a userspace copy would.
	// splice(2) is not counted in rchar; the proxy's 16 KiB reads are.
	rchar := func() int64 {
		b, err := os.ReadFile("/proc/self/io")
		if err != nil {
			return -1
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "rchar: "); ok {
				var n int64
				fmt.Sscan(v, &n)
				return n
			}
		}
		return -1
	}
	const size = 64 << 20
	before := rchar()
	c := dial(t, p.addr)
	buf := make([]byte, 1<<20)
	for i := 0; i < size/len(buf); i++ {
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	c.CloseWrite()
	resp, _ := io.ReadAll(c)
	after := rchar()
	if string(resp) != fmt.Sprint(size) {
		t.Fatalf("sink got %q bytes, want %d", resp, size)
	}
	if n := p.spliced.Load(); n < size/2 {
		t.Fatalf("%d of %d bytes spliced", n, size)
	}
	if before < 0 {
		t.Skip("no /proc/self/io")
	}
	if d := after - before; d > size*3/2 {
		t.Errorf("rchar grew by %d for %d proxied bytes: the proxy copied through userspace", d, size)
	} else {
		t.Logf("rchar grew by %d for %d bytes (the sink's reads): spliced", d, size)
	}
}

func TestIPv6Listener(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback")
	}
	ln.Close()
	p := startProxy(t, Config{Listen: []string{"[::1]:0", "127.0.0.1:0"}, Backends: []string{echoServer(t)}}, Options{})
	for _, a := range p.Addrs() {
		if err := roundTrip(dial(t, a.String()), "hello "+a.String()); err != nil {
			t.Error(err)
		}
	}
	if got := len(p.Status().Listeners); got != 2 {
		t.Errorf("%d listeners in status, want 2", got)
	}
}

func TestBackendDeathMidStream(t *testing.T) {
	killed := make(chan struct{})
	backend := serve(t, "127.0.0.1:0", func(c *net.TCPConn) {
		c.Write(make([]byte, 1000))
		<-killed
		c.SetLinger(0) // RST, as a crashed process's kernel would send
		c.Close()
	})
	p := startProxy(t, Config{Backends: []string{backend}}, Options{})
	c := dial(t, p.addr)
	if _, err := io.ReadFull(c, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	close(killed)
	_, err := io.ReadAll(c)
	if err == nil {
		t.Fatal("client saw a clean EOF after the backend reset; want the reset passed on")
	}
	waitFor(t, "connection released", func() bool { return p.Status().Active == 0 })
}

func TestRetryRefusedBackend(t *testing.T) {
	dead, live := closedAddr(t), echoServer(t)
	p := startProxy(t, Config{Backends: []string{dead, live}}, Options{})
	for i := range 10 {
		if err := roundTrip(dial(t, p.addr), fmt.Sprint("hi ", i)); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	st := backendStatus(p.Proxy, dead)
	if !st.Suspect || st.DialFailures == 0 {
		t.Errorf("refused backend %+v: want suspect with dial failures", st)
	}
	if got := backendStatus(p.Proxy, live).Total; got != 10 {
		t.Errorf("live backend took %d connections, want 10", got)
	}
}

func TestRetryBlackholedBackend(t *testing.T) {
	live := echoServer(t)
	const hole = "203.0.113.1:6443" // never dialled: the Dial seam blackholes it
	var holeDials atomic.Int32
	d := func(ctx context.Context, addr string) (*net.TCPConn, error) {
		if addr == hole {
			holeDials.Add(1)
			<-ctx.Done() // no SYN-ACK ever: wait for the connect timeout
			return nil, ctx.Err()
		}
		var nd net.Dialer
		c, err := nd.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return c.(*net.TCPConn), nil
	}
	p := startProxy(t, Config{Backends: []string{hole, live}, ConnectTimeout: Duration(20 * time.Millisecond)}, Options{Dial: d})
	for i := range 6 {
		if err := roundTrip(dial(t, p.addr), "x"); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	if holeDials.Load() != 1 {
		// After the first timeout the backend is suspect and skipped.
		t.Errorf("blackholed backend dialled %d times, want 1", holeDials.Load())
	}
	if st := backendStatus(p.Proxy, hole); !st.Suspect {
		t.Errorf("blackholed backend not suspect: %+v", st)
	}
}

func TestNoBackendReachable(t *testing.T) {
	p := startProxy(t, Config{Backends: []string{closedAddr(t), closedAddr(t)}}, Options{})
	// The proxy resets the client; the reset can beat the end of the
	// client's connect(2) (seen under qemu-user), and then Dial fails.
	c, err := net.Dial("tcp", p.addr)
	switch {
	case errors.Is(err, syscall.ECONNRESET):
	case err != nil:
		t.Fatal(err)
	default:
		defer c.Close()
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("read succeeded with every backend refusing")
		}
	}
	if p.noBackend.Load() != 1 {
		t.Errorf("no_backend_total %d, want 1", p.noBackend.Load())
	}
}

// scriptedChecks lets tests set each backend's health check result.
type scriptedChecks struct {
	mu   sync.Mutex
	fail map[string]bool
	runs map[string]int
}

func newScripted() *scriptedChecks {
	return &scriptedChecks{fail: map[string]bool{}, runs: map[string]int{}}
}

func (s *scriptedChecks) set(addr string, fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[addr] = fail
}

func (s *scriptedChecks) check(_ context.Context, addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs[addr]++
	if s.fail[addr] {
		return errors.New("scripted failure")
	}
	return nil
}

func fastChecks() HealthCheck {
	return HealthCheck{Type: CheckTCP, Interval: Duration(MinCheckInterval), Timeout: Duration(time.Second), Rise: 2, Fall: 3}
}

func TestHealthTransitionsAndFailOpen(t *testing.T) {
	a, b := echoServer(t), echoServer(t)
	s := newScripted()
	p := startProxy(t, Config{Backends: []string{a, b}, HealthCheck: fastChecks()}, Options{Check: s.check})

	s.set(a, true)
	waitFor(t, "a unhealthy", func() bool { return !backendStatus(p.Proxy, a).Healthy })
	if p.Status().FailOpen {
		t.Error("fail-open with b healthy")
	}
	for range 6 {
		if err := roundTrip(dial(t, p.addr), "x"); err != nil {
			t.Fatal(err)
		}
	}
	if n := backendStatus(p.Proxy, a).Total; n != 0 {
		t.Errorf("unhealthy backend got %d new connections", n)
	}

	// Every backend unhealthy: fail open to all.
	s.set(b, true)
	waitFor(t, "fail-open", func() bool { return p.Status().FailOpen })
	for range 4 {
		if err := roundTrip(dial(t, p.addr), "y"); err != nil {
			t.Fatalf("fail-open: %v", err)
		}
	}
	if backendStatus(p.Proxy, a).Total == 0 {
		t.Error("fail-open did not use backend a")
	}
	resp := httptest.NewRecorder()
	p.AdminHandler(p.reg).ServeHTTP(resp, httptest.NewRequest("GET", "/readyz", nil))
	if resp.Code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while failing open: %d", resp.Code)
	}

	// Rise: two successes bring a back; fail-open ends.
	s.set(a, false)
	waitFor(t, "a healthy, fail-open over", func() bool {
		return backendStatus(p.Proxy, a).Healthy && !p.Status().FailOpen
	})
}

func TestRealHealthChecks(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	for _, typ := range []string{CheckTCP, CheckTLS, CheckHTTPS} {
		hc := HealthCheck{Type: typ, InsecureSkipVerify: true}
		if typ == CheckTCP {
			hc.InsecureSkipVerify = false
		}
		hc.Path = "/readyz"
		check, err := newChecker(hc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := check(ctx, addr); err != nil {
			t.Errorf("%s check of a healthy server: %v", typ, err)
		}
		if err := check(ctx, closedAddr(t)); err == nil {
			t.Errorf("%s check of a closed port passed", typ)
		}
		cancel()
	}
	// Path mismatch and certificate verification failures fail.
	check, _ := newChecker(HealthCheck{Type: CheckHTTPS, Path: "/other", InsecureSkipVerify: true})
	if err := check(context.Background(), addr); err == nil {
		t.Error("404 passed")
	}
	check, _ = newChecker(HealthCheck{Type: CheckTLS, Path: "/"})
	if err := check(context.Background(), addr); err == nil {
		t.Error("untrusted certificate passed")
	}
}

func TestDrainUnhealthyAndRemoved(t *testing.T) {
	a, b := echoServer(t), echoServer(t)
	s := newScripted()
	cfg := Config{Backends: []string{a, b}, HealthCheck: fastChecks(), Balance: RoundRobin,
		DrainPeriod: Duration(30 * time.Millisecond), DrainStagger: Duration(20 * time.Millisecond)}
	p := startProxy(t, cfg, Options{Check: s.check})
	var onA []*net.TCPConn
	for range 6 {
		c := dial(t, p.addr)
		if err := roundTrip(c, "z"); err != nil {
			t.Fatal(err)
		}
		onA = append(onA, c)
	}
	// Round robin put three on each; the ones on a are closed after
	// the drain, the ones on b stay.
	s.set(a, true)
	waitFor(t, "a drained", func() bool { return backendStatus(p.Proxy, a).Active == 0 })
	closed := 0
	for _, c := range onA {
		if roundTrip(c, "still there?") != nil {
			closed++
		}
	}
	// The drain counts a close after handing it to the loop: wait for it.
	waitFor(t, "three drained", func() bool { return p.drained.Load() >= 3 })
	if closed != 3 || p.drained.Load() != 3 {
		t.Errorf("%d connections closed, %d drained; want 3", closed, p.drained.Load())
	}

	// Removal drains too, and the backend stays visible until then.
	c := dial(t, p.addr)
	if err := roundTrip(c, "w"); err != nil {
		t.Fatal(err)
	}
	p.SetBackends([]string{a})
	if st := backendStatus(p.Proxy, b); !st.Removed || st.Active == 0 {
		t.Errorf("removed backend b: %+v", st)
	}
	waitFor(t, "b drained and forgotten", func() bool { return backendStatus(p.Proxy, b).Address == "" })
	if roundTrip(c, "gone") == nil {
		t.Error("connection to the removed backend survived its drain")
	}
}

func TestConnectionLimit(t *testing.T) {
	logs := &syncLog{}
	p := startProxy(t, Config{Backends: []string{echoServer(t)}, MaxConnections: 2},
		Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	c1, c2 := dial(t, p.addr), dial(t, p.addr)
	for _, c := range []net.Conn{c1, c2} {
		if err := roundTrip(c, "a"); err != nil {
			t.Fatal(err)
		}
	}
	c3 := dial(t, p.addr)
	if roundTrip(c3, "b") == nil {
		t.Fatal("third connection proxied beyond the limit of 2")
	}
	// The loop closes the rejected socket before it counts it.
	waitFor(t, "the rejection counted", func() bool { return p.limitHits.Load() >= 1 })
	if p.limitHits.Load() != 1 {
		t.Errorf("limit_reached_total %d, want 1", p.limitHits.Load())
	}
	waitFor(t, "the limit logged", func() bool {
		return strings.Contains(logs.String(), "connection limit reached") && strings.Contains(logs.String(), "max_connections=2")
	})
	c1.Close()
	waitFor(t, "slot freed", func() bool { return p.Status().Active == 1 })
	if err := roundTrip(dial(t, p.addr), "c"); err != nil {
		t.Fatalf("after a slot freed: %v", err)
	}
}

func TestIdleTimeout(t *testing.T) {
	p := startProxy(t, Config{Backends: []string{echoServer(t)}, IdleTimeout: Duration(50 * time.Millisecond)}, Options{})
	c := dial(t, p.addr)
	if err := roundTrip(c, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("idle close: %v", err)
	}
	waitFor(t, "idle timeout counted", func() bool { return p.idleClosed.Load() == 1 })
	waitFor(t, "released", func() bool { return p.Status().Active == 0 })
}

// holding counts the proxy's connections and those that hold a buffer or
// a pipe, as their loops see them.
func holding(t *testing.T, p *Proxy) (conns, holding int) {
	t.Helper()
	for _, l := range p.loops {
		done := make(chan struct{})
		if !l.post(func() {
			for _, c := range l.conns {
				if c == nil {
					continue
				}
				conns++
				for _, f := range []*flow{&c.up, &c.down} {
					if f.pend != nil || f.pipe.r >= 0 {
						holding++
						break
					}
				}
			}
			close(done)
		}) {
			t.Fatal("loop stopped")
		}
		<-done
	}
	return conns, holding
}

// proxyGoroutines counts the goroutines running a method of this
// package's types (the proxy's loops and background work; the tests'
// servers run closures).
func proxyGoroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "github.com/nlb-dev/nlb/lb.(*") {
			n++
		}
	}
	return n
}

// TestIdleConnectionsHoldNothing: idle connections, after small messages
// or a bulk transfer, hold no goroutine, no buffer and no pipe; they wake
// on new bytes, and a drain closes them.
func TestIdleConnectionsHoldNothing(t *testing.T) {
	p := startProxy(t, Config{Backends: []string{echoServer(t)}, DrainPeriod: Duration(time.Millisecond), DrainStagger: Duration(time.Millisecond)}, Options{})
	c0 := dial(t, p.addr)
	if err := roundTrip(c0, "warm up"); err != nil {
		t.Fatal(err)
	}
	goroutines := proxyGoroutines()
	var cs []*net.TCPConn
	big := bytes.Repeat([]byte("b"), 1<<20)
	for i := range 20 {
		c := dial(t, p.addr)
		msg := "a"
		if i%4 == 0 {
			msg = string(big) // spliced
		}
		if err := roundTrip(c, msg); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	waitFor(t, "21 connections, none holding a buffer or pipe", func() bool {
		n, h := holding(t, p.Proxy)
		return n == 21 && h == 0
	})
	// A goroutine per connection would add 20 or 40; a timer's callback
	// may come and go meanwhile.
	if g := proxyGoroutines(); g >= goroutines+10 {
		t.Errorf("the proxy runs %d goroutines with 20 more idle connections, %d before", g, goroutines)
	}
	for i, c := range cs {
		if err := roundTrip(c, fmt.Sprint("wake ", i)); err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
	}
	p.SetBackends([]string{echoServer(t)})
	waitFor(t, "removed backend drained", func() bool { return p.Status().Active == 0 })
	if n, _ := holding(t, p.Proxy); n != 0 {
		t.Errorf("%d connections left in the loops", n)
	}
	for _, c := range cs {
		if _, err := io.ReadAll(c); err != nil {
			t.Errorf("drained connection: %v", err)
		}
	}
}

func TestReloadUnderLoad(t *testing.T) {
	backends := []string{echoServer(t), echoServer(t), echoServer(t)}
	p := startProxy(t, Config{Backends: backends[:2]}, Options{}, withLoops(2))
	long := dial(t, p.addr)
	if err := roundTrip(long, "long"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var failures, ok atomic.Int32
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.Dial("tcp", p.addr)
				if err == nil {
					err = roundTrip(c, fmt.Sprintf("%d-%d", w, i))
					c.Close()
				}
				if err != nil {
					failures.Add(1)
					t.Log(err)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	cfgs := []Config{
		{Backends: backends[1:], Balance: LeastConnections},
		{Backends: backends[:1]},
		{Backends: backends, IdleTimeout: Duration(time.Hour)},
	}
	for i := range 30 {
		cfg := cfgs[i%len(cfgs)]
		cfg.Listen = []string{"127.0.0.1:0"}
		cfg.HealthCheck.Type = CheckNone
		cfg.DrainPeriod = Duration(time.Hour)
		if err := p.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failures.Load() > 0 || ok.Load() == 0 {
		t.Errorf("%d client failures, %d successes during reloads", failures.Load(), ok.Load())
	}
	if err := roundTrip(long, "still here"); err != nil {
		t.Errorf("long-lived connection across reloads: %v", err)
	}
}

func TestShutdown(t *testing.T) {
	p := startProxy(t, Config{Backends: []string{echoServer(t)}}, Options{})
	c := dial(t, p.addr)
	if err := roundTrip(c, "a"); err != nil {
		t.Fatal(err)
	}
	// Graceful: Shutdown waits while the connection is open and returns
	// once the client finishes.
	done := make(chan error, 1)
	go func() { done <- p.Shutdown(context.Background()) }()
	waitFor(t, "listener closed", func() bool {
		c, err := net.Dial("tcp", p.addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if err := roundTrip(c, "still served"); err != nil {
		t.Fatalf("open connection during graceful shutdown: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a connection open", err)
	default:
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Deadline: the remaining connections are closed.
	p2 := startProxy(t, Config{Backends: []string{echoServer(t)}}, Options{})
	c2 := dial(t, p2.addr)
	if err := roundTrip(c2, "b"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := p2.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown at the deadline: %v", err)
	}
	if _, err := io.ReadAll(c2); err != nil {
		t.Errorf("closed at shutdown: %v", err)
	}
}

func TestAdminStatusAndMetrics(t *testing.T) {
	be := echoServer(t)
	p := startProxy(t, Config{Backends: []string{be}}, Options{})
	c := dial(t, p.addr)
	if err := roundTrip(c, "hello"); err != nil {
		t.Fatal(err)
	}
	// The counters are bumped right after each burst: wait for them.
	waitFor(t, "bytes counted", func() bool {
		b := backendStatus(p.Proxy, be)
		return b.BytesIn == 5 && b.BytesOut == 5
	})
	h := p.AdminHandler(p.reg)
	get := func(path string) *httptest.ResponseRecorder {
		r := httptest.NewRecorder()
		h.ServeHTTP(r, httptest.NewRequest("GET", path, nil))
		return r
	}
	var st struct {
		Listeners []string `json:"listeners"`
		Backends  []struct {
			Address  string `json:"address"`
			Healthy  bool   `json:"healthy"`
			Suspect  bool   `json:"suspect"`
			Active   int64  `json:"active"`
			Total    uint64 `json:"total"`
			BytesIn  uint64 `json:"bytes_in"`
			BytesOut uint64 `json:"bytes_out"`
		} `json:"backends"`
		FailOpen *bool `json:"fail_open"`
	}
	if err := json.Unmarshal(get("/status").Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Listeners) != 1 || len(st.Backends) != 1 || st.FailOpen == nil || *st.FailOpen {
		t.Fatalf("status %+v", st)
	}
	if b := st.Backends[0]; b.Address != be || !b.Healthy || b.Active != 1 || b.Total != 1 || b.BytesIn != 5 || b.BytesOut != 5 {
		t.Errorf("backend status %+v", b)
	}
	if r := get("/healthz"); r.Code != 200 {
		t.Errorf("/healthz %d", r.Code)
	}
	if r := get("/readyz"); r.Code != 200 {
		t.Errorf("/readyz %d", r.Code)
	}
	m := get("/metrics").Body.String()
	for _, want := range []string{
		"nlb_proxy_active_connections 1",
		"nlb_proxy_connections_total 1",
		`nlb_proxy_bytes_total{direction="in"} 5`,
		fmt.Sprintf(`nlb_proxy_backend_healthy{backend=%q} 1`, be),
		fmt.Sprintf(`nlb_proxy_dial_failures_total{backend=%q} 0`, be),
		"nlb_proxy_limit_reached_total 0",
		"nlb_proxy_fail_open 0",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestShutdownDeadlineIdle: at the shutdown deadline, idle connections (an
// idle kubelet watch, say) are closed and released, and Shutdown returns.
// Closing parked connections used to re-enter the proxy's lock and hang.
func TestShutdownDeadlineIdle(t *testing.T) {
	p := startProxy(t, Config{Backends: []string{echoServer(t)}}, Options{})
	c := dial(t, p.addr)
	if err := roundTrip(c, "a"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Shutdown(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown at the deadline: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown hung with an idle connection open")
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Errorf("closed at shutdown: %v", err)
	}
}

// TestDrainUnhealthyNoStagger: the connections of a backend that failed its
// checks are closed together at the end of the drain period, whatever
// DrainStagger says; the stagger is for removing working backends.
func TestDrainUnhealthyNoStagger(t *testing.T) {
	a, b := echoServer(t), echoServer(t)
	s := newScripted()
	cfg := Config{Backends: []string{a, b}, HealthCheck: fastChecks(), Balance: RoundRobin,
		DrainPeriod: Duration(time.Millisecond), DrainStagger: Duration(time.Hour)}
	p := startProxy(t, cfg, Options{Check: s.check})
	var conns []*net.TCPConn
	for range 6 {
		c := dial(t, p.addr)
		if err := roundTrip(c, "z"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	s.set(a, true)
	// With an hour of stagger, the second and third would wait 30 and 60
	// minutes.
	waitFor(t, "all of a's connections closed", func() bool { return backendStatus(p.Proxy, a).Active == 0 })
	// The drain counts a close after handing it to the loop: wait for it.
	waitFor(t, "three drained", func() bool { return p.drained.Load() >= 3 })
	if p.drained.Load() != 3 {
		t.Errorf("%d drained, want 3", p.drained.Load())
	}
	if backendStatus(p.Proxy, b).Active != 3 {
		t.Errorf("b's connections: %+v, want 3 untouched", backendStatus(p.Proxy, b))
	}
}

// syncLog collects log output written from several goroutines.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDrainDialCompletingAfterRemoval: a connection whose dial was in
// flight when its backend was removed is drained like the backend's other
// connections (it used to stay, uncounted by any drain, for ever).
func TestDrainDialCompletingAfterRemoval(t *testing.T) {
	a, b := echoServer(t), echoServer(t)
	release := make(chan struct{})
	dialing := make(chan struct{}, 1)
	d := func(ctx context.Context, addr string) (*net.TCPConn, error) {
		if addr == a {
			dialing <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		var nd net.Dialer
		c, err := nd.DialContext(context.WithoutCancel(ctx), "tcp", addr)
		if err != nil {
			return nil, err
		}
		return c.(*net.TCPConn), nil
	}
	p := startProxy(t, Config{Backends: []string{a}, ConnectTimeout: Duration(time.Minute),
		DrainPeriod: Duration(10 * time.Millisecond), DrainStagger: Duration(time.Millisecond)}, Options{Dial: d})
	c := dial(t, p.addr)
	select {
	case <-dialing:
	case <-time.After(10 * time.Second):
		t.Fatal("no dial to a")
	}
	p.SetBackends([]string{b}) // a has no connection yet: nothing to drain
	close(release)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// The connection reaches a, then is closed by the drain.
	if err := roundTrip(c, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection to the removed backend stayed open: %v", err)
	}
	waitFor(t, "a forgotten", func() bool { return backendStatus(p.Proxy, a).Address == "" && p.Status().Active == 0 })
}

// TestBadCheckFiles: a CA or client certificate file that cannot be read
// fails Listen (and a Reload, which then keeps the running configuration)
// with an error naming healthCheck, instead of leaving the backends
// unchecked and healthy for ever.
func TestBadCheckFiles(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing-ca.crt")
	cfg := Config{Listen: []string{"127.0.0.1:0"}, Backends: []string{echoServer(t)},
		HealthCheck: HealthCheck{Type: CheckHTTPS, CAFile: missing}}
	p, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("New (no I/O) = %v", err)
	}
	err = p.Listen(context.Background())
	if err == nil {
		p.Shutdown(context.Background())
		t.Fatal("Listen accepted an unreadable caFile")
	}
	if !strings.Contains(err.Error(), "healthCheck") || !strings.Contains(err.Error(), "missing-ca.crt") {
		t.Errorf("Listen error %q does not name healthCheck and the file", err)
	}
	if len(p.Addrs()) != 0 {
		t.Errorf("bound %v after the error", p.Addrs())
	}
	if err := cfg.LoadFiles(); err == nil || !strings.Contains(err.Error(), "missing-ca.crt") {
		t.Errorf("LoadFiles = %v, want the missing CA file", err)
	}

	tp := startProxy(t, Config{Backends: []string{echoServer(t)}, HealthCheck: HealthCheck{Type: CheckTCP}}, Options{})
	next := *tp.cfg.Load()
	next.Backends = []string{echoServer(t)}
	next.HealthCheck = HealthCheck{Type: CheckTLS, CertFile: missing, KeyFile: missing}
	if err := tp.Reload(next); err == nil || !strings.Contains(err.Error(), "healthCheck") {
		t.Errorf("Reload with an unreadable certFile = %v", err)
	}
	if got := tp.cfg.Load(); got.HealthCheck.Type != CheckTCP || got.Backends[0] == next.Backends[0] {
		t.Errorf("a failed Reload changed the configuration: %+v", got)
	}
}

// TestCloseAccepted: the connections accepted on the given addresses are
// closed (the client sees the end), the others keep working.
func TestCloseAccepted(t *testing.T) {
	p := startProxy(t, Config{Listen: []string{"127.0.0.1:0", "127.0.0.2:0"}, Backends: []string{echoServer(t)}}, Options{})
	addrs := p.Addrs()
	if len(addrs) != 2 {
		t.Fatalf("listening on %v", addrs)
	}
	keep, gone := dial(t, addrs[0].String()), dial(t, addrs[1].String())
	for _, c := range []net.Conn{keep, gone} {
		if err := roundTrip(c, "hello"); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.CloseAccepted(nil); n != 0 {
		t.Errorf("CloseAccepted(nil) closed %d", n)
	}
	if n := p.CloseAccepted([]netip.Addr{netip.MustParseAddr("127.0.0.2")}); n != 1 {
		t.Errorf("CloseAccepted(127.0.0.2) closed %d, want 1", n)
	}
	if _, err := gone.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the connection to 127.0.0.2 is still open: %v", err)
	}
	if err := roundTrip(keep, "still here"); err != nil {
		t.Errorf("the connection to 127.0.0.1: %v", err)
	}
	waitFor(t, "one connection left", func() bool { return p.Status().Active == 1 })
}

// TestShutdownWhileAccepting: a loop accepting holds the listener's
// descriptor (inside RawConn.Control) while it dials the backend and
// registers the connection under p.mu. Shutdown once closed the listeners
// while holding p.mu, and the two waited for each other forever (seen in
// CI: `nlb client` hung on SIGTERM). The test does what the loop does,
// inside the listener's Control: it waits until Shutdown has begun, and
// takes p.mu (after Shutdown took it, if Shutdown holds it across Close).
func TestShutdownWhileAccepting(t *testing.T) {
	p := startProxy(t, Config{Backends: []string{echoServer(t)}}, Options{})
	rc, err := p.listeners[0].SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	shut := make(chan error, 1)
	locked := make(chan struct{})
	err = rc.Control(func(uintptr) {
		go func() { shut <- p.Shutdown(context.Background()) }()
		waitFor(t, "Shutdown begun", p.closing.Load)
		// Give Shutdown time to take p.mu if it keeps it across the
		// listeners' Close (bounded: it may never hold it long).
		for range 200 {
			if !p.mu.TryLock() {
				break
			}
			p.mu.Unlock()
			time.Sleep(time.Millisecond)
		}
		go func() {
			p.mu.Lock()
			p.mu.Unlock()
			close(locked)
		}()
		select {
		case <-locked:
		case <-time.After(30 * time.Second):
			t.Errorf("a loop inside the listener's Control cannot take p.mu while Shutdown closes the listener: deadlock")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		return // Shutdown stays blocked; the process ends with the test binary
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}
