package cplb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/vrrp"
)

// healthFeed checks the local API server and the proxy every interval and
// feeds the results to one vrrp.Tracker per instance, whose priority goes
// to the instance when the tracked state changes.
type healthFeed struct {
	cfg    config.Health
	target string
	probe  func(context.Context, string) error
	c      *Controller // its proxy (nil: not part of the check) and instances
	log    *slog.Logger

	checks  *prometheus.CounterVec
	healthG prometheus.Gauge

	mu       sync.Mutex
	trackers []*vrrp.Tracker
}

func newHealthFeed(c *Controller, target string, probe func(context.Context, string) error, log *slog.Logger) (*healthFeed, error) {
	cfg := c.cfg.Health
	h := &healthFeed{cfg: cfg, target: target, probe: probe, c: c, log: log}
	for _, v := range c.vrrp {
		tr, err := vrrp.NewTracker(vrrp.TrackConfig{Fall: cfg.Fall, Rise: cfg.Rise, Weight: cfg.Weight}, v.Config().Priority)
		if err != nil {
			return nil, err
		}
		h.trackers = append(h.trackers, tr)
	}
	h.checks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nlb_controller_health_checks_total",
		Help: "Health checks of the local API server and proxy that feed VRRP, by result.",
	}, []string{"result"})
	h.healthG = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nlb_controller_healthy",
		Help: "1 while the node counts as healthy for VRRP (after rise/fall hysteresis).",
	})
	if c.reg != nil {
		for _, m := range []prometheus.Collector{h.checks, h.healthG} {
			if err := c.reg.Register(m); err != nil {
				return nil, fmt.Errorf("health: metrics: %w", err)
			}
		}
	}
	h.healthG.Set(1)
	return h, nil
}

// once runs one check.
func (h *healthFeed) once(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	if err := h.probe(cctx, h.target); err != nil {
		return fmt.Errorf("API server %s: %w", h.target, err)
	}
	if p := h.c.proxy; p != nil && !proxyServes(p) {
		return errors.New("proxy: not listening or no backend")
	}
	return nil
}

// observe feeds one result to every tracker and applies changes.
func (h *healthFeed) observe(now time.Time, err error) {
	result := "ok"
	if err != nil {
		result = "fail"
	}
	h.checks.WithLabelValues(result).Inc()
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, tr := range h.trackers {
		if !tr.Observe(now, err) {
			continue
		}
		v := h.c.vrrp[i]
		prio := tr.Priority()
		if tr.Healthy() {
			h.log.Info("healthy again: taking part in VRRP", "instance", v.Config().Name, "priority", prio,
				"successes", h.cfg.Rise, "next_rise", tr.NeededToRecover())
			h.healthG.Set(1)
		} else {
			h.log.Warn("unhealthy: giving up or lowering VRRP priority", "instance", v.Config().Name, "priority", prio,
				"failures", h.cfg.Fall, "err", err)
			h.healthG.Set(0)
		}
		v.SetPriority(prio)
	}
}

// run checks every interval until ctx ends.
func (h *healthFeed) run(ctx context.Context) {
	t := time.NewTicker(h.cfg.Interval)
	defer t.Stop()
	for {
		h.observe(time.Now(), h.once(ctx))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (h *healthFeed) healthy() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.trackers) == 0 || h.trackers[0].Healthy()
}

func (h *healthFeed) status() HealthStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	hs := HealthStatus{Target: h.target, Interval: h.cfg.Interval.String(), Fall: h.cfg.Fall, Rise: h.cfg.Rise, Weight: h.cfg.Weight}
	if len(h.trackers) > 0 {
		hs.Tracked = h.trackers[0].Status()
	}
	return hs
}
