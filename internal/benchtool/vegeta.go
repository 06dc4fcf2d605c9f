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

// VegetaLatencies are the latencies of every request of an attack, from
// vegeta encode --to csv: exact percentiles (vegeta report's own are
// estimates, and stop at the 99th).
type VegetaLatencies struct {
	Sorted []float64 // µs, every request, failed ones included, ascending
	Failed int       // requests without a 2xx/3xx response
}

// ParseVegetaCSV reads vegeta encode --to csv: per line the start
// (ns since the epoch), the status code (0 when there was no response),
// the latency (ns), bytes out, bytes in and the error.
func ParseVegetaCSV(r io.Reader) (VegetaLatencies, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	var l VegetaLatencies
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return l, fmt.Errorf("vegeta csv: %w", err)
		}
		if len(rec) < 6 {
			return l, fmt.Errorf("vegeta csv line %d: %d fields", line, len(rec))
		}
		code, err1 := strconv.Atoi(rec[1])
		ns, err2 := strconv.ParseFloat(rec[2], 64)
		if err := errors.Join(err1, err2); err != nil {
			return l, fmt.Errorf("vegeta csv line %d: %w", line, err)
		}
		if code < 200 || code >= 400 || rec[5] != "" {
			l.Failed++
		}
		l.Sorted = append(l.Sorted, ns/1e3)
	}
	if len(l.Sorted) == 0 {
		return l, errors.New("vegeta csv: no requests")
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
