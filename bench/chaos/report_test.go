package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/nlb-dev/nlb/internal/chaoslab"
)

func TestMarkdown(t *testing.T) {
	res := func(impl string, sc chaoslab.Scenario, outage float64, failed int, dup float64, left int) chaoslab.Result {
		return chaoslab.Result{Impl: impl, Scenario: sc, OutageMS: outage, FailedRequests: failed, Requests: 500, DupVIPMS: dup, LeftoverVIPs: left}
	}
	nlb := &implRun{name: chaoslab.NLBName, teardown: &chaoslab.Teardown{}, results: []chaoslab.Result{
		res("nlb", chaoslab.Kill, 3300, 160, 20, 0),
		res("nlb", chaoslab.Kill, 3500, 170, 20, 0), // worst run over 3419 ms
		res("nlb", chaoslab.APIServer, 10, 1, 0, 0),
		res("nlb", chaoslab.Link, 3200, 160, 1200, 1),
	}}
	peer := &implRun{name: chaoslab.PeerName, teardown: &chaoslab.Teardown{}, results: []chaoslab.Result{
		res(chaoslab.PeerName, chaoslab.Kill, 3600, 180, 20, 0),
		res(chaoslab.PeerName, chaoslab.APIServer, 40, 2, 0, 0),
		res(chaoslab.PeerName, chaoslab.Link, 10000, 280, 0, 0),
	}}
	md := markdown([]*implRun{peer, nlb}, chaoslab.Scenarios(), chaoslab.DefaultParams(), 2)
	for _, want := range []string{
		"| kill | nlb | 2 | 3400 (3300-3500) | 165 (160-170) / 500 (500-500) |",
		"| kill: outage < Master_Down_Interval + 200 ms | 3600 < 3809 ms: met | 3500 < 3419 ms: **not met** |",
		"| apiserver: outage < 2000 ms | 40 ms: met | 10 ms: met |",
		"1200 ms: **not met**",
		"| kill: nlb no worse than keepalived+haproxy (medians) | | met |",
		"| link: nlb no worse than keepalived+haproxy (medians) | | **not met**: dup_vip_ms 1200 > 0, leftover_vips 1 > 0 |",
		"1 in runs, 0 after teardown: **not met**",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}

	// An implementation that did not run says why.
	broken := &implRun{name: chaoslab.NLBName, err: errors.New("no controller\ndetails")}
	md = markdown([]*implRun{peer, broken}, chaoslab.Scenarios(), chaoslab.DefaultParams(), 1)
	if !strings.Contains(md, "| kill | nlb | 0 | not run: no controller |") {
		t.Errorf("table does not say why nlb did not run:\n%s", md)
	}

	lines := medianLines([]*implRun{nlb}, chaoslab.Scenarios())
	if len(lines) != 3 || lines[0].OutageMS != 3400 || lines[2].LeftoverVIPs != 1 || lines[0].Stat != "median" {
		t.Errorf("median lines = %+v", lines)
	}
}
