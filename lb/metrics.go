package lb

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exposes the proxy's atomics at scrape time, so that the data
// path only does atomic adds and removed backends leave no stale series.
type collector struct{ p *Proxy }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("nlb_proxy_"+name, help, labels, nil)
}

var _ prometheus.Collector = collector{}

// metricDescs is built per call: no package state.
func metricDescs() map[string]*prometheus.Desc {
	return map[string]*prometheus.Desc{
		"active":     desc("active_connections", "Proxied connections open now."),
		"conns":      desc("connections_total", "Client connections accepted."),
		"bytes":      desc("bytes_total", "Bytes proxied; direction in is client to backend, out is backend to client.", "direction"),
		"limit":      desc("limit_reached_total", "Clients closed because max_connections was reached."),
		"maxconns":   desc("max_connections", "The connection limit."),
		"nobackend":  desc("no_backend_total", "Clients closed because no backend could be dialled."),
		"retries":    desc("dial_retries_total", "Backend dials beyond each client's first (the next backend, or another round within dialBudget)."),
		"waited":     desc("dial_waited_total", "Clients that every backend failed once and that waited to try again, within dialBudget."),
		"exhausted":  desc("dial_budget_exhausted_total", "Clients closed because no backend answered within dialBudget (also in no_backend_total)."),
		"idle":       desc("idle_timeouts_total", "Connections closed by the idle timeout."),
		"drained":    desc("drained_connections_total", "Connections closed at the end of a backend drain."),
		"failopen":   desc("fail_open", "1 when no backend is healthy and connections go to every known backend."),
		"b_active":   desc("backend_active_connections", "Proxied connections open now, per backend.", "backend"),
		"b_conns":    desc("backend_connections_total", "Connections proxied, per backend.", "backend"),
		"b_bytes":    desc("backend_bytes_total", "Bytes proxied per backend and direction.", "backend", "direction"),
		"b_dialfail": desc("dial_failures_total", "Failed dials (refused or connect timeout), per backend.", "backend"),
		"b_healthy":  desc("backend_healthy", "1 when the backend passes its active checks.", "backend"),
		"b_suspect":  desc("backend_suspect", "1 when a recent dial failed and no check has passed since.", "backend"),
		"b_draining": desc("backend_draining", "1 while the backend's connections are being drained.", "backend"),
		"b_checks":   desc("health_checks_total", "Active health checks per backend and result.", "backend", "result"),
	}
}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range metricDescs() {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	p, d := c.p, metricDescs()
	emit := func(desc *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		m, err := prometheus.NewConstMetric(desc, t, v, labels...)
		if err != nil {
			m = prometheus.NewInvalidMetric(desc, err)
		}
		ch <- m
	}
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	emit(d["active"], gauge, float64(p.active.Load()))
	emit(d["conns"], counter, float64(p.accepted.Load()))
	emit(d["bytes"], counter, float64(p.bytesIn.Load()), "in")
	emit(d["bytes"], counter, float64(p.bytesOut.Load()), "out")
	emit(d["limit"], counter, float64(p.limitHits.Load()))
	emit(d["maxconns"], gauge, float64(p.cfg.Load().MaxConnections))
	emit(d["nobackend"], counter, float64(p.noBackend.Load()))
	emit(d["retries"], counter, float64(p.dialRetries.Load()))
	emit(d["waited"], counter, float64(p.dialWaited.Load()))
	emit(d["exhausted"], counter, float64(p.dialExhausted.Load()))
	emit(d["idle"], counter, float64(p.idleClosed.Load()))
	emit(d["drained"], counter, float64(p.drained.Load()))
	emit(d["failopen"], gauge, b2f(p.failOpen.Load()))
	now, expiry := time.Now(), p.suspectExpiry(p.cfg.Load())
	for _, b := range p.allBackends() {
		a := b.addr
		emit(d["b_active"], gauge, float64(b.active.Load()), a)
		emit(d["b_conns"], counter, float64(b.total.Load()), a)
		emit(d["b_bytes"], counter, float64(b.bytesIn.Load()), a, "in")
		emit(d["b_bytes"], counter, float64(b.bytesOut.Load()), a, "out")
		emit(d["b_dialfail"], counter, float64(b.dialFailures.Load()), a)
		emit(d["b_healthy"], gauge, b2f(b.healthy.Load()), a)
		emit(d["b_suspect"], gauge, b2f(b.suspect(now, expiry)), a)
		emit(d["b_draining"], gauge, b2f(b.draining.Load()), a)
		emit(d["b_checks"], counter, float64(b.checksOK.Load()), a, "ok")
		emit(d["b_checks"], counter, float64(b.checksFailed.Load()), a, "failed")
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
