package chaoslab

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/k8slab"
	"github.com/nlb-dev/nlb/internal/netlab"
)

// TestSurvival: established connections and watches through the VIP, on
// real kube-apiservers, survive a VIP move with nlb's XDP fast path (issue
// 12): every one whose API server is alive, 100 %, when the Master's nlb
// is SIGKILLed (lbkill), stopped with SIGTERM (restart), and when the
// whole Master node drops off the network (link) or dies with its API
// server (kill); when an API server dies (apiserver, kill) only its own
// connections break. nlb's proxy mode runs the same faults in the same lab: it
// breaks them (the test checks that it does in lbkill and restart, which
// shows that the survivors notice a break). Survivors come from 16 client
// addresses, so that with k0s's persistence they reach every API server.
func TestSurvival(t *testing.T) {
	netlab.Require(t)
	bin := netlab.BuildNLB(t)
	c := k8slab.StartT(t, ClusterOptions("surv", ""))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	lab, err := Open(ctx, c, Options{Logf: t.Logf, Traffic: TrafficOptions{Watches: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lab.Close)
	dir := t.TempDir()
	scenarios := []Scenario{LBKill, Restart, Link, Kill, APIServer}
	// realServer reports on which controllers the VIP sits as /32 off the
	// lab interface: the fast path's real-server copy.
	realServer := func(t *testing.T) (on []string) {
		t.Helper()
		for _, ctl := range c.Controllers {
			all, err := ctl.Host.Addrs()
			if err != nil {
				t.Fatal(err)
			}
			iface, err := ctl.Host.InterfaceAddrs()
			if err != nil {
				t.Fatal(err)
			}
			dr := netip.PrefixFrom(lab.Params.VIP.Addr(), 32)
			if slices.Contains(all, dr) && !slices.Contains(iface, dr) {
				on = append(on, ctl.Host.Name)
			}
		}
		return on
	}
	run := func(t *testing.T, impl Impl) map[Scenario]Result {
		s, err := lab.Begin(ctx, impl)
		if err != nil {
			t.Fatal(err)
		}
		if impl.Name() == NLBName {
			// nlb controller in another mode removes what the fast
			// path left (the real-server addresses).
			if on := realServer(t); len(on) > 0 {
				t.Errorf("the proxy mode left the fast path's real-server VIP on %v", on)
			}
		}
		ended := false
		t.Cleanup(func() {
			if !ended {
				_, _ = s.End(context.Background())
			}
		})
		out := map[Scenario]Result{}
		for _, sc := range scenarios {
			res, err := s.Run(ctx, sc)
			if err != nil {
				t.Fatalf("%v\n%s", err, s.Tails(40))
			}
			line, _ := json.Marshal(res)
			t.Logf("%s", line)
			out[sc] = res
			if res.Broken > 0 && impl.Name() == NLBXDPName {
				t.Logf("the logs around the break:\n%s", s.Tails(150))
			}
			if res.Established < 16 {
				t.Errorf("%s: %d survivors established, want 16", sc, res.Established)
			}
		}
		td, err := s.End(ctx)
		ended = true
		if err != nil || td.LeftoverVIPs != 0 || len(td.StopErrors) > 0 {
			t.Errorf("teardown: %v, %+v", err, td)
		}
		return out
	}
	t.Run("xdp", func(t *testing.T) {
		impl := NewNLBXDP(c, lab.Params, bin, filepath.Join(dir, "xdp"))
		t.Cleanup(func() { impl.Close() })
		results := run(t, impl)
		// A graceful stop removed every pinned datapath and kept the
		// real-server side (the API servers still serve through it).
		for _, ctl := range c.Controllers {
			if entries, err := os.ReadDir(filepath.Join(impl.bpffs, ctl.Host.Name)); err == nil && len(entries) > 0 {
				t.Errorf("%s: pinned after the graceful stop: %d entries", ctl.Host.Name, len(entries))
			}
		}
		if on := realServer(t); len(on) != len(c.Controllers) {
			t.Errorf("real-server VIP on %v after the graceful stop, want every controller", on)
		}
		for sc, res := range results {
			if res.SurvivorBackends != len(c.Controllers) {
				t.Errorf("%s: survivors reached %d API servers, want all %d (persistence on 16 client addresses)", sc, res.SurvivorBackends, len(c.Controllers))
			}
			if res.Broken != 0 {
				t.Errorf("%s: %d of %d connections and watches to live API servers broke, want none: %q", sc, res.Broken, res.Established, res.BrokenErrors)
			}
		}
	})
	t.Run("proxy", func(t *testing.T) {
		for sc, res := range run(t, NewNLB(c, lab.Params, bin, filepath.Join(dir, "proxy"))) {
			if (sc == LBKill || sc == Restart) && res.Broken == 0 {
				t.Errorf("%s: the proxy mode broke no survivor: the survivors do not see a break", sc)
			}
		}
	})
}
