package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"

	"github.com/nlb-dev/nlb/internal/benchtool"
)

// The tests of a round.
const (
	testBulk1 = "bulk1" // iperf3 -R, 1 stream
	testBulk8 = "bulk8" // iperf3 -R -P 8
	testRR    = "rr"    // wrk, kept-alive
	testConn  = "conn"  // wrk, Connection: close
)

// allTests in the order a round runs them; the bulk tests on iperf3
// servers, the others on nginx.
var allTests = []string{testRR, testConn, testBulk1, testBulk8}

// serversFor is the backend servers a test needs.
func serversFor(test string) string {
	if test == testBulk1 || test == testBulk8 {
		return serversIperf3
	}
	return serversNginx
}

// Metric names.
const (
	mThroughput1  = "throughput_1stream"      // Gbit/s
	mThroughput8  = "throughput_8streams"     // Gbit/s
	mCPUPerGB1    = "cpu_per_gb_1stream"      // CPU-s of the machine per GB
	mCPUPerGB8    = "cpu_per_gb_8streams"     //
	mRRRate       = "rr_rate"                 // requests/s
	mRRP99        = "rr_latency_p99"          // µs
	mRRP50        = "rr_latency_p50"          // µs
	mRRCPU        = "cpu_per_request"         // µs of machine CPU per kept-alive request
	mConnRate     = "conn_rate"               // connections/s
	mConnCPU      = "cpu_per_connection"      // µs of machine CPU per request on a new connection
	mXDPRRCPU     = "xdp_prog_per_request"    // µs of XDP program run time per kept-alive request
	mXDPConnCPU   = "xdp_prog_per_connection" // µs per request on a new connection
	mXDPRunNS     = "xdp_prog_ns_per_run"     // ns per program run (kernel BPF statistics), kept-alive test
	mXDPRunsPerRR = "xdp_prog_runs_per_request"
	mBusy         = "machine_busy_cores" // cores busy during the run, + "_" + test
	mErrors       = "errors"             // wrk socket errors and non-2xx responses, + "_" + test
	mProgEst4     = "prog_run_established_ipv4"
	mProgEst6     = "prog_run_established_ipv6"
	mProgNew4     = "prog_run_new_flow_ipv4"
	mProgNew6     = "prog_run_new_flow_ipv6"
)

// units of the metrics.
var units = map[string]string{
	mThroughput1: "Gbit/s", mThroughput8: "Gbit/s", mCPUPerGB1: "CPU-s/GB", mCPUPerGB8: "CPU-s/GB",
	mRRRate: "req/s", mRRP99: "µs", mRRP50: "µs", mRRCPU: "µs", mConnRate: "conn/s", mConnCPU: "µs",
	mXDPRRCPU: "µs", mXDPConnCPU: "µs", mXDPRunNS: "ns", mXDPRunsPerRR: "runs",
	mProgEst4: "ns", mProgEst6: "ns", mProgNew4: "ns", mProgNew6: "ns",
}

// unit returns a metric's unit.
func unit(metric string) string {
	switch {
	case strings.HasPrefix(metric, mBusy):
		return "cores"
	case strings.HasPrefix(metric, mErrors):
		return "count"
	}
	return units[metric]
}

// params are the load settings.
type params struct {
	duration    time.Duration
	connections int
	threads     int
}

// progStats are the XDP program's run-time statistics at one moment.
type progStats struct {
	runtime time.Duration
	runs    uint64
}

func readProgStats(p *ebpf.Program) (progStats, error) {
	if p == nil {
		return progStats{}, nil
	}
	s, err := p.Stats()
	if err != nil {
		return progStats{}, fmt.Errorf("XDP program statistics: %w", err)
	}
	return progStats{runtime: s.Runtime, runs: s.RunCount}, nil
}

// startRefused reports whether err is iperf3's failure to open its control
// connection because the server refused it: iperf3 -s closes its listening
// socket after each test and opens it again, and a client that connects in
// between is refused before any measurement.
func startRefused(err error) bool {
	return strings.Contains(err.Error(), "unable to connect to server: Connection refused")
}

// measure runs one test on one path and returns its metrics.
func (l *lab) measure(ctx context.Context, impl, test string, p params, prog *ebpf.Program) (map[string]float64, error) {
	target := l.target[impl].String()
	var argv []string
	switch test {
	case testBulk1:
		argv = benchtool.Iperf3Args(target, port, p.duration, true, 1)
	case testBulk8:
		argv = benchtool.Iperf3Args(target, port, p.duration, true, 8)
	case testRR, testConn:
		argv = benchtool.WrkArgs(p.threads, p.connections, p.duration, test == testConn, fmt.Sprintf("http://%s:%d/", target, port))
	default:
		return nil, fmt.Errorf("unknown test %q", test)
	}
	var pkts0 uint64
	var err error
	if impl == implXDP {
		if pkts0, err = l.xdpPackets(ctx); err != nil {
			return nil, err
		}
	}
	ps0, err := readProgStats(prog)
	if err != nil {
		return nil, err
	}
	b0, _, err := benchtool.CPUTicks()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, p.duration+30*time.Second)
	defer cancel()
	out, err := l.client.Exec(rctx, argv[0], argv[1:]...).Output()
	elapsed := time.Since(start)
	b1, _, cerr := benchtool.CPUTicks()
	ps1, perr := readProgStats(prog)
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s %s", err, strings.TrimSpace(string(ee.Stderr)), benchtool.LastLines(string(out), 5))
		}
		return nil, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	if cerr != nil || perr != nil {
		return nil, errors.Join(cerr, perr)
	}
	busy := (b1 - b0) / benchtool.ClockTicks // CPU-seconds
	m := map[string]float64{mBusy + "_" + test: busy / elapsed.Seconds()}
	var requests float64
	switch test {
	case testBulk1, testBulk8:
		r, err := benchtool.ParseIperf3(out)
		if err != nil {
			return nil, err
		}
		tp, cpu := mThroughput1, mCPUPerGB1
		if test == testBulk8 {
			tp, cpu = mThroughput8, mCPUPerGB8
		}
		m[tp] = r.BitsPerSecond / 1e9
		m[cpu] = busy / (r.Bytes / 1e9)
	case testRR, testConn:
		r, err := benchtool.ParseWrk(string(out))
		if err != nil {
			return nil, err
		}
		requests = r.Requests
		m[mErrors+"_"+test] = r.Errors
		if test == testRR {
			m[mRRRate], m[mRRP50], m[mRRP99], m[mRRCPU] = r.Rate, r.P50, r.P99, busy/r.Requests*1e6
		} else {
			m[mConnRate], m[mConnCPU] = r.Rate, busy/r.Requests*1e6
		}
	}
	if prog != nil {
		runs, rt := float64(ps1.runs-ps0.runs), float64(ps1.runtime-ps0.runtime)
		if runs > 0 && test == testRR {
			m[mXDPRunNS] = rt / runs
			m[mXDPRunsPerRR] = runs / requests
		}
		switch test {
		case testRR:
			m[mXDPRRCPU] = rt / requests / 1e3
		case testConn:
			m[mXDPConnCPU] = rt / requests / 1e3
		}
	}
	if impl == implXDP {
		// The traffic went through the program: its service counted it.
		pkts1, err := l.xdpPackets(ctx)
		if err != nil {
			return nil, err
		}
		if pkts1 <= pkts0 {
			return nil, fmt.Errorf("the XDP service forwarded no packet during the run (%d before, %d after)", pkts0, pkts1)
		}
	}
	return m, nil
}

// progRunBench is the XDP program's cost per packet through
// BPF_PROG_RUN: ebpf/xdplb's BenchmarkProgRunEstablished (one established
// flow's packet, repeated by the kernel) and BenchmarkProgRunNewFlow (a
// SYN with a distinct 5-tuple on every run), compiled once.
type progRunBench struct {
	bin, dir string
}

// buildProgRun compiles ebpf/xdplb's test binary into dir.
func buildProgRun(ctx context.Context, dir string) (*progRunBench, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(dir, "xdplb.test")
	cmd := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, "./ebpf/xdplb")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go test -c ./ebpf/xdplb: %w: %s", err, out)
	}
	return &progRunBench{bin: bin, dir: filepath.Join(root, "ebpf", "xdplb")}, nil
}

// run runs the two benchmarks once, each for benchtime, and returns ns
// per run (the kernel's timing) by metric.
func (b *progRunBench) run(ctx context.Context, benchtime time.Duration) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.bin, "-test.run", "^$", "-test.bench", "ProgRun(Established|NewFlow)$",
		"-test.benchtime", benchtime.String())
	cmd.Dir = b.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("xdplb.test -test.bench: %w: %s", err, out)
	}
	return parseProgRun(string(out))
}

// progRunNames maps the benchmarks' names to metrics.
var progRunNames = map[string]string{
	"BenchmarkProgRunEstablished/IPv4": mProgEst4, "BenchmarkProgRunEstablished/IPv6": mProgEst6,
	"BenchmarkProgRunNewFlow/IPv4": mProgNew4, "BenchmarkProgRunNewFlow/IPv6": mProgNew6,
}

// parseProgRun reads the "ns/run" metric of each benchmark line.
func parseProgRun(out string) (map[string]float64, error) {
	m := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i] // the GOMAXPROCS suffix
		}
		metric, ok := progRunNames[name]
		if !ok {
			continue
		}
		for i := 2; i+1 < len(f); i += 2 {
			if f[i+1] == "ns/run" {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", sc.Text(), err)
				}
				m[metric] = v
			}
		}
	}
	if len(m) != len(progRunNames) {
		return nil, fmt.Errorf("BPF_PROG_RUN benchmarks: found %v in %q", m, benchtool.LastLines(out, 12))
	}
	return m, nil
}
