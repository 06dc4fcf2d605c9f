package vrrp

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// feed runs pattern through tr, one result per tick ('+' success, '-'
// failure), and returns the health after each result as a string of 'U'
// (healthy) and 'D' (failed).
func feed(tr *Tracker, start time.Time, tick time.Duration, pattern string) (string, time.Time) {
	var b strings.Builder
	now := start
	for _, c := range pattern {
		var err error
		if c == '-' {
			err = errors.New("readyz: 500")
		}
		tr.Observe(now, err)
		if tr.Healthy() {
			b.WriteByte('U')
		} else {
			b.WriteByte('D')
		}
		now = now.Add(tick)
	}
	return b.String(), now
}

func TestTrackerHysteresis(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name    string
		cfg     TrackConfig
		pattern string
		want    string
	}{
		{"fall needs consecutive failures", TrackConfig{Fall: 3, Rise: 2, FlapWindow: -1},
			"--+--+---", "UUUUUUUUD"},
		{"rise needs consecutive successes", TrackConfig{Fall: 1, Rise: 3, FlapWindow: -1},
			"-++-+++", "DDDDDDU"},
		{"alternating never moves", TrackConfig{Fall: 2, Rise: 2, FlapWindow: -1},
			"-+-+-+-+-+-+", "UUUUUUUUUUUU"},
		{"fall 1 rise 1 follows the check", TrackConfig{Fall: 1, Rise: 1, FlapWindow: -1},
			"-+-", "DUD"},
		// Damping: down after 2, up after 2, down again within the window:
		// the next recovery needs 4, then 8, capped at 8 × Rise.
		{"flapping doubles rise", TrackConfig{Fall: 2, Rise: 2, FlapWindow: time.Hour},
			"--++--++++--" + strings.Repeat("+", 8),
			"UDDUUDDDDUUD" + "DDDDDDDU"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := NewTracker(tc.cfg, 200)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := feed(tr, t0, time.Second, tc.pattern)
			if got != tc.want {
				t.Errorf("pattern %s\n got  %s\n want %s", tc.pattern, got, tc.want)
			}
		})
	}
}

func TestTrackerDampingCapAndForgiveness(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tr, err := NewTracker(TrackConfig{Fall: 1, Rise: 1, FlapWindow: 10 * time.Second}, 200)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	// Ten quick flaps: each recovery needs twice as many successes, capped.
	want := []int{1, 2, 4, 8, 8, 8}
	for i, w := range want {
		tr.Observe(now, errors.New("down"))
		now = now.Add(time.Second)
		if got := tr.NeededToRecover(); got != w {
			t.Fatalf("flap %d: needed %d, want %d", i, got, w)
		}
		for range tr.NeededToRecover() {
			tr.Observe(now, nil)
			now = now.Add(time.Second)
		}
		if !tr.Healthy() {
			t.Fatalf("flap %d: still failed after %d successes", i, tr.NeededToRecover())
		}
	}
	// Healthy for a whole window: forgiven.
	_, now = feed(tr, now, time.Second, strings.Repeat("+", 11))
	if got := tr.NeededToRecover(); got != 1 {
		t.Errorf("after a stable window: needed %d, want 1", got)
	}
	// A failure long after the last recovery does not double it.
	tr.Observe(now, errors.New("down"))
	if got := tr.NeededToRecover(); got != 1 {
		t.Errorf("failure after a stable window: needed %d, want 1", got)
	}
}

func TestTrackerPriority(t *testing.T) {
	tests := []struct {
		base          uint8
		weight        int
		healthy, fail uint8
	}{
		{200, 0, 200, 0},     // give up mastership
		{200, -50, 200, 150}, // keepalived weight -50
		{100, -2, 100, 98},   // kubeadm guide: weight -2
		{10, -50, 10, 1},     // never 0 through a weight
		{200, 60, 254, 200},  // positive weight: raised while healthy, never 255
		{255, -10, 255, 245}, // the owner keeps 255 while healthy
		{255, 0, 255, 0},
	}
	for _, tc := range tests {
		tr, err := NewTracker(TrackConfig{Fall: 1, Rise: 1, Weight: tc.weight}, tc.base)
		if err != nil {
			t.Fatal(err)
		}
		if got := tr.Priority(); got != tc.healthy {
			t.Errorf("base %d weight %d healthy: priority %d, want %d", tc.base, tc.weight, got, tc.healthy)
		}
		if !tr.Observe(time.Unix(1, 0), errors.New("x")) {
			t.Errorf("base %d weight %d: failure did not change the state", tc.base, tc.weight)
		}
		if got := tr.Priority(); got != tc.fail {
			t.Errorf("base %d weight %d failed: priority %d, want %d", tc.base, tc.weight, got, tc.fail)
		}
		if st := tr.Status(); st.Healthy || st.LastError != "x" || st.Changes != 1 {
			t.Errorf("status %+v", st)
		}
	}
}

func TestTrackConfigValidate(t *testing.T) {
	err := TrackConfig{Fall: 0, Rise: -1, Weight: 300}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"fall", "rise", "weight"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v: does not mention %s", err, want)
		}
	}
	if _, err := NewTracker(TrackConfig{Fall: 1, Rise: 1}, 100); err != nil {
		t.Error(err)
	}
}
