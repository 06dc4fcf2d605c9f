package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/nlb-dev/nlb/internal/stats"
)

// The three implementations, in table order.
const (
	implDirect  = "direct"
	implHAProxy = "haproxy"
	implNLB     = "nlb"
)

// Metric names, as printed in the "metric" field.
const (
	mThroughput1 = "throughput_1stream"
	mThroughput8 = "throughput_8streams"
	mConnRate    = "conn_rate"
	mLatencyP50  = "latency_p50"
	mLatencyP99  = "latency_p99"
	mRRRate      = "rr_rate"
	mIdleMem     = "idle_conn_memory"
	mIdleRSS     = "idle_conn_rss"
	mIdleKernel  = "idle_conn_kernel"
	mIdleSystem  = "idle_conn_kernel_system"
	mIdleFDs     = "idle_conn_fds"
	mCPU1        = "proxy_cpu_1stream"
	mCPU8        = "proxy_cpu_8streams"
	mCPUConn     = "proxy_cpu_conn_rate"
	// nlb's bulk throughput again with loopbackCongestionControl:
	// system, which keeps the system's (possibly pacing) algorithm on
	// the loopback legs: what the same proxy moves on a machine where
	// that setting does not apply (legs to other hosts).
	mThroughput1Sys = "throughput_1stream_system_cc"
	mThroughput8Sys = "throughput_8streams_system_cc"
)

// metricDef describes how one metric is printed.
type metricDef struct {
	name     string
	unit     string
	label    string // table text
	decimals int
	// peers, when set, is the metric whose direct and haproxy figures
	// this nlb-only row is shown and compared with.
	peers string
}

// peerMetric is the metric of the direct and haproxy columns of d's row.
func (d metricDef) peerMetric() string {
	if d.peers != "" {
		return d.peers
	}
	return d.name
}

// metricDefs lists every metric in output order: the goal metrics first,
// then the diagnostics.
func metricDefs() []metricDef {
	return []metricDef{
		{mThroughput1, "Gbit/s", "bulk throughput, 1 stream", 2, ""},
		{mThroughput8, "Gbit/s", "bulk throughput, 8 streams", 2, ""},
		{mConnRate, "conn/s", "new connections per second", 0, ""},
		{mLatencyP50, "us", "request/response latency p50", 1, ""},
		{mLatencyP99, "us", "request/response latency p99", 1, ""},
		{mIdleMem, "KiB", "memory per idle proxied connection", 1, ""},
		{mRRRate, "req/s", "kept-alive request/response rate", 0, ""},
		{mIdleRSS, "KiB", "idle conn: proxy RSS", 1, ""},
		{mIdleKernel, "KiB", "idle conn: proxy's kernel objects", 1, ""},
		{mIdleSystem, "KiB", "idle conn: system-wide kernel growth, whole path", 1, ""},
		{mIdleFDs, "fds", "idle conn: proxy fds", 2, ""},
		{mCPU1, "cores", "proxy CPU, 1 stream", 2, ""},
		{mCPU8, "cores", "proxy CPU, 8 streams", 2, ""},
		{mCPUConn, "cores", "proxy CPU, new connections", 2, ""},
		{mThroughput1Sys, "Gbit/s", "bulk, 1 stream, nlb with loopbackCongestionControl: system", 2, mThroughput1},
		{mThroughput8Sys, "Gbit/s", "bulk, 8 streams, nlb with loopbackCongestionControl: system", 2, mThroughput8},
	}
}

// goal is one acceptance criterion of the issue: nlb's median compared with
// factor times another implementation's median, or with an absolute bound
// when against is empty.
type goal struct {
	metric  string
	against string // implHAProxy, implDirect, or "" for an absolute bound
	atLeast bool   // nlb >= bound, otherwise nlb <= bound
	factor  float64
}

func goals() []goal {
	return []goal{
		{mThroughput1, implHAProxy, true, 1.3},
		{mThroughput1, implDirect, true, 0.6},
		{mThroughput8, implHAProxy, true, 1.3},
		{mThroughput8, implDirect, true, 0.6},
		{mConnRate, implHAProxy, true, 1},
		{mLatencyP99, implHAProxy, false, 1},
		{mIdleMem, "", false, 16},
	}
}

func (g goal) String() string {
	op := "≤"
	if g.atLeast {
		op = "≥"
	}
	if g.against == "" {
		return fmt.Sprintf("%s %g", op, g.factor)
	}
	return fmt.Sprintf("%s %g× %s", op, g.factor, g.against)
}

// eval reports whether the goal is met; ok is false when a figure is
// missing.
func (g goal) eval(r results) (met, ok bool) {
	n, ok := r.median(implNLB, g.metric)
	if !ok {
		return false, false
	}
	bound := g.factor
	if g.against != "" {
		v, ok := r.median(g.against, g.metric)
		if !ok {
			return false, false
		}
		bound *= v
	}
	if g.atLeast {
		return n >= bound, true
	}
	return n <= bound, true
}

// results holds every run's value per implementation and metric.
type results map[string]map[string][]float64

func (r results) add(impl, metric string, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	if r[impl] == nil {
		r[impl] = make(map[string][]float64)
	}
	r[impl][metric] = append(r[impl][metric], v)
}

func (r results) median(impl, metric string) (float64, bool) {
	v := r[impl][metric]
	if len(v) == 0 {
		return 0, false
	}
	return stats.Median(v), true
}

// percentile returns the nearest-rank p-quantile (0 < p <= 1) of sorted.
func percentile(sorted []uint32, p float64) uint32 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

// jsonLine is one line of the machine-readable output.
type jsonLine struct {
	Impl   string    `json:"impl"`
	Metric string    `json:"metric"`
	Value  float64   `json:"value"`
	Unit   string    `json:"unit"`
	Runs   []float64 `json:"runs,omitempty"`
}

// round rounds v to d decimals.
func round(v float64, d int) float64 {
	p := math.Pow(10, float64(d))
	return math.Round(v*p) / p
}

// writeJSONLines writes one JSON object per measured (impl, metric), with
// the median as value and every run's value in runs.
func writeJSONLines(w io.Writer, r results, impls []string) error {
	enc := json.NewEncoder(w)
	for _, d := range metricDefs() {
		for _, impl := range impls {
			runs := r[impl][d.name]
			if len(runs) == 0 {
				continue
			}
			rr := make([]float64, len(runs))
			for i, v := range runs {
				rr[i] = round(v, d.decimals+1)
			}
			l := jsonLine{Impl: impl, Metric: d.name, Value: round(stats.Median(runs), d.decimals+1), Unit: d.unit, Runs: rr}
			if err := enc.Encode(l); err != nil {
				return err
			}
		}
	}
	return nil
}

func formatValue(v float64, decimals int) string {
	return strconv.FormatFloat(v, 'f', decimals, 64)
}

// cell formats the median of impl's metric, or "—" when it is missing.
func (r results) cell(impl string, d metricDef) string {
	v, ok := r.median(impl, d.name)
	if !ok {
		return "—"
	}
	return formatValue(v, d.decimals)
}

func (r results) ratio(impl, base, metric string) string {
	return r.ratioOf(impl, metric, base, metric)
}

// ratioOf formats impl's metric over base's baseMetric.
func (r results) ratioOf(impl, metric, base, baseMetric string) string {
	a, ok1 := r.median(impl, metric)
	b, ok2 := r.median(base, baseMetric)
	if !ok1 || !ok2 || b == 0 {
		return "—"
	}
	return formatValue(a/b, 2) + "×"
}

// writeTable writes the Markdown table of medians and ratios, and the goal
// verdicts.
func writeTable(w io.Writer, r results) error {
	var b strings.Builder
	b.WriteString("| metric | unit | direct | haproxy | nlb | nlb/haproxy | nlb/direct | goal | met? |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|---|---|\n")
	gs := goals()
	for _, d := range metricDefs() {
		pm := d.peerMetric()
		if len(r[implDirect][pm])+len(r[implHAProxy][pm])+len(r[implNLB][d.name]) == 0 {
			continue
		}
		pd := d
		pd.name = pm
		var texts, verdicts []string
		for _, g := range gs {
			if g.metric != d.name {
				continue
			}
			texts = append(texts, g.String())
			met, ok := g.eval(r)
			switch {
			case !ok:
				verdicts = append(verdicts, "not measured")
			case met:
				verdicts = append(verdicts, "yes")
			default:
				verdicts = append(verdicts, "**no**")
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			strings.TrimSpace(d.label), d.unit,
			r.cell(implDirect, pd), r.cell(implHAProxy, pd), r.cell(implNLB, d),
			r.ratioOf(implNLB, d.name, implHAProxy, pm), r.ratioOf(implNLB, d.name, implDirect, pm),
			strings.Join(texts, ", "), strings.Join(verdicts, ", "))
	}
	met, total := 0, 0
	var unmet []string
	for _, g := range gs {
		total++
		ok, measured := g.eval(r)
		if ok {
			met++
		} else {
			why := "not met"
			if !measured {
				why = "not measured"
			}
			unmet = append(unmet, fmt.Sprintf("%s %s (%s)", g.metric, g, why))
		}
	}
	fmt.Fprintf(&b, "\nGoals met: %d of %d.", met, total)
	if len(unmet) > 0 {
		fmt.Fprintf(&b, " Unmet: %s.", strings.Join(unmet, "; "))
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}
