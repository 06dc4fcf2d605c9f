package cplb

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nlb-dev/nlb/lb/k8s"
)

// runHealth runs a VIPs-only controller with one fake instance (priority
// 200) whose health probe returns what probe returns, with the given
// startup grace, under synctest; step advances fake time and lets
// everything settle.
func runHealth(t *testing.T, grace time.Duration, probe func() error, body func(c *Controller, a *fakeVRRP, step func(time.Duration))) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		a := newFakeVRRP(rec, "a", 200, "192.0.2.100/24")
		ctl := ctlConfig(true, 0) // interval 500ms, fall 2, rise 3
		ctl.DisableLoadBalancer = true
		ctl.Health.StartupGrace = grace
		c, err := New(Config{Controller: ctl, VRRP: []VRRP{a}, HealthTarget: "127.0.0.1:6443",
			Probe: func(context.Context, string) error { return probe() }, Logger: discard()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		synctest.Wait()
		body(c, a, func(d time.Duration) { time.Sleep(d); synctest.Wait() })
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestHealthBootstrapNoAPIServerYet: a node whose local API server does
// not exist yet (kubeadm init) keeps its configured priority for the
// whole startup grace; once the API server has been healthy once, fall
// failures give up mastership as usual.
func TestHealthBootstrapNoAPIServerYet(t *testing.T) {
	var up atomic.Bool
	probe := func() error {
		if up.Load() {
			return nil
		}
		return errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
	}
	runHealth(t, 10*time.Minute, probe, func(c *Controller, a *fakeVRRP, step func(time.Duration)) {
		step(9 * time.Minute) // 1080 failed checks, fall is 2
		if p := a.prios(); len(p) != 0 {
			t.Fatalf("priorities %v within the startup grace, want none set (the configured 200)", p)
		}
		st := c.Status()
		if st.Health.Bootstrap == "" || !st.Health.Tracked.Healthy {
			t.Errorf("status in bootstrap: %+v, want a bootstrap note and healthy", st.Health)
		}
		if !c.Ready() {
			t.Error("not ready in bootstrap: the node must be able to take the VIP")
		}
		up.Store(true) // the API server comes up
		step(time.Second)
		if st := c.Status(); st.Health.Bootstrap != "" {
			t.Errorf("bootstrap note %q after a passing check", st.Health.Bootstrap)
		}
		up.Store(false) // and fails again, within the grace: it counts now
		step(2 * time.Second)
		if p := a.prios(); !slices.Equal(p, []uint8{0}) {
			t.Fatalf("priorities %v after fall failures of a once-healthy API server, want [0]", p)
		}
	})
}

// TestHealthBootstrapGraceOver: a local API server that never comes up
// stops holding the node back only for the startup grace; then fall
// failures give up mastership.
func TestHealthBootstrapGraceOver(t *testing.T) {
	probe := func() error { return errors.New("GET /readyz: 500 Internal Server Error") }
	runHealth(t, time.Minute, probe, func(c *Controller, a *fakeVRRP, step func(time.Duration)) {
		step(59 * time.Second)
		if p := a.prios(); len(p) != 0 {
			t.Fatalf("priorities %v within the startup grace, want none", p)
		}
		step(2 * time.Second)
		if p := a.prios(); !slices.Equal(p, []uint8{0}) {
			t.Fatalf("priorities %v after the grace and fall failures, want [0]", p)
		}
		if st := c.Status(); st.Health.Bootstrap != "" || st.Health.Tracked.Healthy {
			t.Errorf("status after the grace: %+v, want no bootstrap note, unhealthy", st.Health)
		}
	})
}

// TestHealthNoGrace: startupGrace 0s gates from the first check, as
// before the bootstrap rule.
func TestHealthNoGrace(t *testing.T) {
	probe := func() error { return errBoom }
	runHealth(t, 0, probe, func(c *Controller, a *fakeVRRP, step func(time.Duration)) {
		step(500 * time.Millisecond) // the second check: fall 2
		if p := a.prios(); !slices.Equal(p, []uint8{0}) {
			t.Fatalf("priorities %v after fall failures without a grace, want [0]", p)
		}
	})
}

// TestHealthDeniedIsUp: an API server that answers 401/403 (kubeadm's
// admin.conf before its RBAC exists) is up for VRRP, even without a
// grace and after the node was gated; the status says so, and a plain
// pass clears it.
func TestHealthDeniedIsUp(t *testing.T) {
	var mode atomic.Int32 // 0 denied, 1 ok, 2 failing
	probe := func() error {
		switch mode.Load() {
		case 0:
			return &k8s.DeniedError{Status: "403 Forbidden"}
		case 1:
			return nil
		}
		return errors.New("GET /readyz: 500 Internal Server Error")
	}
	runHealth(t, 0, probe, func(c *Controller, a *fakeVRRP, step func(time.Duration)) {
		step(time.Minute)
		if p := a.prios(); len(p) != 0 {
			t.Fatalf("priorities %v while the API server answers 403, want none", p)
		}
		st := c.Status()
		if st.Health.Denied != "403 Forbidden" || !st.Health.Tracked.Healthy || st.Health.Bootstrap != "" {
			t.Errorf("status while denied: %+v, want denied 403, healthy, gated", st.Health)
		}
		if got := testutil.ToFloat64(c.health.checks.WithLabelValues("fail")); got != 0 {
			t.Error("403s counted as failed checks")
		}
		mode.Store(1)
		step(time.Second)
		if st := c.Status(); st.Health.Denied != "" {
			t.Errorf("denied %q after a plain pass", st.Health.Denied)
		}
		mode.Store(2)
		step(time.Second)
		if p := a.prios(); !slices.Equal(p, []uint8{0}) {
			t.Fatalf("priorities %v after real failures, want [0]", p)
		}
		if st := c.Status(); !strings.Contains(st.Health.Tracked.LastError, "500") {
			t.Errorf("last error %q", st.Health.Tracked.LastError)
		}
	})
}
