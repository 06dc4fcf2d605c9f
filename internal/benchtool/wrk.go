package benchtool

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// WrkArgs is wrk's command line: threads, connections, a run of d, latency
// percentiles on, a 5 s timeout; closeEach adds `Connection: close`, one
// request per connection.
func WrkArgs(threads, conns int, d time.Duration, closeEach bool, url string) []string {
	argv := []string{"wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", d.String(), "--latency", "--timeout", "5s"}
	if closeEach {
		argv = append(argv, "-H", "Connection: close")
	}
	return append(argv, url)
}

// WrkResult is what wrk --latency printed.
type WrkResult struct {
	Requests float64 // completed requests
	Rate     float64 // Requests/sec
	P50, P99 float64 // µs (closed loop: latency at saturation)
	Errors   float64 // socket errors and non-2xx/3xx responses
}

var (
	wrkRequests = regexp.MustCompile(`(?m)^\s*(\d+) requests in `)
	wrkRate     = regexp.MustCompile(`(?m)^Requests/sec:\s*([0-9.]+)`)
	wrkPct      = regexp.MustCompile(`(?m)^\s*(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkSockErr  = regexp.MustCompile(`(?m)^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx   = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses: (\d+)`)
)

// ParseWrk parses wrk --latency's report.
func ParseWrk(out string) (WrkResult, error) {
	var r WrkResult
	m := wrkRequests.FindStringSubmatch(out)
	rm := wrkRate.FindStringSubmatch(out)
	if m == nil || rm == nil {
		return r, fmt.Errorf("wrk: no request count or rate in %q", out)
	}
	r.Requests, _ = strconv.ParseFloat(m[1], 64)
	r.Rate, _ = strconv.ParseFloat(rm[1], 64)
	for _, p := range wrkPct.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(p[2], 64)
		switch p[3] {
		case "ms":
			v *= 1e3
		case "s":
			v *= 1e6
		}
		if p[1] == "50" {
			r.P50 = v
		} else {
			r.P99 = v
		}
	}
	if r.P99 == 0 {
		return r, fmt.Errorf("wrk: no 99th percentile in %q", out)
	}
	if e := wrkSockErr.FindStringSubmatch(out); e != nil {
		for _, s := range e[1:] {
			v, _ := strconv.ParseFloat(s, 64)
			r.Errors += v
		}
	}
	if e := wrkNon2xx.FindStringSubmatch(out); e != nil {
		v, _ := strconv.ParseFloat(e[1], 64)
		r.Errors += v
	}
	return r, nil
}
