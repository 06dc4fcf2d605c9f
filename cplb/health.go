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
	"github.com/nlb-dev/nlb/lb/k8s"
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
	// The bootstrap rule (config.Health.StartupGrace): until the check
	// has passed once, failures within the grace after the first check
	// are not fed to the trackers.
	start  time.Time // the first check's time; zero before it
	gated  bool      // failures count: the check passed once, or the grace is over
	denied string    // the last 401/403 counted as up ("" since a plain pass)
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
	h.gated = cfg.StartupGrace <= 0
	return h, nil
}

// once runs one check.
func (h *healthFeed) once(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	err := h.probe(cctx, h.target)
	var denied *k8s.DeniedError
	switch {
	case errors.As(err, &denied):
		// A verified API server of this cluster answered, and refused
		// the identity: it is up. During kubeadm init (Kubernetes 1.29
		// and later) admin.conf has no rights until kubeadm has created
		// its RBAC; that must not take the VIP away.
		h.noteDenied(denied.Status)
	case err != nil:
		return fmt.Errorf("API server %s: %w", h.target, err)
	default:
		h.noteDenied("")
	}
	if p := h.c.proxy; p != nil && !proxyServes(p) {
		return errors.New("proxy: not listening or no backend")
	}
	return nil
}

// noteDenied records a 401/403 counted as up (status "" after a plain
// pass), logging when that starts and ends.
func (h *healthFeed) noteDenied(status string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if status == h.denied {
		return
	}
	if status != "" {
		h.log.Warn("the local API server refuses the kubeconfig's identity: counted as up for VRRP "+
			"(discovery and the proxy's checks join in once it has rights)", "target", h.target, "status", status)
	} else {
		h.log.Info("the local API server accepts the kubeconfig's identity again", "target", h.target)
	}
	h.denied = status
}

// observe feeds one result to every tracker and applies changes. Before
// the check has passed once, failures within the startup grace are only
// counted (the bootstrap rule).
func (h *healthFeed) observe(now time.Time, err error) {
	result := "ok"
	if err != nil {
		result = "fail"
	}
	h.checks.WithLabelValues(result).Inc()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.start.IsZero() {
		h.start = now
	}
	if !h.gated {
		switch {
		case err == nil:
			h.gated = true
			h.log.Info("local API server healthy: the VIP follows its health from now on", "target", h.target)
		case now.Sub(h.start) < h.cfg.StartupGrace:
			return // bootstrap: the node keeps its configured priority
		default:
			h.gated = true
			h.log.Warn("startup grace over and the local API server has never been healthy: the VIP follows its health from now on",
				"target", h.target, "grace", h.cfg.StartupGrace, "err", err)
		}
	}
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
	hs := HealthStatus{Target: h.target, Interval: h.cfg.Interval.String(), Fall: h.cfg.Fall, Rise: h.cfg.Rise, Weight: h.cfg.Weight,
		Denied: h.denied}
	if !h.gated {
		hs.Bootstrap = "the local API server has not been healthy yet: failures are not counted until it is, " +
			"or until the startup grace (" + h.cfg.StartupGrace.String() + ") is over"
		if !h.start.IsZero() {
			hs.Bootstrap += " at " + h.start.Add(h.cfg.StartupGrace).UTC().Format(time.RFC3339)
		}
	}
	if len(h.trackers) > 0 {
		hs.Tracked = h.trackers[0].Status()
	}
	return hs
}
