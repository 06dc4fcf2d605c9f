package main

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strconv"
	"strings"
)

// panel is one bar chart of the plot: groups of bars, one bar per
// implementation, with the median as bar and the range of runs as whisker.
type panel struct {
	title  string
	groups []panelGroup
	goal   float64 // horizontal dashed line, 0 for none
}

type panelGroup struct {
	label  string
	metric string
}

func implColor(impl string) string {
	switch impl {
	case implDirect:
		return "#9e9e9e"
	case implHAProxy:
		return "#1f77b4"
	default:
		return "#d62728"
	}
}

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

func fmtShort(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.0fk", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func fmtTick(v float64) string {
	if v >= 10000 {
		return strconv.FormatFloat(v/1000, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// renderSVG draws the throughput, latency, connection-rate and memory
// medians as four bar charts.
func renderSVG(r results, e env) string {
	panels := []panel{
		{title: "Bulk throughput, Gbit/s (higher is better)", groups: []panelGroup{{"1 stream", mThroughput1}, {"8 streams", mThroughput8}}},
		{title: "Request/response latency, kept-alive, µs (lower is better)", groups: []panelGroup{{"p50", mLatencyP50}, {"p99", mLatencyP99}}},
		{title: "New connections per second (higher is better)", groups: []panelGroup{{"connect, 64 B req/resp, close", mConnRate}}},
		{title: "Memory per idle proxied connection, KiB (lower is better)", groups: []panelGroup{{"proxy RSS + kernel objects of its fds", mIdleMem}}, goal: 16},
	}
	const (
		w, h       = 1000, 700
		pw, ph     = 470, 290
		left, top  = 55, 80
		plotBottom = 40
	)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="17" font-weight="bold">nlb vs HAProxy vs direct, TCP over loopback</text>`+"\n", 20)
	fmt.Fprintf(&b, `<text x="%d" y="44" fill="#555">%s</text>`+"\n", 20,
		html.EscapeString(fmt.Sprintf("%s · %d × %s · Linux %s · medians, whiskers = range of runs", e.date, e.cores, e.cpu, e.kernel)))
	impls := []string{implDirect, implHAProxy, implNLB}
	for i, impl := range impls {
		x := 620 + i*120
		fmt.Fprintf(&b, `<rect x="%d" y="14" width="14" height="14" fill="%s"/><text x="%d" y="26">%s</text>`+"\n", x, implColor(impl), x+20, impl)
	}
	for pi, p := range panels {
		ox := 20 + (pi%2)*(pw+20)
		oy := top - 20 + (pi/2)*(ph+30)
		fmt.Fprintf(&b, `<g transform="translate(%d,%d)">`+"\n", ox, oy)
		fmt.Fprintf(&b, `<text x="0" y="0" font-weight="bold">%s</text>`+"\n", html.EscapeString(p.title))
		x0, y0 := float64(left-20), 20.0
		plotW, plotH := float64(pw)-x0-10, float64(ph)-y0-plotBottom
		top := p.goal
		for _, g := range p.groups {
			for _, impl := range impls {
				for _, v := range r[impl][g.metric] {
					top = max(top, v)
				}
			}
		}
		top = niceCeil(top * 1.08)
		y := func(v float64) float64 { return y0 + plotH - v/top*plotH }
		for t := 0; t <= 4; t++ {
			v := top * float64(t) / 4
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`, x0, x0+plotW, y(v), y(v))
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#555">%s</text>`+"\n", x0-4, y(v)+4, fmtTick(v))
		}
		gw := plotW / float64(len(p.groups))
		bw := min(gw/float64(len(impls)+1), 70)
		for gi, g := range p.groups {
			gx := x0 + gw*float64(gi) + (gw-bw*float64(len(impls)))/2
			for ii, impl := range impls {
				runs := r[impl][g.metric]
				bx := gx + bw*float64(ii)
				if len(runs) == 0 {
					fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#999">n/a</text>`+"\n", bx+bw/2, y(0)-4)
					continue
				}
				m, _ := r.median(impl, g.metric)
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", bx+2, y(m), bw-4, y(0)-y(m), implColor(impl))
				lo, hi := slices.Min(runs), slices.Max(runs)
				if hi > lo {
					cx := bx + bw/2
					fmt.Fprintf(&b, `<path d="M%.1f %.1fV%.1fM%.1f %.1fh8M%.1f %.1fh8" stroke="black" fill="none"/>`+"\n", cx, y(lo), y(hi), cx-4, y(lo), cx-4, y(hi))
				}
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11">%s</text>`+"\n", bx+bw/2, min(y(m), y(hi))-4, fmtShort(m))
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x0+gw*float64(gi)+gw/2, y(0)+18, html.EscapeString(g.label))
		}
		if p.goal > 0 {
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#2ca02c" stroke-dasharray="6 4" stroke-width="2"/>`, x0, x0+plotW, y(p.goal), y(p.goal))
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#2ca02c">goal ≤ %g</text>`+"\n", x0+plotW, y(p.goal)-4, p.goal)
		}
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="black"/>`+"\n", x0, x0+plotW, y(0), y(0))
		b.WriteString("</g>\n")
	}
	b.WriteString("</svg>\n")
	return b.String()
}
