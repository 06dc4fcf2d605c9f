package chaoslab

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/k8slab"
	"github.com/nlb-dev/nlb/internal/netlab"
)

// TestSmoke runs one kill and one restart scenario for keepalived +
// HAProxy and for `nlb controller` on a real cluster and checks that the
// measurements are sane: traffic flowed through the VIP, the fault was seen
// (kill: probes and watches broke; both: another controller took over),
// the planned restart stopped the LB cleanly before starting it again, and
// no VIP was left behind, neither after a scenario nor after the teardown.
// It asserts no timings: those are `make bench-chaos`'s.
func TestSmoke(t *testing.T) {
	netlab.Require(t)
	if err := PeerAvailable(); err != nil {
		unavailable(t, "%v", err)
	}
	c := k8slab.StartT(t, ClusterOptions("chaos", ""))
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	lab, err := Open(ctx, c, Options{Logf: t.Logf, Traffic: TrafficOptions{Watches: 2}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lab.Close)
	dir := t.TempDir()

	t.Run("peer", func(t *testing.T) {
		smoke(ctx, t, lab, NewPeer(c, lab.Params, filepath.Join(dir, "peer")), false)
	})
	t.Run("nlb", func(t *testing.T) {
		bin := netlab.BuildNLB(t)
		if err := NLBAvailable(ctx, bin); err != nil {
			unavailable(t, "%v", err)
		}
		smoke(ctx, t, lab, NewNLB(c, lab.Params, bin, filepath.Join(dir, "nlb")), true)
	})
}

// smoke runs one kill and one restart round of impl and checks that the
// measurements are sane. Only nlb must recover within the fault phase: the peer's own
// failures (a tie of its backups on a loaded machine can leave clients on
// the wrong MAC for seconds) are what the bench measures, not a test
// failure.
func smoke(ctx context.Context, t *testing.T, lab *Lab, impl Impl, mustRecover bool) {
	s, err := lab.Begin(ctx, impl)
	if err != nil {
		t.Fatal(err)
	}
	ended := false
	t.Cleanup(func() {
		if !ended {
			_, _ = s.End(context.Background())
		}
	})
	res, err := s.Run(ctx, Kill)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.Tails(40))
	}
	line, _ := json.Marshal(res)
	t.Logf("%s; errors %q", line, res.Errors)
	checkKill(t, res, mustRecover)

	res, err = s.Run(ctx, Restart)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.Tails(40))
	}
	line, _ = json.Marshal(res)
	t.Logf("%s; errors %q", line, res.Errors)
	checkRestart(t, res, mustRecover)

	td, err := s.End(ctx)
	ended = true
	if err != nil {
		t.Errorf("teardown: %v", err)
	}
	line, _ = json.Marshal(td)
	t.Logf("%s", line)
	if td.LeftoverVIPs != 0 {
		t.Errorf("%d VIPs left after the teardown", td.LeftoverVIPs)
	}
}

// checkKill checks the measurements of a kill round.
func checkKill(t *testing.T, res Result, mustRecover bool) {
	t.Helper()
	// Traffic flowed: well over a second of probes, most of them good.
	if ok := res.Requests - res.FailedRequests; res.Requests < 100 || ok < res.Requests/2 {
		t.Errorf("%d probes, %d failed: the traffic did not flow", res.Requests, res.FailedRequests)
	}
	// The fault was seen: new connections to the dead holder failed,
	// the watches through it broke, and another controller took over.
	if res.FaultFailed == 0 || res.OutageMS <= 0 || res.OutageBursts == 0 {
		t.Errorf("no failed probe after killing the VIP holder: %+v", res)
	}
	if res.WatchReconnects == 0 || res.WatchBrokenMS <= 0 {
		t.Errorf("no watch broke after killing the VIP holder: %+v", res)
	}
	if res.FailoverMS == nil {
		t.Errorf("no other controller advertised after the kill")
	}
	if !res.Recovered || res.HoldTimedOut {
		if mustRecover {
			t.Errorf("the probes did not recover before the restart: %+v", res)
		} else {
			t.Logf("the probes did not recover before the restart (the peer's behaviour, measured by the bench): %+v", res)
		}
	}
	// The SIGKILLed holder kept its address until the restart.
	if res.DupVIPFaultMS <= 0 {
		t.Errorf("the killed holder's VIP was never seen beside the new master's")
	}
	if res.LeftoverVIPs != 0 {
		t.Errorf("%d VIPs left on controllers that are not the master", res.LeftoverVIPs)
	}
}

// checkRestart checks the measurements of a restart round: the stop ran
// to its end, cleanly, before the fault phase ended, another controller
// took over, and the lab settled with the VIP on the master alone. Whether
// clients saw an outage is the bench's figure, not a test failure.
func checkRestart(t *testing.T, res Result, mustRecover bool) {
	t.Helper()
	if ok := res.Requests - res.FailedRequests; res.Requests < 100 || ok < res.Requests/2 {
		t.Errorf("%d probes, %d failed: the traffic did not flow", res.Requests, res.FailedRequests)
	}
	if res.StopError != "" {
		t.Errorf("the graceful stop of %s was not clean: %s", res.Victim, res.StopError)
	}
	if res.StopMS <= 0 || res.StopMS > res.HoldMS {
		t.Errorf("the stop (%v ms) did not end within the fault phase (%v ms)", res.StopMS, res.HoldMS)
	}
	if res.FailoverMS == nil {
		t.Errorf("no other controller advertised after the stop")
	}
	if mustRecover && (!res.Recovered || res.HoldTimedOut) {
		t.Errorf("the probes did not recover before the restart: %+v", res)
	}
	if res.LeftoverVIPs != 0 {
		t.Errorf("%d VIPs left on controllers that are not the master", res.LeftoverVIPs)
	}
}

// unavailable skips the test, or fails it when privileged tests must run.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv(netlab.PrivilegedEnv) == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}
