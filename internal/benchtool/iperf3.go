package benchtool

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Iperf3Args is an iperf3 client's command line against host:port for d
// (whole seconds, at least 1), JSON output; reverse has the server send
// (-R); streams > 1 adds -P.
func Iperf3Args(host string, port int, d time.Duration, reverse bool, streams int) []string {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	argv := []string{"iperf3", "-c", host, "-p", strconv.Itoa(port), "-J", "-t", strconv.Itoa(secs)}
	if reverse {
		argv = append(argv, "-R")
	}
	if streams > 1 {
		argv = append(argv, "-P", strconv.Itoa(streams))
	}
	return argv
}

// Iperf3Result is what iperf3 -J reported: the receiver's sum, and the
// intervals (-i) as this end saw them.
type Iperf3Result struct {
	BitsPerSecond float64
	Bytes         float64
	Seconds       float64
	Intervals     []Iperf3Interval
}

// Iperf3Interval is one interval's sum: seconds from the test's start.
type Iperf3Interval struct {
	Start, End float64
	Bytes      float64
}

// ParseIperf3 parses iperf3 -J's report: the bytes the receiver got (the
// client in reverse mode, the server otherwise), which is what arrived
// through the path, not what the sender queued.
func ParseIperf3(out []byte) (Iperf3Result, error) {
	var doc struct {
		Intervals []struct {
			Sum struct {
				Start float64 `json:"start"`
				End   float64 `json:"end"`
				Bytes float64 `json:"bytes"`
			} `json:"sum"`
		} `json:"intervals"`
		End struct {
			SumReceived struct {
				Seconds       float64 `json:"seconds"`
				Bytes         float64 `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return Iperf3Result{}, fmt.Errorf("iperf3: %w", err)
	}
	if doc.Error != "" {
		return Iperf3Result{}, fmt.Errorf("iperf3: %s", doc.Error)
	}
	s := doc.End.SumReceived
	if s.Bytes == 0 || s.BitsPerSecond == 0 {
		return Iperf3Result{}, errors.New("iperf3: nothing received")
	}
	r := Iperf3Result{BitsPerSecond: s.BitsPerSecond, Bytes: s.Bytes, Seconds: s.Seconds}
	for _, i := range doc.Intervals {
		r.Intervals = append(r.Intervals, Iperf3Interval{Start: i.Sum.Start, End: i.Sum.End, Bytes: i.Sum.Bytes})
	}
	return r, nil
}

// OverlapRate is the rate (bits/s) of several iperf3 clients together
// over the window in which all of them ran: client i's test started at
// starts[i] (one clock for all), and its intervals (-i, as its receiver
// saw them) are counted where they fall in the window, pro rata at its
// edges. Clients started one after another overlap for less than a run;
// summing their whole-run rates would count the edges, where fewer
// streams share the path, as if all ran at once. It also returns the
// window's length.
func OverlapRate(starts []time.Duration, runs []Iperf3Result) (float64, time.Duration, error) {
	if len(starts) != len(runs) || len(runs) == 0 {
		return 0, 0, errors.New("iperf3 overlap: no runs")
	}
	lo, hi := time.Duration(math.MinInt64), time.Duration(math.MaxInt64)
	for i, r := range runs {
		if len(r.Intervals) == 0 {
			return 0, 0, fmt.Errorf("iperf3 overlap: run %d has no intervals", i)
		}
		lo = max(lo, starts[i])
		hi = min(hi, starts[i]+secs(r.Intervals[len(r.Intervals)-1].End))
	}
	if hi <= lo {
		return 0, 0, fmt.Errorf("iperf3 overlap: the runs never ran all at once (the last started %v after the first ended)", lo-hi)
	}
	var bytes float64
	for i, r := range runs {
		for _, iv := range r.Intervals {
			a, b := starts[i]+secs(iv.Start), starts[i]+secs(iv.End)
			if b <= a {
				continue
			}
			if o := min(b, hi) - max(a, lo); o > 0 {
				bytes += iv.Bytes * float64(o) / float64(b-a)
			}
		}
	}
	return bytes * 8 / (hi - lo).Seconds(), hi - lo, nil
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
