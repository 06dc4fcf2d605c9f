package cplb

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/vrrp"
)

// TestStopOrder: on shutdown the VRRP instances stop first (the VIPs stay
// steered into the proxy during the handover), the steering goes only
// after every instance has returned, then the connections accepted on the
// VIPs are closed, then the proxy drains. Under synctest, "nothing else
// happened yet" is checked when every goroutine is blocked.
func TestStopOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		a := newFakeVRRP(rec, "a", 200, "192.0.2.100/24")
		b := newFakeVRRP(rec, "b", 150, "192.0.2.101/24", "192.0.2.102/24")
		a.release, b.release = make(chan struct{}), make(chan struct{})
		st := &fakeSteering{rec: rec}
		c := newWithFakeProxy(t, Config{Controller: ctlConfig(true, 0), VRRP: []VRRP{a, b}, Attach: attachFake(st, nil),
			HealthTarget: "192.0.2.11:6443", Probe: func(context.Context, string) error { return nil }, Logger: discard()},
			&fakeProxy{rec: rec, ready: true})
		ctx, cancel := context.WithCancel(t.Context())
		if err := c.Listen(ctx); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		synctest.Wait()
		attached := []string{"steering attached [192.0.2.100 192.0.2.101 192.0.2.102]"}
		if got := rec.list(); !slices.Equal(got, attached) {
			t.Fatalf("before the stop: %q, want %q", got, attached)
		}

		cancel()
		synctest.Wait() // both instances hand over: nothing else may move
		if got := rec.list(); !slices.Equal(got, attached) {
			t.Fatalf("while the instances hand over: %q, want nothing new", got)
		}
		close(b.release)
		synctest.Wait()
		want := append(slices.Clone(attached), "vrrp b returned")
		if got := rec.list(); !slices.Equal(got, want) {
			t.Fatalf("with instance a still handing over: %q, want %q", got, want)
		}
		close(a.release)
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		want = append(want, "vrrp a returned", "steering removed",
			"close accepted [192.0.2.100 192.0.2.101 192.0.2.102]", "proxy draining")
		if got := rec.list(); !slices.Equal(got, want) {
			t.Errorf("stop order:\n got  %q\n want %q", got, want)
		}
		// Close after Run (the deferred one of nlb) removes nothing twice.
		if err := c.Close(); err != nil || st.closes() != 2 {
			t.Errorf("Close after Run: %v, %d Close calls of the steering (want 2, idempotent)", err, st.closes())
		}
	})
}

// echoServer accepts on 127.0.0.1 and echoes until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// echo sends one byte through c and reads it back; an error means the
// connection no longer carries data.
func echo(c net.Conn) error {
	// A safety bound only: the echo or the close arrive at once.
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte{'x'}); err != nil {
		return err
	}
	var b [1]byte
	_, err := io.ReadFull(c, b[:])
	return err
}

// TestStopOrderRealProxy: the same order seen from clients of a real
// lb.Proxy on loopback. 127.0.0.2 plays the VIP, 127.0.0.1 the node's own
// address. The VIP connection is still served when the steering goes, is
// closed right after, and the node connection is left to drain: Run
// returns when its client closes it.
func TestStopOrderRealProxy(t *testing.T) {
	backend := echoServer(t)
	p, err := lb.New(lb.Config{Listen: []string{"127.0.0.1:0", "127.0.0.2:0"}, Backends: []string{backend}},
		lb.Options{Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	v := newFakeVRRP(rec, "k0s-vip-0", 200, "127.0.0.2/32")
	var vipConn, nodeConn net.Conn
	vipServedAtRemoval := errors.New("steering not removed")
	removed := make(chan struct{})
	st := &fakeSteering{rec: rec, onClose: func() { vipServedAtRemoval = echo(vipConn); close(removed) }}
	c, err := New(Config{Controller: ctlConfig(false, 0), VRRP: []VRRP{v}, Proxy: p, Attach: attachFake(st, nil), Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := c.Listen(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var nodeAddr, vipAddr string
	for _, a := range p.Addrs() {
		if strings.HasPrefix(a.String(), "127.0.0.2:") {
			vipAddr = a.String()
		} else {
			nodeAddr = a.String()
		}
	}
	if vipConn, err = net.Dial("tcp", vipAddr); err != nil {
		t.Fatal(err)
	}
	defer vipConn.Close()
	if nodeConn, err = net.Dial("tcp", nodeAddr); err != nil {
		t.Fatal(err)
	}
	defer nodeConn.Close()
	for _, conn := range []net.Conn{vipConn, nodeConn} {
		if err := echo(conn); err != nil {
			t.Fatalf("through the proxy before the stop: %v", err)
		}
	}

	cancel()
	select {
	case <-removed:
	case <-time.After(time.Minute): // a safety bound, not a measure
		t.Fatal("the steering was not removed after the stop")
	}
	if vipServedAtRemoval != nil {
		t.Errorf("the VIP connection was no longer served when the steering was removed: %v", vipServedAtRemoval)
	}
	// The VIP connection ends (EOF or a reset) once the steering is gone.
	_ = vipConn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := vipConn.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		t.Fatalf("VIP connection after the stop: read %d, %v; want it closed by the proxy", n, err)
	}
	// The node's own address is draining: still served.
	if err := echo(nodeConn); err != nil {
		t.Fatalf("the node connection after the VIP connections were closed: %v; want it left to drain", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) while a node connection was still open", err)
	default:
	}
	nodeConn.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(time.Minute): // a safety bound, not a measure
		t.Fatal("Run did not return after the last connection closed")
	}
	if got, want := rec.list(), []string{"steering attached [127.0.0.2]", "vrrp k0s-vip-0 returned", "steering removed"}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestBeforeRemoveClosesVIPConnections: after Listen, an instance about to
// remove its VIPs has the proxy close the connections accepted on them
// (and only on them) while the VIP can still carry the FIN.
func TestBeforeRemoveClosesVIPConnections(t *testing.T) {
	rec := &recorder{}
	a := newFakeVRRP(rec, "a", 200, "192.0.2.100/24")
	b := newFakeVRRP(rec, "b", 200, "192.0.2.101/24")
	c := newWithFakeProxy(t, Config{Controller: ctlConfig(false, 0), VRRP: []VRRP{a, b},
		Attach: attachFake(&fakeSteering{rec: rec}, nil), Logger: discard()}, &fakeProxy{rec: rec})
	b.removing() // before Listen: nothing to close
	if err := c.Listen(t.Context()); err != nil {
		t.Fatal(err)
	}
	b.removing()
	a.removing()
	want := []string{"steering attached [192.0.2.100 192.0.2.101]", "close accepted [192.0.2.101]", "close accepted [192.0.2.100]"}
	if got := rec.list(); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestOnePartFailingStopsAll: an instance that fails, or the proxy, stops
// every other part (in the usual order), and Run returns the error.
func TestOnePartFailingStopsAll(t *testing.T) {
	for _, tc := range []struct {
		name      string
		vrrpErr   error
		serveErr  error
		want      string
		wantOrder []string
	}{{
		name: "vrrp instance", vrrpErr: errors.New("socket: read: boom"),
		want:      "controller: vrrp instance a: socket: read: boom",
		wantOrder: []string{"vrrp a returned", "vrrp b returned", "steering removed", "close accepted [192.0.2.100 192.0.2.101]", "proxy draining"},
	}, {
		name: "proxy", serveErr: errors.New("lb: epoll: boom"),
		want:      "controller: proxy: lb: epoll: boom",
		wantOrder: []string{"vrrp a returned", "vrrp b returned", "steering removed", "close accepted [192.0.2.100 192.0.2.101]"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				a := newFakeVRRP(rec, "a", 200, "192.0.2.100/24")
				a.err = tc.vrrpErr
				b := newFakeVRRP(rec, "b", 200, "192.0.2.101/24")
				c := newWithFakeProxy(t, Config{Controller: ctlConfig(false, 0), VRRP: []VRRP{a, b},
					Attach: attachFake(&fakeSteering{rec: rec}, nil), Logger: discard()}, &fakeProxy{rec: rec, serveErr: tc.serveErr})
				if err := c.Listen(t.Context()); err != nil {
					t.Fatal(err)
				}
				rec.events = nil
				err := c.Run(t.Context()) // never cancelled: only the failure stops it
				if err == nil || err.Error() != tc.want {
					t.Errorf("Run = %v, want %s", err, tc.want)
				}
				if !a.hasReturned() || !b.hasReturned() {
					t.Errorf("instances returned: a %v, b %v", a.hasReturned(), b.hasReturned())
				}
				got := rec.list()
				slices.Sort(got[:2]) // the instances stop in any order
				if !slices.Equal(got, tc.wantOrder) {
					t.Errorf("order %q, want %q", got, tc.wantOrder)
				}
			})
		})
	}
}

// TestListenFailure: a proxy that cannot bind gets no steering; steering
// that cannot be attached leaves the proxy shut down; the errors are the
// parts' own, so that nlb can name the flag.
func TestListenFailure(t *testing.T) {
	listenErr := &lb.ListenError{Addr: "127.0.0.1:6444", Err: errors.New("bind: address already in use")}
	attachErr := errors.New("steering: sklookup: not on proxy port")
	for _, tc := range []struct {
		name       string
		listen     error
		attach     error
		want       error
		wantEvents []string
	}{
		{"bind", listenErr, nil, listenErr, nil},
		{"steering", nil, attachErr, attachErr, []string{"proxy shut down"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			st := &fakeSteering{rec: rec}
			c := newWithFakeProxy(t, Config{Controller: ctlConfig(false, 0), VRRP: []VRRP{newFakeVRRP(rec, "a", 200, "192.0.2.100/24")},
				Attach: attachFake(st, tc.attach), Logger: discard()}, &fakeProxy{rec: rec, listenErr: tc.listen})
			if err := c.Listen(t.Context()); !errors.Is(err, tc.want) {
				t.Errorf("Listen = %v, want %v", err, tc.want)
			}
			if got := rec.list(); !slices.Equal(got, tc.wantEvents) {
				t.Errorf("events %q, want %q", got, tc.wantEvents)
			}
			if err := c.Close(); err != nil || st.closes() != 0 || c.SteeringMode() != "off" {
				t.Errorf("Close: %v, steering closed %d times, mode %q", err, st.closes(), c.SteeringMode())
			}
		})
	}
}

// TestStatus: /status as nlb status, the demo and the labs read it.
func TestStatus(t *testing.T) {
	rec := &recorder{}
	cet := time.FixedZone("CET", 3600)
	at := time.Date(2026, 11, 21, 13, 0, 0, 0, cet)
	a := newFakeVRRP(rec, "k0s-vip-0", 200, "192.0.2.100/24")
	a.status = vrrp.InstanceStatus{Name: "k0s-vip-0", VRID: 51, State: vrrp.Master, Priority: 200, VIPsConfigured: true,
		Master: netip.MustParseAddr("192.0.2.11"), Transitions: 2, LastTransition: at, LastReason: "master down timer expired",
		Recent: []vrrp.Transition{
			{At: at.Add(-time.Minute), From: vrrp.Initialize, To: vrrp.Backup, Reason: "startup"},
			{At: at, From: vrrp.Backup, To: vrrp.Master, Reason: "master down timer expired"},
		}}
	proxyStatus := lb.Status{Listeners: []string{"[::]:6444"}, Active: 2, Backends: []lb.BackendStatus{{Address: "192.0.2.11:6443", Healthy: true}}}
	c := newWithFakeProxy(t, Config{Controller: ctlConfig(true, -20), VRRP: []VRRP{a}, Attach: attachFake(&fakeSteering{rec: rec}, nil),
		HealthTarget: "192.0.2.11:6443", Probe: func(context.Context, string) error { return nil }, Logger: discard()},
		&fakeProxy{rec: rec, ready: true, status: proxyStatus})
	before := c.Status()
	if before.Steering.Mode != "off" {
		t.Errorf("steering mode before Listen %q, want off", before.Steering.Mode)
	}
	if err := c.Listen(t.Context()); err != nil {
		t.Fatal(err)
	}
	c.health.observe(at, errors.New("API server 192.0.2.11:6443: GET /readyz: 500"))

	w := httptest.NewRecorder()
	c.Handlers()["/status"].ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/status", nil))
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	// The names nlb status, the demo, the labs and chaoslab read.
	for _, key := range []string{`"instances":`, `"name":`, `"state":`, `"priority":`, `"master":`, `"vips":`, `"vips_configured":`,
		`"recent_transitions":`, `"at":`, `"from":`, `"to":`, `"reason":`, `"health":`, `"target":`, `"interval":`, `"tracked":`,
		`"healthy":`, `"last_error":`, `"steering":`, `"mode":`, `"port":`, `"proxy_port":`, `"proxy":`, `"backends":`} {
		if !strings.Contains(w.Body.String(), key) {
			t.Errorf("/status lacks %s:\n%s", key, w.Body)
		}
	}
	var got Status
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, w.Body)
	}
	if len(got.Instances) != 1 {
		t.Fatalf("instances: %+v", got.Instances)
	}
	in := got.Instances[0]
	if in.Name != "k0s-vip-0" || in.VRID != 51 || in.Interface != "eth1" || in.State != "Master" || in.Master != "192.0.2.11" ||
		!slices.Equal(in.VIPs, []string{"192.0.2.100/24"}) || !in.VIPsConfigured || in.LastTransition != "2026-11-21T12:00:00Z" {
		t.Errorf("instance %+v", in.Status)
	}
	wantRecent := []TransitionStatus{
		{At: "2026-11-21T11:59:00Z", From: "Initialize", To: "Backup", Reason: "startup"},
		{At: "2026-11-21T12:00:00Z", From: "Backup", To: "Master", Reason: "master down timer expired"},
	}
	if !slices.Equal(in.Recent, wantRecent) {
		t.Errorf("recent transitions %+v, want %+v", in.Recent, wantRecent)
	}
	h := got.Health
	if h == nil || h.Target != "192.0.2.11:6443" || h.Interval != "500ms" || h.Fall != 2 || h.Rise != 3 || h.Weight != -20 ||
		!h.Tracked.Healthy || h.Tracked.Streak != 1 || h.Tracked.LastError == "" {
		t.Errorf("health %+v", h)
	}
	wantSteer := SteeringStatus{Mode: "sklookup", VIPs: []string{"192.0.2.100"}, Port: 6443, ProxyPort: 6444}
	if s := got.Steering; s.Mode != wantSteer.Mode || !slices.Equal(s.VIPs, wantSteer.VIPs) || s.Port != 6443 || s.ProxyPort != 6444 {
		t.Errorf("steering %+v, want %+v", s, wantSteer)
	}
	if got.Proxy == nil || got.Proxy.Active != 2 || len(got.Proxy.Backends) != 1 {
		t.Errorf("proxy %+v", got.Proxy)
	}

	// VIPs only: no proxy, steering off, no health.
	off := ctlConfig(false, 0)
	off.DisableLoadBalancer = true
	c2, err := New(Config{Controller: off, VRRP: []VRRP{a}, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Listen(t.Context()); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(c2.Status())
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`"health"`, `"proxy"`, `"proxy_port"`, `"vips":["192.0.2.100"]`} {
		if strings.Contains(string(b), bad) {
			t.Errorf("VIPs-only status has %s: %s", bad, b)
		}
	}
	if !strings.Contains(string(b), `"steering":{"mode":"off","port":6443}`) {
		t.Errorf("VIPs-only steering: %s", b)
	}
}

// TestReady: /readyz is the health tracking's state times the proxy's
// readiness, where a proxy failing open to its backends counts as serving.
func TestReady(t *testing.T) {
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 6444}
	for _, tc := range []struct {
		name      string
		unhealthy bool
		proxy     *fakeProxy // nil: disableLoadBalancer
		want      bool
	}{
		{"healthy, proxy ready", false, &fakeProxy{ready: true}, true},
		{"unhealthy, proxy ready", true, &fakeProxy{ready: true}, false},
		{"healthy, proxy without a healthy backend", false, &fakeProxy{addrs: []net.Addr{addr}}, false},
		{"healthy, proxy failing open", false, &fakeProxy{addrs: []net.Addr{addr}, status: lb.Status{FailOpen: true}}, true},
		{"healthy, proxy failing open but not listening", false, &fakeProxy{status: lb.Status{FailOpen: true}}, false},
		{"unhealthy, proxy failing open", true, &fakeProxy{addrs: []net.Addr{addr}, status: lb.Status{FailOpen: true}}, false},
		{"healthy, VIPs only", false, nil, true},
		{"unhealthy, VIPs only", true, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			ctl := ctlConfig(true, 0)
			ctl.DisableLoadBalancer = tc.proxy == nil
			c, err := New(Config{Controller: ctl, VRRP: []VRRP{newFakeVRRP(rec, "a", 200, "192.0.2.100/24")},
				Probe: func(context.Context, string) error { return nil }, Logger: discard()})
			if err != nil {
				t.Fatal(err)
			}
			if tc.proxy != nil {
				tc.proxy.rec = rec
				c.proxy = tc.proxy
			}
			if tc.unhealthy {
				for range ctl.Health.Fall {
					c.health.observe(time.Now(), errBoom)
				}
			}
			if got := c.Ready(); got != tc.want {
				t.Errorf("Ready() = %v, want %v", got, tc.want)
			}
			w := httptest.NewRecorder()
			c.Handlers()["/readyz"].ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if wantCode := map[bool]int{true: http.StatusOK, false: http.StatusServiceUnavailable}[tc.want]; w.Code != wantCode {
				t.Errorf("/readyz %d, want %d", w.Code, wantCode)
			}
		})
	}
}

// TestHealthFeed: after fall failures every instance gets the tracker's
// priority (0, or base minus weight), after rise successes its base again;
// the probe's target, a proxy that does not serve, and the metrics.
func TestHealthFeed(t *testing.T) {
	for _, tc := range []struct {
		name           string
		weight         int
		down, downB    uint8
		upA, upB       uint8
		proxyServesNot bool
	}{
		{name: "give up mastership", weight: 0, down: 0, downB: 0, upA: 200, upB: 150},
		{name: "lower by weight", weight: -20, down: 180, downB: 130, upA: 200, upB: 150},
		{name: "the proxy fails the check", weight: 0, down: 0, downB: 0, upA: 200, upB: 150, proxyServesNot: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			a := newFakeVRRP(rec, "a", 200, "192.0.2.100/24")
			b := newFakeVRRP(rec, "b", 150, "192.0.2.101/24")
			var probed []string
			probeErr := errors.New("GET /readyz: 500")
			failing := true
			reg := prometheus.NewRegistry()
			c := newWithFakeProxy(t, Config{Controller: ctlConfig(true, tc.weight), VRRP: []VRRP{a, b}, HealthTarget: "192.0.2.11:6443",
				Probe: func(ctx context.Context, addr string) error {
					if _, ok := ctx.Deadline(); !ok {
						t.Error("probe without the check timeout")
					}
					probed = append(probed, addr)
					if failing && !tc.proxyServesNot {
						return probeErr
					}
					return nil
				}, Logger: discard(), Registerer: reg}, &fakeProxy{rec: rec, ready: true})
			if tc.proxyServesNot {
				c.proxy = &fakeProxy{rec: rec} // listening nowhere, no healthy backend
			}
			now := time.Now()
			check := func() {
				now = now.Add(500 * time.Millisecond)
				c.health.observe(now, c.health.once(t.Context()))
			}
			check() // fall is 2: one failure changes nothing
			if len(a.prios()) != 0 || len(b.prios()) != 0 {
				t.Fatalf("priorities set after one failure: a %v, b %v", a.prios(), b.prios())
			}
			check()
			if !slices.Equal(a.prios(), []uint8{tc.down}) || !slices.Equal(b.prios(), []uint8{tc.downB}) {
				t.Fatalf("after fall failures: a %v, b %v; want [%d] and [%d]", a.prios(), b.prios(), tc.down, tc.downB)
			}
			if got := testutil.ToFloat64(c.health.healthG); got != 0 {
				t.Errorf("nlb_controller_healthy %v after the fall, want 0", got)
			}
			if tc.proxyServesNot {
				if hs := c.health.status(); !strings.Contains(hs.Tracked.LastError, "proxy: not listening or no backend") {
					t.Errorf("last error %q, want the proxy's", hs.Tracked.LastError)
				}
				c.proxy = &fakeProxy{rec: rec, ready: true}
			}
			failing = false
			for range 3 { // rise
				check()
			}
			if !slices.Equal(a.prios(), []uint8{tc.down, tc.upA}) || !slices.Equal(b.prios(), []uint8{tc.downB, tc.upB}) {
				t.Fatalf("after rise successes: a %v, b %v", a.prios(), b.prios())
			}
			if got := testutil.ToFloat64(c.health.healthG); got != 1 {
				t.Errorf("nlb_controller_healthy %v after the rise, want 1", got)
			}
			if got := testutil.ToFloat64(c.health.checks.WithLabelValues("fail")); got != 2 {
				t.Errorf("failed checks counted %v, want 2", got)
			}
			if got := testutil.ToFloat64(c.health.checks.WithLabelValues("ok")); got != 3 {
				t.Errorf("good checks counted %v, want 3", got)
			}
			for _, p := range probed {
				if p != "192.0.2.11:6443" {
					t.Errorf("probed %q, want the target", p)
				}
			}
			if n, err := testutil.GatherAndCount(reg, "nlb_controller_health_checks_total", "nlb_controller_healthy"); err != nil || n != 3 {
				t.Errorf("registered health series: %d, %v; want 3", n, err)
			}
		})
	}
}

// TestHealthRunsUntilCancelled: the feed checks at once and then every
// interval, and stops with Run.
func TestHealthRunsUntilCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		a := newFakeVRRP(rec, "a", 200, "192.0.2.100/24")
		var probes atomic.Int32
		off := ctlConfig(true, 0)
		off.DisableLoadBalancer = true
		c, err := New(Config{Controller: off, VRRP: []VRRP{a}, HealthTarget: "192.0.2.11:6443",
			Probe: func(context.Context, string) error { probes.Add(1); return errBoom }, Logger: discard()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		synctest.Wait()
		if n := probes.Load(); n != 1 {
			t.Fatalf("%d checks at start, want 1", n)
		}
		time.Sleep(off.Health.Interval) // fake time: exactly one interval
		synctest.Wait()
		if n := probes.Load(); n != 2 || !slices.Equal(a.prios(), []uint8{0}) {
			t.Fatalf("after one interval: %d checks, priorities %v; want 2 and [0]", n, a.prios())
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestSteeringMetrics: the sk_lookup counters are exported once steering
// is attached, and read when scraped.
func TestSteeringMetrics(t *testing.T) {
	rec := &recorder{}
	reg := prometheus.NewRegistry()
	c := newWithFakeProxy(t, Config{Controller: ctlConfig(false, 0), VRRP: []VRRP{newFakeVRRP(rec, "a", 200, "192.0.2.100/24")},
		Attach: attachFake(&fakeSteering{rec: rec}, nil), Logger: discard(), Registerer: reg}, &fakeProxy{rec: rec})
	if err := c.Listen(t.Context()); err != nil {
		t.Fatal(err)
	}
	const want = `
# HELP nlb_steering_connections_total Connections to VIP:apiPort seen by the sk_lookup program: steered into the proxy, no_listener (left to the regular lookup) or assign_failed.
# TYPE nlb_steering_connections_total counter
nlb_steering_connections_total{result="assign_failed"} 0
nlb_steering_connections_total{result="no_listener"} 1
nlb_steering_connections_total{result="steered"} 7
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "nlb_steering_connections_total"); err != nil {
		t.Error(err)
	}
}

// TestNew: what New refuses.
func TestNew(t *testing.T) {
	rec := &recorder{}
	v := []VRRP{newFakeVRRP(rec, "a", 200, "192.0.2.100/24")}
	p, err := lb.New(lb.Config{Listen: []string{"127.0.0.1:0"}, Backends: []string{"127.0.0.1:1"}}, lb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no instance", Config{Controller: ctlConfig(false, 0)}, "no VRRP instance"},
		{"proxy without steering", Config{Controller: ctlConfig(false, 0), VRRP: v, Proxy: p}, "steering"},
		{"health without probe", Config{Controller: ctlConfig(true, 0), VRRP: v}, "probe"},
		{"bad tracking", Config{Controller: config.Controller{Health: config.Health{Enabled: true, Interval: time.Second, Fall: 0, Rise: 1}},
			VRRP: v, Probe: func(context.Context, string) error { return nil }}, "fall"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.want)) {
				t.Errorf("New = %v, want an error about %s", err, tc.want)
			}
		})
	}
}

func TestProxyConfig(t *testing.T) {
	ctl := ctlConfig(false, 0)
	for _, tc := range []struct {
		name             string
		listen, backends []string
		discovering      bool
		wantL, wantB     []string
	}{
		{"defaults", nil, nil, false, []string{":6444"}, []string{"127.0.0.1:6443"}},
		{"discovering", nil, nil, true, []string{":6444"}, nil},
		{"given", []string{"192.0.2.11:7000"}, []string{"192.0.2.12:6443"}, true, []string{"192.0.2.11:7000"}, []string{"192.0.2.12:6443"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ProxyConfig(ctl, tc.listen, tc.backends, tc.discovering)
			if !slices.Equal(got.Listen, tc.wantL) || !slices.Equal(got.Backends, tc.wantB) {
				t.Errorf("listen %v backends %v, want %v %v", got.Listen, got.Backends, tc.wantL, tc.wantB)
			}
		})
	}
}

func TestLocalAPI(t *testing.T) {
	for _, tc := range []struct {
		name, addr, want, wantErr string
	}{
		{"flag", "192.0.2.11:6443", "192.0.2.11:6443", ""},
		{"default", "", "127.0.0.1:6443", ""},
		{"not host:port", "192.0.2.11", "", `--local-api-server "192.0.2.11"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := LocalAPI(tc.addr, nil, "", 6443)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("LocalAPI = %q, %v; want an error with %s", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("LocalAPI = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestDialProbe(t *testing.T) {
	if err := DialProbe(t.Context(), echoServer(t)); err != nil {
		t.Errorf("DialProbe of a listening server: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := DialProbe(t.Context(), addr); err == nil {
		t.Errorf("DialProbe of a closed port succeeded")
	}
}
