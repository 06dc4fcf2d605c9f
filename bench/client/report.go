package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nlb-dev/nlb/internal/benchrun"
	"github.com/nlb-dev/nlb/internal/nllblab"
	"github.com/nlb-dev/nlb/internal/stats"
)

// Goals of the issue.
const (
	goalDetectMS = 2000
	goalRSSKiB   = 20 * 1024
)

// maxPerProgram returns the most failed requests any LIST program had in
// one run: each has at most one request in flight (or pinned to its kept-
// alive connection) on the dead upstream when it goes.
func maxPerProgram(r nllblab.Result) int64 {
	var m int64
	for _, l := range r.Counts.Loops {
		if l.Kind != nllblab.KindWatch {
			m = max(m, l.FailedRequests)
		}
	}
	return m
}

// markdown renders the medians against the goals.
func markdown(rs []nllblab.Result, idle rssLine) string {
	var b strings.Builder
	b.WriteString("| scenario | runs | detect_ms median (min-max) | goal < 2000 ms | failed_connects (all runs) | goal 0 | failed_requests median (max) | of which connects in flight (all runs) | most per program | goal: only in-flight (<= 1 per program) | requests median |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, sc := range []nllblab.Fault{nllblab.Kill, nllblab.Blackhole} {
		var det, failed, reqs []float64
		var connects, inflight, perProg int64
		n := 0
		for _, r := range rs {
			if r.Scenario != sc {
				continue
			}
			n++
			det = append(det, r.DetectMS)
			failed = append(failed, float64(r.FailedRequests))
			reqs = append(reqs, float64(r.Requests))
			connects += r.FailedConnects
			inflight += r.Counts.InFlightConnects
			perProg = max(perProg, maxPerProgram(r))
		}
		if n == 0 {
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %.0f (%.0f-%.0f) | %s | %d | %s | %g (%g) | %d | %d | %s | %.0f |\n",
			sc, n, stats.Median(det), slices.Min(det), slices.Max(det), benchrun.Met(slices.Max(det) < goalDetectMS),
			connects, benchrun.Met(connects == 0),
			stats.Median(failed), slices.Max(failed), inflight, perProg, benchrun.Met(perProg <= 1), stats.Median(reqs))
	}
	b.WriteString("\n" + idleSentence(idle))
	return b.String()
}

// idleSentence states the idle RSS against the goal.
func idleSentence(idle rssLine) string {
	return fmt.Sprintf("Idle RSS of `nlb client` with %d upstreams: %d KiB (%.1f MiB); goal < 20 MiB: %s.\n",
		idle.Upstreams, idle.Value, float64(idle.Value)/1024, benchrun.Met(idle.Value < goalRSSKiB))
}
