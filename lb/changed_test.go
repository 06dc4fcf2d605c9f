package lb

import (
	"testing"
	"time"
)

// TestChangedHook: Options.Changed is called after a backend's health
// crosses its threshold and after the set changes, and Status already
// shows the change when it is called (the XDP fast path rebuilds its
// tables from Status in it).
func TestChangedHook(t *testing.T) {
	a, b := echoServer(t), echoServer(t)
	s := newScripted()
	type seen struct{ aHealthy, hasB bool }
	calls := make(chan seen, 64)
	var p *testProxy
	ready := make(chan struct{})
	changed := func() {
		<-ready
		var v seen
		for _, bs := range p.Status().Backends {
			if bs.Address == a {
				v.aHealthy = bs.Healthy
			}
			if bs.Address == b && !bs.Removed {
				v.hasB = true
			}
		}
		calls <- v
	}
	p = startProxy(t, Config{Backends: []string{a}, HealthCheck: fastChecks()}, Options{Check: s.check, Changed: changed})
	close(ready)
	next := func(what string) seen {
		t.Helper()
		select {
		case v := <-calls:
			return v
		case <-time.After(30 * time.Second):
			t.Fatalf("no Changed call after %s", what)
		}
		return seen{}
	}

	s.set(a, true)
	if v := next("a failing its checks"); v.aHealthy {
		t.Errorf("Changed called for a's fall while Status still shows a healthy")
	}
	p.SetBackends([]string{a, b})
	if v := next("SetBackends"); !v.hasB {
		t.Errorf("Changed called for SetBackends while Status does not show b")
	}
	s.set(a, false)
	if v := next("a passing its checks"); !v.aHealthy {
		t.Errorf("Changed called for a's rise while Status still shows a unhealthy")
	}
	// Checks that do not cross a threshold do not call it.
	select {
	case v := <-calls:
		t.Errorf("Changed called without a change: %+v", v)
	case <-time.After(5 * fastChecks().Interval.Std()):
	}
}
