package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/lb/k8s"
	"github.com/nlb-dev/nlb/vrrp"
	"github.com/nlb-dev/nlb/vrrp/router"
)

// localAPICheck returns the address of this node's API server and the
// probe for it: GET /readyz with the admin kubeconfig's CA and identity
// when there is one, else a TCP connect.
func localAPICheck(flagAddr string, disc *proxyDiscover, apiPort int) (string, func(context.Context, string) error, error) {
	target := flagAddr
	if target == "" && disc.kc != nil {
		server, err := disc.kc.Server()
		if err != nil {
			return "", nil, err
		}
		if target, err = k8s.ServerHostPort(server); err != nil {
			return "", nil, fmt.Errorf("kubeconfig %s: %w", disc.kubeconfig, err)
		}
	}
	if target == "" {
		target = net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort))
	}
	if _, _, err := net.SplitHostPort(target); err != nil {
		return "", nil, fmt.Errorf("--local-api-server %q: %w", target, err)
	}
	if disc.check != nil {
		return target, disc.check.Check, nil
	}
	return target, func(ctx context.Context, addr string) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}, nil
}

// healthFeed checks the local API server and the proxy every interval and
// feeds the results to one vrrp.Tracker per instance, whose priority goes
// to the instance when the tracked state changes.
type healthFeed struct {
	cfg     config.Health
	target  string
	probe   func(context.Context, string) error
	proxy   *lb.Proxy // nil: not part of the check
	runners []*router.Router
	log     *slog.Logger

	checks  *prometheus.CounterVec
	healthG prometheus.Gauge

	mu       sync.Mutex
	trackers []*vrrp.Tracker
}

func newHealthFeed(cfg config.Health, target string, probe func(context.Context, string) error, proxy *lb.Proxy,
	runners []*router.Router, reg prometheus.Registerer, log *slog.Logger) (*healthFeed, error) {
	h := &healthFeed{cfg: cfg, target: target, probe: probe, proxy: proxy, runners: runners, log: log}
	for _, r := range runners {
		tr, err := vrrp.NewTracker(vrrp.TrackConfig{Fall: cfg.Fall, Rise: cfg.Rise, Weight: cfg.Weight}, r.Config().Priority)
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
	for _, c := range []prometheus.Collector{h.checks, h.healthG} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("health: metrics: %w", err)
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
	if h.proxy != nil && !proxyServes(h.proxy) {
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
		r := h.runners[i]
		prio := tr.Priority()
		if tr.Healthy() {
			h.log.Info("healthy again: taking part in VRRP", "instance", r.Config().Name, "priority", prio,
				"successes", h.cfg.Rise, "next_rise", tr.NeededToRecover())
			h.healthG.Set(1)
		} else {
			h.log.Warn("unhealthy: giving up or lowering VRRP priority", "instance", r.Config().Name, "priority", prio,
				"failures", h.cfg.Fall, "err", err)
			h.healthG.Set(0)
		}
		r.SetPriority(prio)
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

// healthStatus is the health part of the controller's /status.
type healthStatus struct {
	Target   string           `json:"target"`
	Interval string           `json:"interval"`
	Fall     int              `json:"fall"`
	Rise     int              `json:"rise"`
	Weight   int              `json:"weight"`
	Tracked  vrrp.TrackStatus `json:"tracked"`
}

func (h *healthFeed) status() healthStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	hs := healthStatus{Target: h.target, Interval: h.cfg.Interval.String(), Fall: h.cfg.Fall, Rise: h.cfg.Rise, Weight: h.cfg.Weight}
	if len(h.trackers) > 0 {
		hs.Tracked = h.trackers[0].Status()
	}
	return hs
}
