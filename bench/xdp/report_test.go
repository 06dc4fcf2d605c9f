package main

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/internal/nlbtest"
)

func TestMarkdownGoals(t *testing.T) {
	r := newResults()
	for _, run := range []struct {
		impl string
		m    map[string]float64
	}{
		{implDirect, map[string]float64{mThroughput1: 10, mThroughput8: 8, mRRRate: 100000, mRRCPU: 20, mConnRate: 30000, mConnCPU: 60, mErrors + "_rr": 0}},
		{implDirect, map[string]float64{mThroughput1: 12, mThroughput8: 8, mRRRate: 100000, mRRCPU: 20, mConnRate: 30000, mConnCPU: 60}},
		{implXDP, map[string]float64{mThroughput1: 10, mThroughput8: 7, mRRRate: 89000, mRRCPU: 23, mConnRate: 25000, mConnCPU: 70, mErrors + "_conn": 3}},
		{implXDP, map[string]float64{mThroughput1: 11, mRRRate: 89000, mRRCPU: 23, mConnRate: 25000, mConnCPU: 70,
			mProgEst4: 60, mProgEst6: 101, mProgNew4: 500, mProgNew6: 450}},
		// A proxy beating direct on 8 streams: the load generator sets that figure.
		{implProxy, map[string]float64{mThroughput1: 6, mThroughput8: 9, mRRRate: 70000}},
		{implHAProxy1, map[string]float64{mRRRate: 60000}},
		{implHAProxy2, map[string]float64{mRRRate: 65000}},
	} {
		r.add(run.impl, run.m)
	}
	r.fail(implHAProxy2, "round 1 bulk1: iperf3: boom\nsecond line")
	md := r.markdown([]string{"Measured today."}, []float64{0.1, 0.3, 0.2})
	for _, want := range []string{
		"| metric | direct | nlb-xdp | nlb-proxy | haproxy-nbthread1 | haproxy-nbthread2 | nlb-xdp/direct |",
		"| bulk server→client, 1 stream (Gbit/s) | 11.00 | 10.50 | 6.00 | – | – | 0.95 |",
		"| kept-alive requests/s | 100000 | 89000 | 70000 | 60000 | 65000 | 0.89 |",
		"| bulk server→client, 1 stream ≥ 0.9× direct | 0.95× | met |",
		"| bulk server→client, 8 streams ≥ 0.9× direct | 0.88× | cannot judge (nlb-proxy 9 > direct 8: the load generator sets the figure); XDP/direct 0.88 |",
		"| kept-alive requests/s ≥ 0.9× direct | 0.89× | **not met** |",
		"| machine CPU per kept-alive request ≤ 1.15× direct's | 1.15× | met |",
		"| machine CPU per new connection ≤ 1.15× direct's | 1.17× | **not met** |",
		"| BPF_PROG_RUN: ≤ 100 ns per established packet (worse of IPv4, IPv6) | 101 ns | **not met** |",
		"| BPF_PROG_RUN: ≤ 300 ns per new flow (worse of IPv4, IPv6) | 500 ns | **not met** |",
		"| established flow (the same packet repeated) | 60 | 101 |",
		"- HAProxy's better setting on kept-alive requests/s: haproxy-nbthread2.",
		"- haproxy-nbthread2 failed: `round 1 bulk1: iperf3: boom second line`",
		"- wrk reported up to 3 socket errors or non-2xx responses in a run",
		"median 20%, max 30% of the machine.",
		"- Measured today.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
	// A row nobody measured is left out.
	if strings.Contains(md, "XDP program runs per kept-alive request") {
		t.Errorf("table has an unmeasured row:\n%s", md)
	}

	// The JSON lines: medians of the runs, with units.
	found := false
	for _, l := range r.lines() {
		if l.Impl == implDirect && l.Metric == mThroughput1 {
			found = true
			if l.Value != 11 || l.Unit != "Gbit/s" || len(l.Runs) != 2 {
				t.Errorf("direct throughput line %+v", l)
			}
		}
		if l.Metric == mErrors+"_conn" && l.Unit != "count" {
			t.Errorf("errors line %+v", l)
		}
	}
	if !found {
		t.Error("no JSON line for direct's 1-stream throughput")
	}
}

func TestMarkdownNotMeasured(t *testing.T) {
	r := newResults()
	r.add(implXDP, map[string]float64{mRRRate: 5})
	md := r.markdown(nil, nil)
	if !strings.Contains(md, "| kept-alive requests/s ≥ 0.9× direct | – | not measured |") {
		t.Errorf("goal without direct not reported as not measured:\n%s", md)
	}
	if strings.Contains(md, "Background") {
		t.Errorf("background line without samples:\n%s", md)
	}
}

func TestStartRefused(t *testing.T) {
	refused := errors.New("iperf3 -c 192.0.2.100: exit status 1: {\"error\": \"unable to connect to server: Connection refused\"}")
	if !startRefused(refused) {
		t.Error("a refused control connection is not retried")
	}
	if startRefused(errors.New("iperf3 -c 192.0.2.100: exit status 1: control socket has closed unexpectedly")) {
		t.Error("a failure during the test would be retried")
	}
}

func TestParseProgRun(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/nlb-dev/nlb/ebpf/xdplb
BenchmarkProgRunEstablished/IPv4-2         	22522477	        52.20 ns/op	        47.00 ns/run
BenchmarkProgRunEstablished/IPv6-2         	19386650	        61.68 ns/run	        61.68 ns/op
BenchmarkProgRunNewFlow/IPv4-2             	  856140	      1370 ns/op	       498.0 ns/run
BenchmarkProgRunNewFlow/IPv6-2             	  811104	      1441 ns/op	       560.5 ns/run
PASS
`
	m, err := parseProgRun(out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{mProgEst4: 47, mProgEst6: 61.68, mProgNew4: 498, mProgNew6: 560.5}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if _, err := parseProgRun("BenchmarkProgRunEstablished/IPv4-2 100 5 ns/op 4 ns/run\nFAIL\n"); err == nil {
		t.Error("parseProgRun accepted output missing benchmarks")
	}
}

// The controller's configuration: what nlb reads back from it has the
// health tracking off and the VIP as a virtual server.
func TestControllerConfig(t *testing.T) {
	vip := netip.MustParseAddr("192.0.2.100")
	b, err := controllerConfig(nlbtest.K0sConfig{
		APIPort: port, VirtualServers: []netip.Addr{vip},
		Instances: []nlbtest.VRRPInstance{{VIPs: []netip.Prefix{netip.PrefixFrom(vip, 32)}, Interface: "eth0",
			VRID: vrid, Version: 3, Interval: 100 * time.Millisecond, AuthPass: "x"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	ctl := cfg.Controller()
	if ctl.Health.Enabled || len(ctl.VirtualServers) != 1 || ctl.VirtualServers[0].VIP != vip || ctl.APIPort != port {
		t.Errorf("controller %+v from\n%s", ctl, b)
	}
}
