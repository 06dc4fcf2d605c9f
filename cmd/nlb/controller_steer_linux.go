package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/ebpf/sklookup"
	"github.com/nlb-dev/nlb/lb/steer"
)

// steering hands VIP:apiPort connections to the proxy (*steer.Steering).
type steering interface {
	// Mode names the mechanism: "sklookup" or "nftables".
	Mode() string
	// Stats returns the sk_lookup counters; ok is false without them
	// (nftables, or removed).
	Stats() (st sklookup.Stats, ok bool, err error)
	// Close removes the steering; it may be called more than once.
	Close() error
}

// steeringCollector exports the sk_lookup program's counters as
// nlb_steering_connections_total{result}, read when scraped.
type steeringCollector struct {
	s    steering
	desc *prometheus.Desc
}

func newSteeringCollector(s steering) *steeringCollector {
	return &steeringCollector{s: s, desc: prometheus.NewDesc("nlb_steering_connections_total",
		"Connections to VIP:apiPort seen by the sk_lookup program: steered into the proxy, "+
			"no_listener (left to the regular lookup) or assign_failed.", []string{"result"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *steeringCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *steeringCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok, err := c.s.Stats()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	if !ok {
		return
	}
	for result, v := range map[string]uint64{"steered": st.Steered, "no_listener": st.NoListener, "assign_failed": st.AssignFailed} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v), result)
	}
}

// attachSteering installs the steering of ctl.Steering for vips into the
// proxy's listeners, in this process's network namespace. It stays
// installed on every controller; it only matters where the VIP is local.
func attachSteering(ctl config.Controller, vips []netip.Addr, lns []*net.TCPListener, log *slog.Logger) (steering, error) {
	s, err := steer.Attach(steer.Config{
		Mode:      ctl.Steering,
		VIPs:      vips,
		Port:      uint16(ctl.APIPort),
		ProxyPort: uint16(ctl.ProxyPort),
		Listeners: lns,
		Logger:    log,
	})
	if err != nil {
		return nil, fmt.Errorf("steering: %w", err)
	}
	log.Info("steering VIP traffic into the proxy", "mode", s.Mode(), "vips", fmt.Sprint(vips), "port", ctl.APIPort, "proxy_port", ctl.ProxyPort)
	return s, nil
}
