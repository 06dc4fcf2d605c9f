package main

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nlb-dev/nlb/internal/chaoslab"
)

// stop sets the graceful stop figures of a restart result.
func stop(r chaoslab.Result, ms float64, err string) chaoslab.Result {
	r.StopMS, r.StopError = ms, err
	return r
}

func TestMarkdown(t *testing.T) {
	res := func(impl string, sc chaoslab.Scenario, outage float64, failed int, dup float64, left int) chaoslab.Result {
		return chaoslab.Result{Impl: impl, Scenario: sc, OutageMS: outage, FailedRequests: failed, Requests: 500, DupVIPMS: dup, LeftoverVIPs: left}
	}
	nlb := &implRun{name: chaoslab.NLBName, teardown: &chaoslab.Teardown{}, results: []chaoslab.Result{
		res("nlb", chaoslab.Kill, 3300, 160, 20, 0),
		res("nlb", chaoslab.Kill, 3500, 170, 20, 0), // worst run over 3419 ms
		res("nlb", chaoslab.APIServer, 10, 1, 0, 0),
		res("nlb", chaoslab.Link, 3200, 160, 1200, 1),
		stop(res("nlb", chaoslab.Restart, 0, 0, 0, 0), 31000, ""),
		stop(res("nlb", chaoslab.Restart, 0, 0, 0, 0), 33000, ""),
	}}
	peer := &implRun{name: chaoslab.PeerName, teardown: &chaoslab.Teardown{}, results: []chaoslab.Result{
		res(chaoslab.PeerName, chaoslab.Kill, 3600, 180, 20, 0),
		res(chaoslab.PeerName, chaoslab.APIServer, 40, 2, 0, 0),
		res(chaoslab.PeerName, chaoslab.Link, 10000, 280, 0, 0),
		stop(res(chaoslab.PeerName, chaoslab.Restart, 620, 31, 10, 0), 25, ""),
		stop(res(chaoslab.PeerName, chaoslab.Restart, 600, 30, 10, 0), 5020, "haproxy@h1 did not exit\nwithin 5s"),
	}}
	peer.results[len(peer.results)-1].Rep = 2
	md := markdown([]*implRun{peer, nlb}, chaoslab.Scenarios(), chaoslab.DefaultParams(), 2)
	for _, want := range []string{
		"| kill | nlb | 2 | 3400 (3300-3500) | 165 (160-170) / 500 (500-500) |",
		"| kill: outage < Master_Down_Interval + 200 ms | 3600 < 3809 ms: met | 3500 < 3419 ms: **not met** |",
		"| apiserver: outage < 2000 ms | 40 ms: met | 10 ms: met |",
		"1200 ms: **not met**",
		"| kill: nlb no worse than keepalived+haproxy (medians) | | met |",
		"| link: nlb no worse than keepalived+haproxy (medians) | | **not met**: dup_vip_ms 1200 > 0, leftover_vips 1 > 0 |",
		"1 in runs, 0 after teardown: **not met**",
		// The peer's restart outage is shown, not judged; nlb's must be
		// at most one probe interval.
		"| restart: nlb outage <= one probe interval (20 ms; make-before-break) | 620 ms (not judged) | 0 ms: met |",
		"| restart: nlb no worse than keepalived+haproxy (medians) | | met |",
		"ms: keepalived+haproxy 2522 (25-5020), nlb 32000 (31000-33000). Stops that were not clean (killed after the timeout, or a failed exit): keepalived+haproxy rep 2: haproxy@h1 did not exit.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}

	// One nlb restart with two failed probes misses the goal, judged on
	// the worst run although the median is 0; one failed probe (the
	// request in flight at the switch) does not.
	worse := &implRun{name: chaoslab.NLBName, teardown: &chaoslab.Teardown{}, results: append(slices.Clone(nlb.results),
		res("nlb", chaoslab.Restart, 40, 2, 0, 0))}
	md = markdown([]*implRun{peer, worse}, chaoslab.Scenarios(), chaoslab.DefaultParams(), 3)
	if want := "| restart: nlb outage <= one probe interval (20 ms; make-before-break) | 620 ms (not judged) | 40 ms: **not met** |"; !strings.Contains(md, want) {
		t.Errorf("table lacks %q:\n%s", want, md)
	}
	one := &implRun{name: chaoslab.NLBName, teardown: &chaoslab.Teardown{}, results: append(slices.Clone(nlb.results),
		res("nlb", chaoslab.Restart, 20.5, 1, 0, 0))}
	md = markdown([]*implRun{peer, one}, chaoslab.Scenarios(), chaoslab.DefaultParams(), 3)
	if want := "| restart: nlb outage <= one probe interval (20 ms; make-before-break) | 620 ms (not judged) | 20 ms: met |"; !strings.Contains(md, want) {
		t.Errorf("table lacks %q:\n%s", want, md)
	}
	// Failed requests within one probe of the peer's are no worse; two
	// more are.
	for _, tc := range []struct {
		nlbFailed int
		want      string
	}{
		{3, "| apiserver: nlb no worse than keepalived+haproxy (medians) | | met |"},
		{4, "| apiserver: nlb no worse than keepalived+haproxy (medians) | | **not met**: failed_requests 4 > 2 |"},
	} {
		r := &implRun{name: chaoslab.NLBName, teardown: &chaoslab.Teardown{}, results: []chaoslab.Result{
			res("nlb", chaoslab.APIServer, 10, tc.nlbFailed, 0, 0)}}
		md = markdown([]*implRun{peer, r}, chaoslab.Scenarios(), chaoslab.DefaultParams(), 1)
		if !strings.Contains(md, tc.want) {
			t.Errorf("%d failed requests against the peer's 2: table lacks %q:\n%s", tc.nlbFailed, tc.want, md)
		}
	}
	// Without the restart scenario there is no restart goal.
	md = markdown([]*implRun{peer, nlb}, chaoslab.Scenarios()[:3], chaoslab.DefaultParams(), 2)
	if strings.Contains(md, "| restart") || strings.Contains(md, "Planned restart") || strings.Contains(md, "- restart:") {
		t.Errorf("table without the restart scenario mentions it:\n%s", md)
	}

	// An implementation that did not run says why.
	broken := &implRun{name: chaoslab.NLBName, err: errors.New("no controller\ndetails")}
	md = markdown([]*implRun{peer, broken}, chaoslab.Scenarios(), chaoslab.DefaultParams(), 1)
	if !strings.Contains(md, "| kill | nlb | 0 | not run: no controller |") {
		t.Errorf("table does not say why nlb did not run:\n%s", md)
	}

	lines := medianLines([]*implRun{nlb}, chaoslab.Scenarios())
	if len(lines) != 4 || lines[0].OutageMS != 3400 || lines[2].LeftoverVIPs != 1 || lines[0].Stat != "median" ||
		lines[3].Scenario != chaoslab.Restart || lines[3].StopMS != 32000 || lines[0].StopMS != 0 {
		t.Errorf("median lines = %+v", lines)
	}
}

// TestMarkdownSurvivors: the survivors' column and the nlb-xdp goals of
// issue 12: judged for nlb-xdp only, on the worst run.
func TestMarkdownSurvivors(t *testing.T) {
	res := func(impl string, sc chaoslab.Scenario, broken, victim int) chaoslab.Result {
		return chaoslab.Result{Impl: impl, Scenario: sc, Requests: 500, Established: 16, Broken: broken, BrokenVictim: victim}
	}
	xdp := &implRun{name: chaoslab.NLBXDPName, teardown: &chaoslab.Teardown{}, results: []chaoslab.Result{
		res(chaoslab.NLBXDPName, chaoslab.LBKill, 0, 0),
		res(chaoslab.NLBXDPName, chaoslab.Restart, 0, 0),
		res(chaoslab.NLBXDPName, chaoslab.Restart, 1, 0),
		res(chaoslab.NLBXDPName, chaoslab.Kill, 0, 5),
	}}
	proxy := &implRun{name: chaoslab.NLBName, teardown: &chaoslab.Teardown{}, results: []chaoslab.Result{
		res(chaoslab.NLBName, chaoslab.LBKill, 16, 0),
		res(chaoslab.NLBName, chaoslab.Restart, 16, 0),
	}}
	md := markdown([]*implRun{proxy, xdp}, chaoslab.Scenarios(), chaoslab.DefaultParams(), 2)
	for _, want := range []string{
		"| kill | nlb-xdp | 1 | 0 | 0 / 500 | 0 | 0 | 0 | - | 0 | 0 | 0 / 5 (16) |",
		"| lbkill: nlb-xdp breaks no established connection or watch (worst run) | 16 (not judged) | 0 of 16: met |",
		"| restart: nlb-xdp breaks no established connection or watch (worst run) | 16 (not judged) | 1 of 16: **not met** |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
}
