package main

import (
	"strings"
	"testing"

	"github.com/nlb-dev/nlb/internal/nllblab"
)

func TestMarkdownGoals(t *testing.T) {
	loops := func(failed ...int64) nllblab.Counts {
		var c nllblab.Counts
		for _, f := range failed {
			c.Loops = append(c.Loops, nllblab.LoopCounts{Kind: nllblab.KindKeepAlive, FailedRequests: f})
		}
		c.Loops = append(c.Loops, nllblab.LoopCounts{Kind: nllblab.KindWatch, FailedRequests: 7})
		return c
	}
	rs := []nllblab.Result{
		{Scenario: nllblab.Kill, DetectMS: 600, FailedRequests: 2, Requests: 300, Counts: loops(1, 1, 0)},
		{Scenario: nllblab.Kill, DetectMS: 900, FailedRequests: 1, Requests: 280, Counts: loops(1, 0, 0)},
		{Scenario: nllblab.Blackhole, DetectMS: 2100, FailedRequests: 2, FailedConnects: 1, Requests: 800, Counts: loops(2, 0, 0)},
	}
	md := markdown(rs, rssLine{Metric: "idle_rss", Value: 15000, Unit: "KiB", Upstreams: 3})
	for _, want := range []string{
		"| kill | 2 | 750 (600-900) | met | 0 | met | 1.5 (2) | 0 | 1 | met | 290 |",
		"| blackhole | 1 | 2100 (2100-2100) | **not met** | 1 | **not met** | 2 (2) | 0 | 2 | **not met** | 800 |",
		"15000 KiB (14.6 MiB); goal < 20 MiB: met.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
}
