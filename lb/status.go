package lb

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Status is a snapshot of the proxy, served as JSON on /status.
type Status struct {
	Listeners []string        `json:"listeners"`
	Backends  []BackendStatus `json:"backends"`
	// FailOpen is true when no backend is healthy and new connections go
	// to every known backend.
	FailOpen       bool   `json:"fail_open"`
	Active         int64  `json:"active"`
	Total          uint64 `json:"total"`
	MaxConnections int    `json:"max_connections"`
	LimitReached   uint64 `json:"limit_reached"`
}

// BackendStatus describes one backend. Removed backends that still hold
// connections are listed with Removed set.
type BackendStatus struct {
	Address      string `json:"address"`
	Healthy      bool   `json:"healthy"`
	Suspect      bool   `json:"suspect"`
	Draining     bool   `json:"draining"`
	Removed      bool   `json:"removed,omitempty"`
	Active       int64  `json:"active"`
	Total        uint64 `json:"total"`
	BytesIn      uint64 `json:"bytes_in"`  // client → backend
	BytesOut     uint64 `json:"bytes_out"` // backend → client
	DialFailures uint64 `json:"dial_failures"`
}

// Status returns a snapshot of listeners, backends and counters.
func (p *Proxy) Status() Status {
	cfg := p.cfg.Load()
	st := Status{
		Listeners:      []string{},
		Backends:       []BackendStatus{},
		FailOpen:       p.failOpen.Load(),
		Active:         p.active.Load(),
		Total:          p.accepted.Load(),
		MaxConnections: cfg.MaxConnections,
		LimitReached:   p.limitHits.Load(),
	}
	for _, a := range p.Addrs() {
		st.Listeners = append(st.Listeners, a.String())
	}
	now, expiry := time.Now(), p.suspectExpiry(cfg)
	for _, b := range p.allBackends() {
		st.Backends = append(st.Backends, BackendStatus{
			Address:      b.addr,
			Healthy:      b.healthy.Load(),
			Suspect:      b.suspect(now, expiry),
			Draining:     b.draining.Load(),
			Removed:      b.removed.Load(),
			Active:       b.active.Load(),
			Total:        b.total.Load(),
			BytesIn:      b.bytesIn.Load(),
			BytesOut:     b.bytesOut.Load(),
			DialFailures: b.dialFailures.Load(),
		})
	}
	return st
}

// allBackends returns the configured backends followed by removed ones
// still draining.
func (p *Proxy) allBackends() []*backend {
	list := append([]*backend(nil), p.backends.Load().list...)
	p.mu.Lock()
	list = append(list, p.retired...)
	p.mu.Unlock()
	return list
}

// ready reports whether the proxy listens and has an eligible backend.
func (p *Proxy) ready() bool {
	if len(p.Addrs()) == 0 || p.closing.Load() {
		return false
	}
	now, expiry := time.Now(), p.suspectExpiry(p.cfg.Load())
	for _, b := range p.backends.Load().list {
		if b.eligible(now, expiry) {
			return true
		}
	}
	return false
}

// AdminHandler serves /metrics (from g), /healthz (the process runs),
// /readyz (listening with at least one healthy backend; 503 otherwise,
// including while failing open) and /status (JSON [Status]).
func (p *Proxy) AdminHandler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !p.ready() {
			http.Error(w, "not ready: no healthy backend or not listening", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(p.Status())
	})
	return mux
}
