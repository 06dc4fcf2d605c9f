//go:build linux

package cplb

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nlb-dev/nlb/ebpf/xdplb"
)

// XDPStats is where the nlb_xdp_* metrics come from: the loaded XDP load
// balancer (*xdplb.Objects) in nlb, a fake in tests.
type XDPStats interface {
	// Stats reads the program's counters.
	Stats() (xdplb.Stats, error)
}

var _ XDPStats = (*xdplb.Objects)(nil)

// RegisterXDPMetrics registers the XDP fast path's counters on reg as the
// nlb_xdp_* metrics, read from s when scraped (a removed service or
// backend leaves no stale series):
//
//   - nlb_xdp_{packets,bytes,new_flows,rehashed_flows}_total{vip,port}: per
//     service;
//   - nlb_xdp_backend_{packets,bytes,new_flows,rehashed_flows}_total{vip,port,backend}:
//     per backend of a service;
//   - nlb_xdp_events_total{event}: what the program passed to the local
//     stack instead of forwarding (malformed, fragment, loop_guard, local,
//     no_backend), the ICMP errors it forwarded (icmp_forwarded) and the VIP
//     traffic it forwarded while Backup (backup: clients with a stale ARP
//     entry after a VIP move).
//
// A failed read makes the scrape report the error.
func RegisterXDPMetrics(reg prometheus.Registerer, s XDPStats) error {
	return reg.Register(newXDPCollector(s))
}

// xdpCollector is the prometheus.Collector of RegisterXDPMetrics.
type xdpCollector struct {
	s XDPStats
	// svc and be are the per-service and per-backend descriptions, in
	// the order of xdpCounterNames.
	svc, be [4]*prometheus.Desc
	events  *prometheus.Desc
}

// xdpCounterNames name xdplb.Counters' fields in the metric names, with
// their help, in the order of xdpValues (a func: no package state).
func xdpCounterNames() [4][2]string {
	return [4][2]string{
		{"packets_total", "Packets the XDP program handled (forwarded, or passed to the local backend; ICMP errors included)"},
		{"bytes_total", "Bytes (Ethernet header and IP packet) the XDP program handled"},
		{"new_flows_total", "SYNs that missed the XDP program's flow table"},
		{"rehashed_flows_total", "Other TCP packets that missed the XDP program's flow table and were sent by the Maglev table"},
	}
}

// xdpValues are c's fields in the order of xdpCounterNames.
func xdpValues(c xdplb.Counters) [4]uint64 {
	return [4]uint64{c.Packets, c.Bytes, c.NewFlows, c.Rehashed}
}

func newXDPCollector(s XDPStats) *xdpCollector {
	c := &xdpCollector{s: s}
	for i, n := range xdpCounterNames() {
		c.svc[i] = prometheus.NewDesc("nlb_xdp_"+n[0], n[1]+", per service.", []string{"vip", "port"}, nil)
		c.be[i] = prometheus.NewDesc("nlb_xdp_backend_"+n[0], n[1]+", per backend of a service.",
			[]string{"vip", "port", "backend"}, nil)
	}
	c.events = prometheus.NewDesc("nlb_xdp_events_total",
		"What the XDP program passed to the local stack instead of forwarding (malformed, fragment, loop_guard, "+
			"local, no_backend), the ICMP errors about VIP flows it forwarded (icmp_forwarded), and the VIP traffic "+
			"it forwarded while Backup (backup: clients with a stale ARP entry after a VIP move).",
		[]string{"event"}, nil)
	return c
}

// Describe implements prometheus.Collector.
func (c *xdpCollector) Describe(ch chan<- *prometheus.Desc) {
	for i := range c.svc {
		ch <- c.svc[i]
		ch <- c.be[i]
	}
	ch <- c.events
}

// Collect implements prometheus.Collector.
func (c *xdpCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.s.Stats()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.events, err)
		return
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, s := range st.Services {
		vip, port := s.VIP.String(), strconv.Itoa(int(s.Port))
		for i, v := range xdpValues(s.Counters) {
			counter(c.svc[i], v, vip, port)
		}
		for _, b := range s.Backends {
			for i, v := range xdpValues(b.Counters) {
				counter(c.be[i], v, vip, port, b.Addr.String())
			}
		}
	}
	for _, e := range xdpEvents(st.Events) {
		counter(c.events, e.v, e.name)
	}
}

// namedCount is one of xdpEvents.
type namedCount struct {
	name string
	v    uint64
}

// xdpEvents names the program's events as nlb_xdp_events_total's event
// label and /status do.
func xdpEvents(ev xdplb.Events) []namedCount {
	return []namedCount{
		{"malformed", ev.Malformed},
		{"fragment", ev.Fragments},
		{"backup", ev.Backup},
		{"loop_guard", ev.LoopGuard},
		{"local", ev.Local},
		{"no_backend", ev.NoBackend},
		{"icmp_forwarded", ev.ICMPForwarded},
	}
}
