package benchtool

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"
)

// VegetaAttackArgs is `vegeta attack` at a fixed rate (requests per
// second) for d with kept-alive connections, writing its binary results to
// output; the targets ("GET URL" lines) go to its stdin. vegeta is open
// loop: every request starts at its scheduled time, on a new worker when
// all are busy (-max-workers is left unlimited), so a slow response delays
// no later request and its latency is not omitted (unlike a closed loop
// such as wrk's).
func VegetaAttackArgs(vegeta string, rate int, d time.Duration, workers int, output string) []string {
	return []string{vegeta, "attack", "-rate", strconv.Itoa(rate) + "/1s", "-duration", d.String(),
		"-keepalive=true", "-http2=false", "-timeout", "5s", "-workers", strconv.Itoa(workers), "-output", output}
}

// VegetaEncodeArgs is `vegeta encode --to csv FILE`: one line per request.
func VegetaEncodeArgs(vegeta, results string) []string {
	return []string{vegeta, "encode", "--to", "csv", results}
}

// VegetaReportArgs is `vegeta report -type json FILE`.
func VegetaReportArgs(vegeta, results string) []string {
	return []string{vegeta, "report", "-type", "json", results}
}

// VegetaReport is vegeta's JSON report (vegeta report -type json).
type VegetaReport struct {
	Requests    float64            // requests sent
	Rate        float64            // requests sent per second
	Throughput  float64            // successful requests per second
	Success     float64            // fraction of 2xx/3xx responses
	StatusCodes map[string]float64 // "0" is a request without a response
	Errors      []string           // the distinct errors
}

// ParseVegetaReport parses vegeta report -type json.
func ParseVegetaReport(b []byte) (VegetaReport, error) {
	var doc struct {
		Requests    float64            `json:"requests"`
		Rate        float64            `json:"rate"`
		Throughput  float64            `json:"throughput"`
		Success     *float64           `json:"success"`
		StatusCodes map[string]float64 `json:"status_codes"`
		Errors      []string           `json:"errors"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return VegetaReport{}, fmt.Errorf("vegeta report: %w", err)
	}
	if doc.Success == nil || doc.Requests == 0 {
		return VegetaReport{}, fmt.Errorf("vegeta report: no requests in %q", b)
	}
	return VegetaReport{Requests: doc.Requests, Rate: doc.Rate, Throughput: doc.Throughput, Success: *doc.Success,
		StatusCodes: doc.StatusCodes, Errors: doc.Errors}, nil
}

// VegetaLatencies are the latencies of the requests of an attack, from
// vegeta encode --to csv: exact percentiles (vegeta report's own are
// estimates, and stop at the 99th).
type VegetaLatencies struct {
	Sorted  []float64 // µs, failed requests included, ascending
	Failed  int       // requests without a 2xx/3xx response
	Skipped int       // requests left out as the warm-up
}

// ParseVegetaCSV reads vegeta encode --to csv: per line the start
// (ns since the epoch), the status code (0 when there was no response),
// the latency (ns), bytes out, bytes in and the error. Requests that
// started within skip of the first one are left out: the attack's
// warm-up, while its connections are being opened.
func ParseVegetaCSV(r io.Reader, skip time.Duration) (VegetaLatencies, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	type result struct {
		start, ns int64
		failed    bool
	}
	var rs []result
	first := int64(math.MaxInt64)
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return VegetaLatencies{}, fmt.Errorf("vegeta csv: %w", err)
		}
		if len(rec) < 6 {
			return VegetaLatencies{}, fmt.Errorf("vegeta csv line %d: %d fields", line, len(rec))
		}
		start, err0 := strconv.ParseInt(rec[0], 10, 64)
		code, err1 := strconv.Atoi(rec[1])
		ns, err2 := strconv.ParseInt(rec[2], 10, 64)
		if err := errors.Join(err0, err1, err2); err != nil {
			return VegetaLatencies{}, fmt.Errorf("vegeta csv line %d: %w", line, err)
		}
		rs = append(rs, result{start, ns, code < 200 || code >= 400 || rec[5] != ""})
		first = min(first, start)
	}
	var l VegetaLatencies
	for _, r := range rs {
		if r.start < first+skip.Nanoseconds() {
			l.Skipped++
			continue
		}
		if r.failed {
			l.Failed++
		}
		l.Sorted = append(l.Sorted, float64(r.ns)/1e3)
	}
	if len(l.Sorted) == 0 {
		return l, fmt.Errorf("vegeta csv: no requests (%d in the warm-up)", l.Skipped)
	}
	slices.Sort(l.Sorted)
	return l, nil
}

// Percentile returns the nearest-rank p-quantile (0 < p ≤ 1) of sorted, or
// NaN when it is empty.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
