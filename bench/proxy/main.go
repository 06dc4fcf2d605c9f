// Command proxy is `make bench-proxy`: nlb's TCP proxy against HAProxy
// (nbthread 1 and 2) and against no proxy at all (direct), measured with
// the field's standard tools: wrk for requests/s kept-alive and with
// Connection: close against nginx `return 200`, vegeta for the latency at
// a fixed rate below saturation (open loop), iperf3 for bulk (1 and 8
// processes, server to client), strace -c and /proc for system calls and
// context switches per request; the bench's own client only for the
// memory per idle connection, which no standard tool measures. Two
// topologies: one host's loopback, and client, proxy and backend in
// separate network namespaces. Rounds interleave the implementations in a
// rotated order; the report gives medians. Run it as root through
// `make bench-proxy`; bench/README.md describes the method.
//
// The same binary is also the idle test's backend and client: run with
// "__backend" or "__loadgen" as first argument, it plays that role.
package main

import (
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nlb-dev/nlb/internal/benchrun"
	"github.com/nlb-dev/nlb/internal/benchtool"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "__backend" || os.Args[1] == "__loadgen") {
		benchrun.Main("bench-proxy "+os.Args[1], func(ctx context.Context, args []string, stdout, _ io.Writer) error {
			if args[0] == "__backend" {
				return runBackend(ctx, os.Stdin, stdout)
			}
			return runLoadgen(ctx, args[1:], os.Stdin, stdout)
		})
	}
	benchrun.Main("bench-proxy", run)
}

// meta is the first JSON line: the setup.
type meta struct {
	benchrun.Setup
	WrkThreads        int       `json:"wrk_threads"`
	WrkConnections    int       `json:"wrk_connections"`
	Rate              int       `json:"latency_rate"`
	Topologies        []string  `json:"topologies"`
	Implementations   []string  `json:"implementations"`
	Tests             []string  `json:"tests"`
	CongestionControl string    `json:"congestion_control"`
	HAProxySplice     string    `json:"haproxy_splice"`
	IdleConnections   int       `json:"idle_connections"`
	Background        []float64 `json:"background_busy"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	b := benchrun.New("proxy", stdout, stderr, benchrun.Options{
		Reps: 3, RepsUsage: "rounds: every test on every implementation, in a rotated order; medians are reported",
		Verbose: true, NeedNLB: true, Root: "needs root: it builds network namespaces",
	})
	var prm params
	fs := b.Flags
	fs.DurationVar(&prm.duration, "duration", 3*time.Second, "length of each measured run (iperf3: whole seconds)")
	fs.DurationVar(&prm.warmup, "latency-warmup", 500*time.Millisecond, "vegeta's first requests left out (its connections opening)")
	fs.IntVar(&prm.threads, "threads", 1, "wrk threads")
	fs.IntVar(&prm.conns, "connections", 32, "wrk connections")
	fs.IntVar(&prm.rate, "rate", 5000, "vegeta's fixed request rate (requests/s), below every implementation's saturation")
	fs.IntVar(&prm.workers, "vegeta-workers", 10, "vegeta's initial workers (it adds more when they are busy)")
	fs.DurationVar(&prm.straceFor, "strace-duration", time.Second, "length of the kept-alive run under strace -c")
	fs.IntVar(&prm.idleConns, "idle-conns", 10000, "connections of the idle-memory test")
	fs.StringVar(&prm.vegeta, "vegeta", "bin/vegeta", "vegeta binary (make bench-proxy builds it)")
	fs.StringVar(&prm.plan.spliceHTTP, "haproxy-splice", "auto", "HAProxy's splicing in the request tests: always (splice-request and splice-response), auto (splice-auto) or off")
	fs.StringVar(&prm.plan.spliceBulk, "haproxy-splice-bulk", "always", "HAProxy's splicing in the bulk tests")
	fs.StringVar(&prm.plan.haproxyExtra, "haproxy-global", "", "extra HAProxy global lines, separated by ';' (tuning experiments)")
	implsFlag := fs.String("impls", strings.Join(defaultImpls, ","), "implementations, some of "+strings.Join(allImpls, ","))
	testsFlag := fs.String("tests", strings.Join(allTests, ","), "tests to run")
	toposFlag := fs.String("topologies", strings.Join(allTopologies, ","), "topologies")
	logs := fs.String("logs", "", "keep the processes' logs and configurations in this directory (default: a temporary one, removed)")
	if err := b.Parse(args); err != nil {
		return err
	}
	impls, err := benchtool.Pick("--impls", *implsFlag, allImpls)
	if err != nil {
		return err
	}
	tests, err := benchtool.Pick("--tests", *testsFlag, allTests)
	if err != nil {
		return err
	}
	topos, err := benchtool.Pick("--topologies", *toposFlag, allTopologies)
	if err != nil {
		return err
	}
	switch {
	case prm.duration < time.Second || prm.straceFor <= 0 || prm.warmup < 0:
		return errors.New("--duration must be at least 1s, --strace-duration positive, --latency-warmup not negative")
	case prm.threads < 1 || prm.conns < prm.threads || prm.rate < 1 || prm.workers < 1 || prm.idleConns < 1:
		return errors.New("--threads, --rate, --vegeta-workers and --idle-conns must be at least 1, --connections at least --threads")
	case !slices.Contains(benchtool.SpliceModes, prm.plan.spliceHTTP) || !slices.Contains(benchtool.SpliceModes, prm.plan.spliceBulk):
		return fmt.Errorf("--haproxy-splice %q, --haproxy-splice-bulk %q: want one of %s", prm.plan.spliceHTTP, prm.plan.spliceBulk, strings.Join(benchtool.SpliceModes, ", "))
	}
	if err := b.Setup(ctx); err != nil {
		return err
	}
	prm.plan.nlb = b.NLB
	needs := []string{"ip", "nginx", "wrk", "iperf3", "haproxy", "strace"}
	if slices.Contains(tests, testLatency) {
		if prm.vegeta, err = benchrun.Binary(prm.vegeta); err != nil {
			return fmt.Errorf("vegeta: %w (make bench-proxy builds it into bin/)", err)
		}
	}
	for _, tool := range needs {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (make deps installs it): %w", tool, err)
		}
	}
	if prm.self, err = os.Executable(); err != nil {
		return err
	}
	if prm.dir = *logs; prm.dir == "" {
		if prm.dir, err = os.MkdirTemp("", "nlb-bench-proxy-"); err != nil {
			return err
		}
		defer os.RemoveAll(prm.dir)
	} else if err := os.MkdirAll(prm.dir, 0o755); err != nil {
		return err
	}
	prm.plan.dir = prm.dir
	prm.plan.threads = runtime.NumCPU()
	prm.plan.ceilings = map[string]string{}
	for _, impl := range []string{implCeiling, implCeilingUring} {
		if slices.Contains(impls, impl) {
			if prm.plan.ceilings[impl], err = buildCeiling(ctx, prm.dir, impl); err != nil {
				return fmt.Errorf("%w (make deps installs gcc's libraries)", err)
			}
		}
	}
	requested := prm.idleConns
	if lim := raiseNoFile(prm.idleConns, stderr); prm.idleConns > idleFit(lim) {
		prm.idleConns = idleFit(lim)
		b.Logf("RLIMIT_NOFILE %d allows %d idle connections (2 fds each in a proxy), not %d", lim, prm.idleConns, requested)
	}
	prm.plan.maxConn = prm.idleConns + 100

	b.Logf("starting the lab")
	l, err := startLab(ctx, topos, prm.dir)
	if err != nil {
		return err
	}
	defer l.Close()

	res := newResults()
	var background []float64
	started := time.Now()
	for round := range b.Reps {
		for _, topo := range topos {
			t := l.topos[topo]
			for _, impl := range benchtool.Rotate(implsFor(impls, topo), round) {
				if err := session(ctx, t, impl, tests, &prm, res, &background, b.Logf, round); err != nil {
					return err // interrupted
				}
			}
		}
	}
	elapsed := time.Since(started).Round(time.Second)

	cc := "unknown"
	if out, err := l.net.Hosts[1].Exec(ctx, "sysctl", "-n", "net.ipv4.tcp_congestion_control").Output(); err == nil {
		cc = strings.TrimSpace(string(out))
	}
	md := meta{
		Setup: benchrun.NewSetup(ctx, "proxy", b.NLB, b.Reps, prm.duration, []string{benchrun.Version(ctx, "haproxy", "-v"), benchrun.Version(ctx, "nginx", "-v"),
			benchtool.ToolVersion(ctx, "wrk", "-v"), benchrun.Version(ctx, "iperf3", "-v"),
			moduleVersion(prm.vegeta), benchrun.Version(ctx, "strace", "-V")}),
		WrkThreads: prm.threads, WrkConnections: prm.conns, Rate: prm.rate,
		Topologies: topos, Implementations: impls, Tests: tests, CongestionControl: cc, HAProxySplice: prm.plan.spliceHTTP + ", bulk " + prm.plan.spliceBulk,
		IdleConnections: prm.idleConns, Background: background,
	}
	if err := b.Add(md); err != nil {
		return err
	}
	for _, line := range res.lines(topos) {
		if err := b.Add(line); err != nil {
			return err
		}
	}
	notes := []string{
		fmt.Sprintf("%s. Command: `go run ./bench/proxy %s` (%v).", md.Measured(), quoteArgs(args), elapsed),
		fmt.Sprintf("%d rounds of %v per run; wrk -t %d -c %d; vegeta at %d requests/s kept-alive (the first %v left out); iperf3 -R; %d idle connections; TCP congestion control %s for every implementation (nlb: loopbackCongestionControl: system; nlb-reno, when measured, keeps nlb's default reno on loopback legs and is not judged); HAProxy splice %s in the request tests, %s in the bulk tests; nlb-1loop is nlb with GOMAXPROCS=1 (one event loop); ceiling is bench/proxy/ceiling/forward.c with %d threads (epoll, read/write, splice in the bulk tests; no features), ceiling-uring its io_uring twin (request tests only): what a user-space forwarder can reach here, not judged; method in bench/README.md.",
			b.Reps, prm.duration, prm.threads, prm.conns, prm.rate, prm.warmup, prm.idleConns, cc, prm.plan.spliceHTTP, prm.plan.spliceBulk, prm.plan.threads),
	}
	if prm.idleConns < requested {
		notes = append(notes, fmt.Sprintf("The idle test held %d connections, not %d: RLIMIT_NOFILE's hard limit allows no more.", prm.idleConns, requested))
	}
	title := "# Proxy benchmark: nlb vs HAProxy vs direct, with wrk, vegeta and iperf3\n\n"
	return b.Finish(title + res.markdown(topos, prm.rate, notes, background))
}

// implsFor is the implementations measured in a topology: nlb-reno
// differs from nlb only on loopback legs.
func implsFor(impls []string, topo string) []string {
	var out []string
	for _, i := range impls {
		if i != implNLBReno || topo == topoLoopback {
			out = append(out, i)
		}
	}
	return out
}

// session measures one implementation once in one topology: a fresh proxy
// for the HTTP tests, another for the bulk tests, another for the idle
// test. A failed test is recorded and the others still run; only an
// interruption ends the bench.
func session(ctx context.Context, t *topology, impl string, tests []string, prm *params, res *results, background *[]float64,
	logf func(string, ...any), round int) error {
	for _, kind := range []string{kindHTTP, kindBulk, kindIdle} {
		var todo []string
		for _, test := range tests {
			if kindOf(test) != kind || test == testSyscalls && impl == implDirect || test == testIdle && (impl == implDirect || impl == implCeiling || t.name != topoLoopback) ||
				impl == implCeilingUring && kind != kindHTTP {
				continue
			}
			todo = append(todo, test)
		}
		if len(todo) == 0 {
			continue
		}
		var p *proxy
		if kind != kindIdle {
			var err error
			if p, err = startProxy(ctx, t, impl, kind, netip.AddrPort{}, prm.plan); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				res.failures = append(res.failures, fmt.Sprintf("round %d %s %s: start for %s: %v", round+1, t.name, impl, kind, err))
				continue
			}
		}
		for _, test := range todo {
			bg := benchtool.WaitQuiet(ctx)
			if !math.IsNaN(bg) {
				*background = append(*background, bg)
			}
			m, note, err := measure(ctx, t, p, impl, test, prm, logf)
			if ctx.Err() != nil {
				if p != nil {
					p.stop()
				}
				return ctx.Err()
			}
			if err != nil {
				logf("round %d %s %s %s: %v", round+1, t.name, impl, test, err)
				res.failures = append(res.failures, fmt.Sprintf("round %d %s %s %s: %v", round+1, t.name, impl, test, err))
				continue
			}
			if note != "" && test == testSyscalls {
				res.calls[t.name+"/"+impl] = note
			} else if note != "" {
				res.notes = append(res.notes, fmt.Sprintf("round %d %s %s %s: %s", round+1, t.name, impl, test, note))
			}
			res.add(t.name, impl, m)
			logf("round %d %s %s %s (background %.0f%%): %s", round+1, t.name, impl, test, 100*bg, summary(m))
		}
		if p != nil {
			p.stop()
		}
	}
	return nil
}

// measure runs one test.
func measure(ctx context.Context, t *topology, p *proxy, impl, test string, prm *params, logf func(string, ...any)) (map[string]float64, string, error) {
	switch test {
	case testRR, testConn:
		m, err := measureWrk(ctx, t, p, prm, test == testConn)
		return m, "", err
	case testLatency:
		m, err := measureLatency(ctx, t, p, prm)
		return m, "", err
	case testSyscalls:
		return measureSyscalls(ctx, t, p, prm)
	case testBulk1, testBulk8, testBulk1F:
		streams, metric, reverse := 1, mThroughput1, true
		switch test {
		case testBulk8:
			streams, metric = bulkStreams, mThroughput8
		case testBulk1F:
			metric, reverse = mThroughput1F, false
		}
		g, window, start, err := measureBulk(ctx, t, p, prm, streams, reverse)
		m := map[string]float64{metric: g}
		if window > 0 {
			m[mThroughput8Window] = window.Seconds()
		}
		if start > 0 {
			m[mBulk8Start] = start.Seconds()
		}
		return m, "", err
	case testIdle:
		return measureIdle(ctx, t, impl, prm, logf)
	}
	return nil, "", fmt.Errorf("unknown test %q", test)
}

// summary formats a run's figures for the log.
func summary(m map[string]float64) string {
	var parts []string
	for _, d := range metricDefs {
		if v, ok := m[d.name]; ok {
			parts = append(parts, d.name+"="+fmt.Sprintf(d.format, v))
		}
	}
	return strings.Join(parts, " ")
}

// raiseNoFile lifts RLIMIT_NOFILE so that the idle test's client, backend
// and proxies (inheriting it) can hold the idle connections. Without
// CAP_SYS_RESOURCE the hard limit cannot be raised; the soft limit is
// then set to it. It returns the resulting soft limit.
func raiseNoFile(idle int, stderr io.Writer) uint64 {
	want := uint64(max(8*idle+4096, 1<<16))
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(stderr, "bench-proxy: getrlimit:", err)
		return 1024
	}
	if lim.Cur >= want {
		return lim.Cur
	}
	nl := syscall.Rlimit{Cur: want, Max: max(want, lim.Max)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &nl); err != nil {
		nl = syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &nl); err != nil {
			return lim.Cur
		}
	}
	return nl.Cur
}

// idleFit is the number of idle connections a proxy with 2 fds per
// connection can hold within an fd limit, with room for listeners and the
// runtime, in hundreds.
func idleFit(limit uint64) int {
	const reserve = 1200
	if limit < 2*reserve {
		return 100
	}
	return int((limit-reserve)/2) / 100 * 100
}

// moduleVersion is a Go binary's main module and version (go install
// leaves vegeta's own -version empty).
func moduleVersion(path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return path + ": unavailable"
	}
	return bi.Main.Path + " " + bi.Main.Version
}

// quoteArgs renders a command line for the report, quoting empty
// arguments and those with spaces.
func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = a
		if a == "" || strings.ContainsAny(a, " ;'\"") {
			q[i] = strconv.Quote(a)
		}
	}
	return strings.Join(q, " ")
}
