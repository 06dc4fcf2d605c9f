package benchtool

import (
	"encoding/json"
	"errors"
	"fmt"
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

// Iperf3Result is what iperf3 -J reported: the receiver's sum.
type Iperf3Result struct {
	BitsPerSecond float64
	Bytes         float64
	Seconds       float64
}

// ParseIperf3 parses iperf3 -J's report: the bytes the receiver got (the
// client in reverse mode, the server otherwise), which is what arrived
// through the path, not what the sender queued.
func ParseIperf3(out []byte) (Iperf3Result, error) {
	var doc struct {
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
	return Iperf3Result{BitsPerSecond: s.BitsPerSecond, Bytes: s.Bytes, Seconds: s.Seconds}, nil
}
