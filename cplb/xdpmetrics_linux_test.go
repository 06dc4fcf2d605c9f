//go:build linux

package cplb

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nlb-dev/nlb/ebpf/xdplb"
)

// fakeXDP is a stats source for the nlb_xdp_* metrics.
type fakeXDP struct {
	st  xdplb.Stats
	err error
}

func (f *fakeXDP) Stats() (xdplb.Stats, error) { return f.st, f.err }

// TestXDPMetrics: every counter of every service and backend, and every
// event, becomes its series with its labels and value.
func TestXDPMetrics(t *testing.T) {
	a := netip.MustParseAddr
	f := &fakeXDP{st: xdplb.Stats{
		Services: []xdplb.ServiceStats{
			{
				VIP: a("192.0.2.10"), Port: 6443,
				Counters: xdplb.Counters{Packets: 100, Bytes: 6400, NewFlows: 7, Rehashed: 2},
				Backends: []xdplb.BackendStats{
					{Addr: a("192.0.2.11"), Counters: xdplb.Counters{Packets: 60, Bytes: 3840, NewFlows: 4, Rehashed: 1}},
					{Addr: a("192.0.2.12"), Counters: xdplb.Counters{Packets: 40, Bytes: 2560, NewFlows: 3, Rehashed: 1}},
				},
			},
			{
				VIP: a("2001:db8::10"), Port: 6443,
				Counters: xdplb.Counters{Packets: 5, Bytes: 430, NewFlows: 1},
				Backends: []xdplb.BackendStats{
					{Addr: a("2001:db8::11"), Counters: xdplb.Counters{Packets: 5, Bytes: 430, NewFlows: 1}},
				},
			},
		},
		Events: xdplb.Events{Malformed: 1, Fragments: 2, Backup: 3, LoopGuard: 4, Local: 5, NoBackend: 6, ICMPForwarded: 8},
	}}
	reg := prometheus.NewRegistry()
	if err := RegisterXDPMetrics(reg, f); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP nlb_xdp_backend_bytes_total Bytes (Ethernet header and IP packet) the XDP program handled, per backend of a service.
# TYPE nlb_xdp_backend_bytes_total counter
nlb_xdp_backend_bytes_total{backend="192.0.2.11",port="6443",vip="192.0.2.10"} 3840
nlb_xdp_backend_bytes_total{backend="192.0.2.12",port="6443",vip="192.0.2.10"} 2560
nlb_xdp_backend_bytes_total{backend="2001:db8::11",port="6443",vip="2001:db8::10"} 430
# HELP nlb_xdp_backend_new_flows_total SYNs that missed the XDP program's flow table, per backend of a service.
# TYPE nlb_xdp_backend_new_flows_total counter
nlb_xdp_backend_new_flows_total{backend="192.0.2.11",port="6443",vip="192.0.2.10"} 4
nlb_xdp_backend_new_flows_total{backend="192.0.2.12",port="6443",vip="192.0.2.10"} 3
nlb_xdp_backend_new_flows_total{backend="2001:db8::11",port="6443",vip="2001:db8::10"} 1
# HELP nlb_xdp_backend_packets_total Packets the XDP program handled (forwarded, or passed to the local backend; ICMP errors included), per backend of a service.
# TYPE nlb_xdp_backend_packets_total counter
nlb_xdp_backend_packets_total{backend="192.0.2.11",port="6443",vip="192.0.2.10"} 60
nlb_xdp_backend_packets_total{backend="192.0.2.12",port="6443",vip="192.0.2.10"} 40
nlb_xdp_backend_packets_total{backend="2001:db8::11",port="6443",vip="2001:db8::10"} 5
# HELP nlb_xdp_backend_rehashed_flows_total Other TCP packets that missed the XDP program's flow table and were sent by the Maglev table, per backend of a service.
# TYPE nlb_xdp_backend_rehashed_flows_total counter
nlb_xdp_backend_rehashed_flows_total{backend="192.0.2.11",port="6443",vip="192.0.2.10"} 1
nlb_xdp_backend_rehashed_flows_total{backend="192.0.2.12",port="6443",vip="192.0.2.10"} 1
nlb_xdp_backend_rehashed_flows_total{backend="2001:db8::11",port="6443",vip="2001:db8::10"} 0
# HELP nlb_xdp_bytes_total Bytes (Ethernet header and IP packet) the XDP program handled, per service.
# TYPE nlb_xdp_bytes_total counter
nlb_xdp_bytes_total{port="6443",vip="192.0.2.10"} 6400
nlb_xdp_bytes_total{port="6443",vip="2001:db8::10"} 430
# HELP nlb_xdp_events_total What the XDP program passed to the local stack instead of forwarding (malformed, fragment, loop_guard, local, no_backend), the ICMP errors about VIP flows it forwarded (icmp_forwarded), and the VIP traffic it forwarded while Backup (backup: clients with a stale ARP entry after a VIP move).
# TYPE nlb_xdp_events_total counter
nlb_xdp_events_total{event="backup"} 3
nlb_xdp_events_total{event="fragment"} 2
nlb_xdp_events_total{event="icmp_forwarded"} 8
nlb_xdp_events_total{event="local"} 5
nlb_xdp_events_total{event="loop_guard"} 4
nlb_xdp_events_total{event="malformed"} 1
nlb_xdp_events_total{event="no_backend"} 6
# HELP nlb_xdp_new_flows_total SYNs that missed the XDP program's flow table, per service.
# TYPE nlb_xdp_new_flows_total counter
nlb_xdp_new_flows_total{port="6443",vip="192.0.2.10"} 7
nlb_xdp_new_flows_total{port="6443",vip="2001:db8::10"} 1
# HELP nlb_xdp_packets_total Packets the XDP program handled (forwarded, or passed to the local backend; ICMP errors included), per service.
# TYPE nlb_xdp_packets_total counter
nlb_xdp_packets_total{port="6443",vip="192.0.2.10"} 100
nlb_xdp_packets_total{port="6443",vip="2001:db8::10"} 5
# HELP nlb_xdp_rehashed_flows_total Other TCP packets that missed the XDP program's flow table and were sent by the Maglev table, per service.
# TYPE nlb_xdp_rehashed_flows_total counter
nlb_xdp_rehashed_flows_total{port="6443",vip="192.0.2.10"} 2
nlb_xdp_rehashed_flows_total{port="6443",vip="2001:db8::10"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}

	// A service removed from the program leaves no stale series.
	f.st.Services = f.st.Services[:1]
	if n, err := testutil.GatherAndCount(reg, "nlb_xdp_packets_total", "nlb_xdp_backend_packets_total"); err != nil || n != 3 {
		t.Errorf("after removing a service: %d series, %v; want 3", n, err)
	}

	// A failed read fails the scrape, naming the cause.
	f.err = errors.New("map gone")
	if _, err := reg.Gather(); err == nil || !strings.Contains(err.Error(), "map gone") {
		t.Errorf("Gather with a failing source: %v", err)
	}
}
