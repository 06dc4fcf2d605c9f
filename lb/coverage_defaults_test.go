package lb

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestDefaultsAsSpecified: the defaults the proxy promises: listen on
// :6444, 250ms connect timeout, round robin, GET /readyz checks that find a
// dead backend within 2 s.
func TestDefaultsAsSpecified(t *testing.T) {
	if DefaultListen != ":6444" {
		t.Errorf("DefaultListen %q, want :6444", DefaultListen)
	}
	var c Config
	c.SetDefaults()
	if !slices.Equal(c.Listen, []string{":6444"}) {
		t.Errorf("listen defaults to %v, want [:6444]", c.Listen)
	}
	if got := time.Duration(c.ConnectTimeout); got != 250*time.Millisecond {
		t.Errorf("connectTimeout defaults to %v, want 250ms", got)
	}
	if c.Balance != RoundRobin {
		t.Errorf("balance defaults to %q, want %q", c.Balance, RoundRobin)
	}
	if got := time.Duration(c.DialBudget); got != 3*time.Second {
		t.Errorf("dialBudget defaults to %v, want 3s (a connect burst waits, as HAProxy's timeout connect)", got)
	}
	h := c.HealthCheck
	if h.Type != CheckTCP {
		t.Errorf("healthCheck.type defaults to %q, want %q", h.Type, CheckTCP)
	}
	if h.Path != "/readyz" {
		t.Errorf("healthCheck.path defaults to %q, want /readyz", h.Path)
	}
	// A backend that dies right after a passing check fails the next Fall
	// checks, the last of which ends at most Timeout after it starts.
	detect := time.Duration(h.Fall)*time.Duration(h.Interval) + time.Duration(h.Timeout)
	if h.Fall <= 0 || h.Interval <= 0 || h.Timeout <= 0 || detect >= 2*time.Second {
		t.Errorf("default checks find a dead backend after up to %v (fall %d × interval %v + timeout %v), want < 2s",
			detect, h.Fall, time.Duration(h.Interval), time.Duration(h.Timeout))
	}
	if h.Rise <= 0 {
		t.Errorf("healthCheck.rise defaults to %d", h.Rise)
	}

	// A configuration with only backends is valid, and New takes the
	// defaults: the proxy's balancer is round robin.
	c = Config{Backends: []string{"192.0.2.1:6443"}}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	p, err := New(Config{Backends: []string{"192.0.2.1:6443"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if pol := p.bal.Load().policy; pol != RoundRobin {
		t.Errorf("New without balance uses %q, want %q", pol, RoundRobin)
	}
	if pc := p.cfg.Load(); !slices.Equal(pc.Listen, []string{":6444"}) || time.Duration(pc.ConnectTimeout) != 250*time.Millisecond ||
		pc.HealthCheck.Path != "/readyz" {
		t.Errorf("New's configuration: listen %v, connectTimeout %v, path %q", pc.Listen, pc.ConnectTimeout, pc.HealthCheck.Path)
	}
	// Explicit values are kept.
	c = Config{Listen: []string{"127.0.0.1:1"}, ConnectTimeout: Duration(time.Second), Balance: LeastConnections,
		HealthCheck: HealthCheck{Path: "/livez"}}
	c.SetDefaults()
	if c.Listen[0] != "127.0.0.1:1" || c.ConnectTimeout != Duration(time.Second) || c.Balance != LeastConnections || c.HealthCheck.Path != "/livez" {
		t.Errorf("SetDefaults overwrote explicit values: %+v", c)
	}
}

// TestNeverRefusedWhileABackendIsUp: with two backends that refuse and one
// that works, every client gets through, whatever the state of the working
// one: health checks off; the working backend failing its checks, or
// suspect, while the refusing ones pass theirs (it is tried last, after
// every eligible backend failed); every backend failing its checks
// (fail-open).
func TestNeverRefusedWhileABackendIsUp(t *testing.T) {
	const clients = 20
	for _, tc := range []struct {
		name     string
		checks   bool // scripted checks instead of none
		liveFail bool // the working backend fails its checks
		deadFail bool // the refusing backends fail their checks
		// liveSuspect marks the working backend suspect before each
		// client, as a refused dial would; its failing checks never reach
		// fall, so it stays healthy, and never clear the suspicion.
		liveSuspect bool
	}{
		{name: "checks-off"},
		{name: "working-backend-unhealthy", checks: true, liveFail: true},
		{name: "working-backend-suspect", checks: true, liveFail: true, liveSuspect: true},
		{name: "all-unhealthy", checks: true, liveFail: true, deadFail: true},
		{name: "refusing-backends-pass-checks", checks: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dead1, dead2, live := closedAddr(t), closedAddr(t), echoServer(t)
			cfg := Config{Backends: []string{dead1, dead2, live},
				DrainPeriod: Duration(time.Millisecond), DrainStagger: Duration(time.Millisecond)}
			var opts Options
			s := newScripted()
			if tc.checks {
				// An unhealthy backend's connections are drained when
				// fail-open ends, which the refusing backends' flapping
				// suspicion can cause between two clients: a long drain
				// keeps that out of the way (this test is about refusals).
				cfg.DrainPeriod = Duration(time.Hour)
				cfg.HealthCheck = fastChecks()
				s.set(dead1, tc.deadFail)
				s.set(dead2, tc.deadFail)
				s.set(live, tc.liveFail)
				opts.Check = s.check
				if tc.liveSuspect {
					cfg.HealthCheck.Fall = 1 << 30
				}
			}
			p := startProxy(t, cfg, opts)
			if tc.liveFail && !tc.liveSuspect {
				waitFor(t, "working backend unhealthy", func() bool { return !backendStatus(p.Proxy, live).Healthy })
			}
			if tc.deadFail {
				waitFor(t, "fail-open", func() bool {
					return !backendStatus(p.Proxy, dead1).Healthy && !backendStatus(p.Proxy, dead2).Healthy
				})
			}
			for i := range clients {
				if tc.checks && !tc.deadFail {
					// The refusing backends' passing checks clear the
					// suspicion of their last refused dial: each client
					// then tries them first, as eligible, and must still
					// get to the working backend.
					waitFor(t, "refusing backends eligible again", func() bool {
						return !backendStatus(p.Proxy, dead1).Suspect && !backendStatus(p.Proxy, dead2).Suspect
					})
				}
				if tc.liveSuspect {
					for _, b := range p.backends.Load().list {
						if b.addr == live {
							b.suspectSince.Store(time.Now().UnixNano())
						}
					}
					if st := backendStatus(p.Proxy, live); !st.Suspect || !st.Healthy {
						t.Fatalf("working backend %+v, want healthy and suspect", st)
					}
				}
				c := dial(t, p.addr)
				if err := roundTrip(c, fmt.Sprint("client ", i)); err != nil {
					t.Fatalf("client %d of %d refused with a working backend up: %v (status %+v)", i, clients, err, p.Status())
				}
				c.Close()
			}
			if n := p.noBackend.Load(); n != 0 {
				t.Errorf("no_backend_total %d, want 0", n)
			}
			if got := backendStatus(p.Proxy, live).Total; got != clients {
				t.Errorf("working backend took %d connections, want %d", got, clients)
			}
		})
	}
}
