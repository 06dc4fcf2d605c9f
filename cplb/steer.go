package cplb

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Steering hands VIP:apiPort connections to the proxy (Steer's, on Linux
// a *steer.Steering).
type Steering interface {
	// Mode names the mechanism: "sklookup" or "nftables".
	Mode() string
	// Stats returns the sk_lookup program's counters; ok is false
	// without them (nftables, or removed).
	Stats() (st SteeringStats, ok bool, err error)
	// Close removes the steering; it may be called more than once.
	Close() error
}

// SteeringStats are the sk_lookup program's counters.
type SteeringStats struct {
	// Steered counts connections assigned to the proxy's listener,
	// NoListener those left to the regular lookup, AssignFailed those
	// the kernel refused to assign.
	Steered, NoListener, AssignFailed uint64
}

// steeringCollector exports the sk_lookup program's counters as
// nlb_steering_connections_total{result}, read when scraped.
type steeringCollector struct {
	s    Steering
	desc *prometheus.Desc
}

func newSteeringCollector(s Steering) *steeringCollector {
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
