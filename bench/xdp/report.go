package main

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/nlb-dev/nlb/internal/benchrun"
	"github.com/nlb-dev/nlb/internal/stats"
)

// Goals of issue 12.
const (
	goalBulkRatio = 0.9  // XDP ≥ 0.9× direct on server-to-client bulk
	goalRRRatio   = 0.9  // and on kept-alive requests/s
	goalCPURatio  = 1.15 // whole-machine CPU per request ≤ 1.15× direct's
	goalEstNS     = 100  // ns per established packet through BPF_PROG_RUN
	goalNewNS     = 300  // ns per new flow
)

// result is one JSON line: a path's metric, the median of its runs.
type result struct {
	Impl   string    `json:"impl"`
	Metric string    `json:"metric"`
	Value  float64   `json:"value"`
	Unit   string    `json:"unit"`
	Runs   []float64 `json:"runs"`
}

// results collects every run's figures by path and metric.
type results struct {
	runs     map[string]map[string][]float64 // impl → metric → runs
	failures map[string][]string             // impl → what failed
}

func newResults() *results {
	return &results{runs: map[string]map[string][]float64{}, failures: map[string][]string{}}
}

// add records one run's metrics.
func (r *results) add(impl string, m map[string]float64) {
	if r.runs[impl] == nil {
		r.runs[impl] = map[string][]float64{}
	}
	for k, v := range m {
		r.runs[impl][k] = append(r.runs[impl][k], v)
	}
}

// fail records a failed run.
func (r *results) fail(impl, what string) { r.failures[impl] = append(r.failures[impl], what) }

// median returns the median of impl's metric and whether it was measured.
func (r *results) median(impl, metric string) (float64, bool) {
	xs := r.runs[impl][metric]
	if len(xs) == 0 {
		return math.NaN(), false
	}
	return stats.Median(xs), true
}

// lines returns the JSON lines: every path's metrics in a fixed order.
func (r *results) lines() []result {
	var out []result
	impls := append(slices.Clone(allImpls), "")
	for impl := range r.runs {
		if !slices.Contains(impls, impl) {
			impls = append(impls, impl)
		}
	}
	for _, impl := range impls {
		var ms []string
		for m := range r.runs[impl] {
			ms = append(ms, m)
		}
		slices.Sort(ms)
		for _, m := range ms {
			v, _ := r.median(impl, m)
			out = append(out, result{Impl: impl, Metric: m, Value: v, Unit: unit(m), Runs: r.runs[impl][m]})
		}
	}
	return out
}

// row is a line of the main table.
type row struct {
	label, metric string
	higherBetter  bool
	format        string
}

var rows = []row{
	{"bulk server→client, 1 stream (Gbit/s)", mThroughput1, true, "%.2f"},
	{"bulk server→client, 8 streams (-P 8, Gbit/s)", mThroughput8, true, "%.2f"},
	{"machine CPU per GB, 1 stream (CPU-s)", mCPUPerGB1, false, "%.3f"},
	{"machine CPU per GB, 8 streams (CPU-s)", mCPUPerGB8, false, "%.3f"},
	{"kept-alive requests/s", mRRRate, true, "%.0f"},
	{"kept-alive p50 (µs)", mRRP50, false, "%.0f"},
	{"kept-alive p99 (µs)", mRRP99, false, "%.0f"},
	{"machine CPU per kept-alive request (µs)", mRRCPU, false, "%.1f"},
	{"new connections/s (Connection: close)", mConnRate, true, "%.0f"},
	{"machine CPU per new connection (µs)", mConnCPU, false, "%.1f"},
	{"XDP program run time per kept-alive request (µs, BPF stats)", mXDPRRCPU, false, "%.3f"},
	{"XDP program run time per new connection (µs, BPF stats)", mXDPConnCPU, false, "%.3f"},
	{"XDP program ns per run, kept-alive test (BPF stats)", mXDPRunNS, false, "%.0f"},
	{"XDP program runs per kept-alive request", mXDPRunsPerRR, false, "%.2f"},
	{"machine busy during the kept-alive test (cores of 2)", mBusy + "_" + testRR, false, "%.2f"},
	{"machine busy during the 1-stream bulk test (cores of 2)", mBusy + "_" + testBulk1, false, "%.2f"},
}

// proxies are the paths through a proxy, which direct should beat.
var proxies = []string{implProxy, implHAProxy1, implHAProxy2}

// judgeRatio is a goal "XDP ≥ ratio × direct" on a figure where higher is
// better. When a proxy's median beats direct, the load generator (or the
// sharing of 2 cores between it, the servers and the proxy), not the
// path, sets the figure, and it cannot judge the goal.
func (r *results) judgeRatio(metric string, ratio float64) (string, float64) {
	x, okX := r.median(implXDP, metric)
	d, okD := r.median(implDirect, metric)
	if !okX || !okD || d <= 0 {
		return "not measured", math.NaN()
	}
	got := x / d
	for _, p := range proxies {
		if v, ok := r.median(p, metric); ok && v > d {
			return fmt.Sprintf("cannot judge (%s %.3g > direct %.3g: the load generator sets the figure); XDP/direct %.2f", p, v, d, got), got
		}
	}
	return benchrun.Met(got >= ratio), got
}

// judgeCPU is "XDP's machine CPU per request ≤ ratio × direct's".
func (r *results) judgeCPU(metric string, ratio float64) (string, float64) {
	x, okX := r.median(implXDP, metric)
	d, okD := r.median(implDirect, metric)
	if !okX || !okD || d <= 0 {
		return "not measured", math.NaN()
	}
	got := x / d
	return benchrun.Met(got <= ratio), got
}

// markdown renders the report: the paths side by side, the goals, the
// BPF_PROG_RUN figures and the notes.
func (r *results) markdown(meta []string, background []float64) string {
	var b strings.Builder
	impls := []string{}
	for _, impl := range allImpls {
		if r.runs[impl] != nil || len(r.failures[impl]) > 0 {
			impls = append(impls, impl)
		}
	}
	benchrun.TableHead(&b, []string{"metric"}, slices.Concat(impls, []string{"nlb-xdp/direct"}))
	for _, rw := range rows {
		var cells []string
		any := false
		for _, impl := range impls {
			v, ok := r.median(impl, rw.metric)
			if !ok {
				cells = append(cells, "–")
				continue
			}
			any = true
			cells = append(cells, fmt.Sprintf(rw.format, v))
		}
		if !any {
			continue
		}
		ratio := "–"
		x, okX := r.median(implXDP, rw.metric)
		d, okD := r.median(implDirect, rw.metric)
		if okX && okD && d > 0 {
			ratio = fmt.Sprintf("%.2f", x/d)
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", rw.label, strings.Join(cells, " | "), ratio)
	}

	b.WriteString("\nGoals (issue 12), nlb-xdp against direct on the same lab:\n\n| goal | measured | verdict |\n|---|--:|---|\n")
	for _, g := range []struct {
		label, metric string
		ratio         float64
	}{
		{"bulk server→client, 1 stream ≥ 0.9× direct", mThroughput1, goalBulkRatio},
		{"bulk server→client, 8 streams ≥ 0.9× direct", mThroughput8, goalBulkRatio},
		{"kept-alive requests/s ≥ 0.9× direct", mRRRate, goalRRRatio},
	} {
		v, got := r.judgeRatio(g.metric, g.ratio)
		fmt.Fprintf(&b, "| %s | %s | %s |\n", g.label, ratioCell(got), v)
	}
	for _, g := range []struct{ label, metric string }{
		{"machine CPU per kept-alive request ≤ 1.15× direct's", mRRCPU},
		{"machine CPU per new connection ≤ 1.15× direct's", mConnCPU},
	} {
		v, got := r.judgeCPU(g.metric, goalCPURatio)
		fmt.Fprintf(&b, "| %s | %s | %s |\n", g.label, ratioCell(got), v)
	}
	for _, g := range []struct {
		label  string
		ms     []string
		goalNS float64
	}{
		{"BPF_PROG_RUN: ≤ 100 ns per established packet (worse of IPv4, IPv6)", []string{mProgEst4, mProgEst6}, goalEstNS},
		{"BPF_PROG_RUN: ≤ 300 ns per new flow (worse of IPv4, IPv6)", []string{mProgNew4, mProgNew6}, goalNewNS},
	} {
		worst, ok := math.Inf(-1), true
		for _, m := range g.ms {
			v, found := r.median(implXDP, m)
			ok = ok && found
			worst = max(worst, v)
		}
		if !ok {
			fmt.Fprintf(&b, "| %s | – | not measured |\n", g.label)
			continue
		}
		fmt.Fprintf(&b, "| %s | %.0f ns | %s |\n", g.label, worst, benchrun.Met(worst <= g.goalNS))
	}

	if _, ok := r.median(implXDP, mProgEst4); ok {
		b.WriteString("\nThe program's cost per packet through BPF_PROG_RUN (the kernel's timing, ns per run; median of the rounds):\n\n| packet | IPv4 | IPv6 |\n|---|--:|--:|\n")
		for _, p := range []struct{ label, m4, m6 string }{
			{"established flow (the same packet repeated)", mProgEst4, mProgEst6},
			{"new flow (a SYN with a distinct 5-tuple on every run)", mProgNew4, mProgNew6},
		} {
			v4, _ := r.median(implXDP, p.m4)
			v6, _ := r.median(implXDP, p.m6)
			fmt.Fprintf(&b, "| %s | %.0f | %.0f |\n", p.label, v4, v6)
		}
	}

	b.WriteString("\n")
	if a, ok1 := r.median(implHAProxy1, mRRRate); ok1 {
		if c, ok2 := r.median(implHAProxy2, mRRRate); ok2 {
			best := implHAProxy1
			if c > a {
				best = implHAProxy2
			}
			fmt.Fprintf(&b, "- HAProxy's better setting on kept-alive requests/s: %s.\n", best)
		}
	}
	for _, impl := range append(slices.Clone(allImpls), "") {
		for _, f := range r.failures[impl] {
			fmt.Fprintf(&b, "- %s failed: `%s`\n", cmpOr(impl, "bench"), strings.ReplaceAll(f, "\n", " "))
		}
	}
	if e, ok := r.maxErrors(); ok && e > 0 {
		fmt.Fprintf(&b, "- wrk reported up to %.0f socket errors or non-2xx responses in a run (JSON: `errors`).\n", e)
	}
	if len(background) > 0 {
		fmt.Fprintf(&b, "- Background CPU load over 0.5 s before each run (after waiting up to 10 s for it to drop below 25%%): median %.0f%%, max %.0f%% of the machine.\n",
			100*stats.Median(background), 100*slices.Max(background))
	}
	for _, m := range meta {
		fmt.Fprintf(&b, "- %s\n", m)
	}
	return b.String()
}

func (r *results) maxErrors() (float64, bool) {
	var m float64
	found := false
	for _, byMetric := range r.runs {
		for k, vs := range byMetric {
			if strings.HasPrefix(k, mErrors) {
				for _, v := range vs {
					m, found = max(m, v), true
				}
			}
		}
	}
	return m, found
}

func ratioCell(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", x)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
