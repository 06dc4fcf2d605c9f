package main

import (
	"strings"
	"testing"
)

func TestMarkdownGoals(t *testing.T) {
	rs := []result{
		{Impl: "nlb", VRRP: 2, AdvertMS: 1000, Stop: "kill", FailoverMS: 3000, OverheadMS: 5, StaleVIPMS: 4600, StaleGone: true, StaleWindowMS: 8000},
		{Impl: "keepalived", VRRP: 2, AdvertMS: 1000, Stop: "kill", FailoverMS: 3500, OverheadMS: 30, StaleVIPMS: 8000, StaleWindowMS: 8000},
		{Impl: "nlb", VRRP: 3, AdvertMS: 100, Stop: "term", FailoverMS: 90, OverheadMS: 25, StaleVIPMS: 1.2, StaleGone: true, StaleWindowMS: 5000},
		{Impl: "keepalived", VRRP: 3, AdvertMS: 100, Stop: "term", FailoverMS: 80, OverheadMS: 20, StaleVIPMS: 3.4, StaleGone: true, StaleWindowMS: 5000},
	}
	md := markdown(rs, []string{"nlb", "keepalived"})
	lines := strings.Split(md, "\n")
	if !strings.Contains(lines[2], "| v2 | 1000 ms | kill | 1 | 3000.0 | 5.0 | 4600 | 3500.0 | 30.0 | not gone in 8 s | 0.857 | -500.000 | yes |") {
		t.Errorf("v2 row = %q", lines[2])
	}
	// Slower than keepalived and over 20 ms overhead: the goal is not met.
	if !strings.Contains(lines[3], "| 90.0 | 25.0 | 1 | 80.0 | 20.0 | 3 | 1.125 | +10.000 | NO |") {
		t.Errorf("v3 row = %q", lines[3])
	}
}
