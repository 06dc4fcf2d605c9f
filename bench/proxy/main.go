// Command proxy is `make bench-proxy`: it measures nlb's TCP proxy against
// HAProxy and against no proxy at all (direct), on loopback, with the same
// backend and load generator, and prints JSON lines, a Markdown table and an
// SVG plot. See bench/README.md for the method.
//
// The same binary is also the backend and the load generator: run with
// "__backend" or "__loadgen" as first argument, it plays that role, so that
// generator, backend and proxy are separate processes.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nlb-dev/nlb/internal/benchrun"
	"github.com/nlb-dev/nlb/internal/stats"
)

func main() {
	benchrun.Main("bench-proxy", func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		return run(ctx, args, os.Stdin, stdout, stderr)
	})
}

// config is the bench's command line.
type config struct {
	nlb            string
	haproxy        string
	impls          []string
	tests          map[string]bool // tests to run, from --tests
	runs           int
	warmup         time.Duration
	duration       time.Duration
	connWorkers    int
	rrConns        int
	idleConns      int
	idleRequested  int
	haproxyThreads int
	haproxyTune    string
	nlbSystemCC    bool
	haproxySplice  string
	nice           int
	results        string
	self           string // this executable, re-run as backend and load generator
	tmp            string
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "__backend":
			return runBackend(ctx, stdin, stdout)
		case "__loadgen":
			return runLoadgen(ctx, args[1:], stdin, stdout)
		}
	}
	var cfg config
	var impls, tests string
	fs := flag.NewFlagSet("bench-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.nlb, "nlb", "bin/nlb", "nlb binary (run as `nlb proxy --listen --backend --admin`)")
	fs.StringVar(&cfg.haproxy, "haproxy", "haproxy", "HAProxy binary")
	fs.StringVar(&impls, "impls", "direct,haproxy,nlb", "implementations to measure")
	fs.StringVar(&tests, "tests", strings.Join(allTests, ","), "tests to run (a subset, for quick comparisons while tuning)")
	fs.IntVar(&cfg.runs, "runs", 5, "runs per implementation, interleaved; medians are reported")
	fs.DurationVar(&cfg.warmup, "warmup", 500*time.Millisecond, "unmeasured time at the start of each test")
	fs.DurationVar(&cfg.duration, "duration", 3*time.Second, "measured time of each test")
	fs.IntVar(&cfg.connWorkers, "conn-workers", 32, "concurrent workers in the new-connection test")
	fs.IntVar(&cfg.rrConns, "rr-conns", 16, "kept-alive connections in the latency test")
	fs.IntVar(&cfg.idleConns, "idle-conns", 10000, "idle connections in the memory test")
	fs.IntVar(&cfg.haproxyThreads, "haproxy-threads", 2, "HAProxy nbthread (nlb's Go runtime uses every core)")
	fs.StringVar(&cfg.haproxySplice, "haproxy-splice", "always", "HAProxy splicing: always (splice-request and splice-response), auto (splice-auto) or off")
	fs.StringVar(&cfg.haproxyTune, "haproxy-global", "", "extra HAProxy global lines, separated by ';' (for tuning experiments)")
	fs.BoolVar(&cfg.nlbSystemCC, "nlb-system-cc", true, "also measure nlb's bulk throughput with loopbackCongestionControl: system")
	fs.IntVar(&cfg.nice, "nice", 0, "nice value for the bench and every child (e.g. -10 on a shared machine; needs root)")
	fs.StringVar(&cfg.results, "results", "bench/results", "directory for proxy.jsonl, proxy.md and proxy.svg (empty: none)")
	if err := benchrun.Parse(fs, args); err != nil {
		return err
	}
	cfg.impls = strings.Split(impls, ",")
	cfg.tests = map[string]bool{}
	for _, t := range strings.Split(tests, ",") {
		if !slices.Contains(allTests, t) {
			return fmt.Errorf("unknown test %q (want some of %s)", t, strings.Join(allTests, ","))
		}
		cfg.tests[t] = true
	}
	for _, i := range cfg.impls {
		if i != implDirect && i != implHAProxy && i != implNLB {
			return fmt.Errorf("unknown implementation %q", i)
		}
	}
	if m := cfg.haproxySplice; m != "always" && m != "auto" && m != "off" {
		return fmt.Errorf("--haproxy-splice %q: want always, auto or off", m)
	}
	if cfg.runs < 1 || cfg.runs > 20 || cfg.duration <= 0 || cfg.idleConns < 1 {
		return errors.New("need 1 ≤ runs ≤ 20, duration > 0, idle-conns ≥ 1")
	}
	var err error
	if cfg.self, err = os.Executable(); err != nil {
		return err
	}
	if cfg.tmp, err = os.MkdirTemp("", "bench-proxy-"); err != nil {
		return err
	}
	defer os.RemoveAll(cfg.tmp)
	cfg.idleRequested = cfg.idleConns
	if lim := raiseNoFile(&cfg, stderr); cfg.idleConns > idleFit(lim) {
		cfg.idleConns = idleFit(lim)
		fmt.Fprintf(stderr, "bench: RLIMIT_NOFILE %d allows %d idle connections (2 fds each in a proxy), not %d\n", lim, cfg.idleConns, cfg.idleRequested)
	}
	env := environment(ctx, &cfg)
	if cfg.nice != 0 {
		// Children inherit it: generator, backend and every proxy alike.
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, cfg.nice); err != nil {
			return fmt.Errorf("--nice %d: %w", cfg.nice, err)
		}
	}

	r := make(results)
	failures := make(map[string]string)
	notes := &notes{}
	var busy []float64
	started := time.Now()
	for round := range cfg.runs {
		for k := range cfg.impls {
			impl := cfg.impls[(k+round)%len(cfg.impls)] // rotate the order each round
			if _, failed := failures[impl]; failed {
				continue
			}
			b := waitQuiet(ctx)
			busy = append(busy, b)
			fmt.Fprintf(stderr, "bench: run %d/%d %s (machine %.0f%% busy before)\n", round+1, cfg.runs, impl, 100*b)
			if err := session(ctx, &cfg, impl, r, notes, stderr); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				fmt.Fprintf(stderr, "bench: %s: %v\n", impl, err)
				failures[impl] = err.Error()
			}
		}
	}
	elapsed := time.Since(started).Round(time.Second)

	var jl, table bytes.Buffer
	if err := writeJSONLines(&jl, r, []string{implDirect, implHAProxy, implNLB}); err != nil {
		return err
	}
	if err := writeTable(&table, r); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n%s", jl.Bytes(), table.Bytes())
	extra := reportNotes(failures, notes, busy)
	fmt.Fprint(stdout, extra)
	if cfg.results == "" {
		return nil
	}
	md := renderMarkdown(&cfg, env, elapsed, table.String(), extra)
	svg := renderSVG(r, env)
	if err := benchrun.Save(cfg.results, map[string][]byte{"proxy.jsonl": jl.Bytes(), "proxy.md": []byte(md), "proxy.svg": []byte(svg)}); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench: wrote %s/proxy.{jsonl,md,svg} in %v\n", cfg.results, elapsed)
	return nil
}

// raiseNoFile lifts RLIMIT_NOFILE so that the load generator, the backend
// and the proxies (inheriting it) can hold the idle connections: a Go
// splice proxy that keeps its pipes needs 6 fds per connection. Calling
// Setrlimit also makes os/exec pass the raised soft limit to children.
// Without CAP_SYS_RESOURCE the hard limit cannot be raised; the soft limit
// is then set to it. It returns the resulting soft limit.
func raiseNoFile(cfg *config, stderr io.Writer) uint64 {
	want := uint64(max(8*cfg.idleConns+4096, 1<<16))
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintln(stderr, "bench: getrlimit:", err)
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
// connection can hold within an fd limit, with room for listeners, the
// splice pipes of the bulk test and the runtime, in hundreds.
func idleFit(limit uint64) int {
	const reserve = 1200
	if limit < 2*reserve {
		return 100
	}
	return int((limit-reserve)/2) / 100 * 100
}

// allTests are the tests of a session, in the order they run.
var allTests = []string{"idle", "rr", "conn", "bulk1", "bulk8"}

// session measures one implementation once: a fresh backend and proxy, the
// idle-memory test first (on the fresh proxy), then latency, new
// connections and bulk throughput (the tests selected by --tests).
func session(ctx context.Context, cfg *config, impl string, r results, notes *notes, stderr io.Writer) error {
	be, err := startChild(ctx, "backend", cfg.self, "__backend")
	if err != nil {
		return err
	}
	defer be.stop()
	baddr, err := be.readLine(ctx, 10*time.Second)
	if err != nil {
		return err
	}
	p, err := startProxy(ctx, cfg, impl, baddr)
	if err != nil {
		return err
	}
	defer p.stop()

	if cfg.tests["idle"] {
		if err := idleMemory(ctx, cfg, p, r, notes, stderr); err != nil {
			return fmt.Errorf("idle memory: %w", err)
		}
	}
	lc := loadConfig{addr: p.addr, warmup: cfg.warmup, duration: cfg.duration, pid: p.pid(), backend: be.pid()}

	if cfg.tests["rr"] {
		lc.test, lc.conns = "rr", cfg.rrConns
		lr, err := loadgen(ctx, cfg, lc)
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		noteErrors(notes, impl, "latency", lr)
		r.add(impl, mLatencyP50, lr.P50us)
		r.add(impl, mLatencyP99, lr.P99us)
		r.add(impl, mRRRate, lr.Rate)
		fmt.Fprintf(stderr, "  latency p50 %.1f us p99 %.1f us (%.0f req/s, %d errors; others used %.2f cores)\n", lr.P50us, lr.P99us, lr.Rate, lr.Errors, lr.Foreign)
	}

	if cfg.tests["conn"] {
		lc.test, lc.workers = "conn", cfg.connWorkers
		lr, err := loadgen(ctx, cfg, lc)
		if err != nil {
			return fmt.Errorf("new connections: %w", err)
		}
		noteErrors(notes, impl, "new connections", lr)
		r.add(impl, mConnRate, lr.Rate)
		addCPU(r, impl, mCPUConn, lr.CPU)
		fmt.Fprintf(stderr, "  new connections %.0f/s (%d errors, proxy %.2f cores; others used %.2f cores)\n", lr.Rate, lr.Errors, lr.CPU, lr.Foreign)
	}

	if err := bulk(ctx, cfg, impl, lc, r, notes, stderr, mThroughput1, mThroughput8, mCPU1, mCPU8); err != nil {
		return err
	}
	if impl != implNLB || !cfg.nlbSystemCC || !cfg.tests["bulk1"] && !cfg.tests["bulk8"] {
		return nil
	}
	// The same bulk tests on a second nlb that keeps the system's
	// congestion control on its loopback legs (see mThroughput1Sys).
	p.stop()
	file := filepath.Join(cfg.tmp, "nlb-system-cc.yaml")
	if err := os.WriteFile(file, []byte("loopbackCongestionControl: system\n"), 0o644); err != nil {
		return err
	}
	ps, err := startProxy(ctx, cfg, impl, baddr, "--config", file)
	if err != nil {
		return fmt.Errorf("nlb with the system congestion control: %w", err)
	}
	defer ps.stop()
	lc.addr, lc.pid = ps.addr, ps.pid()
	fmt.Fprintln(stderr, "  nlb with loopbackCongestionControl: system")
	return bulk(ctx, cfg, impl, lc, r, notes, stderr, mThroughput1Sys, mThroughput8Sys, "", "")
}

// bulk runs the selected bulk tests (1 and 8 streams) against lc.addr and
// records them under the given metrics; an empty CPU metric is not
// recorded.
func bulk(ctx context.Context, cfg *config, impl string, lc loadConfig, r results, notes *notes, stderr io.Writer,
	m1, m8, cpu1, cpu8 string) error {
	for _, b := range []struct {
		streams     int
		test        string
		metric, cpu string
	}{{1, "bulk1", m1, cpu1}, {8, "bulk8", m8, cpu8}} {
		if !cfg.tests[b.test] {
			continue
		}
		lc.test, lc.streams = "bulk", b.streams
		lr, err := loadgen(ctx, cfg, lc)
		if err != nil {
			return fmt.Errorf("bulk %d: %w", b.streams, err)
		}
		noteErrors(notes, impl, fmt.Sprintf("bulk %d", b.streams), lr)
		r.add(impl, b.metric, lr.Gbps)
		if b.cpu != "" {
			addCPU(r, impl, b.cpu, lr.CPU)
		}
		fmt.Fprintf(stderr, "  bulk %d stream(s) %.2f Gbit/s (%d errors, proxy %.2f cores; others used %.2f cores)\n", b.streams, lr.Gbps, lr.Errors, lr.CPU, lr.Foreign)
	}
	return nil
}

// noteErrors records failed operations of a test in the report.
func noteErrors(n *notes, impl, test string, lr loadResult) {
	if lr.Foreign >= 0 {
		n.foreign = append(n.foreign, lr.Foreign)
	}
	if lr.Errors > 0 {
		n.add(impl, fmt.Sprintf("%s: %d failed operations in one run", test, lr.Errors))
	}
}

func addCPU(r results, impl, metric string, cores float64) {
	if cores >= 0 {
		r.add(impl, metric, cores)
	}
}

// loadgen runs the load generator process for one test and returns its
// result line.
func loadgen(ctx context.Context, cfg *config, lc loadConfig) (loadResult, error) {
	ctx, cancel := context.WithTimeout(ctx, lc.warmup+lc.duration+30*time.Second)
	defer cancel()
	c, err := startChild(ctx, "loadgen", cfg.self, append([]string{"__loadgen"}, lc.args()...)...)
	if err != nil {
		return loadResult{}, err
	}
	defer c.stop()
	line, err := c.readLine(ctx, lc.warmup+lc.duration+25*time.Second)
	if err != nil {
		return loadResult{}, err
	}
	var lr loadResult
	if err := json.Unmarshal([]byte(line), &lr); err != nil {
		return loadResult{}, fmt.Errorf("loadgen output %q: %w", line, err)
	}
	time.Sleep(200 * time.Millisecond) // let the previous test's sockets close
	return lr, nil
}

// idleMemory opens cfg.idleConns connections through p, each after one
// 64-byte exchange, and records per connection the proxy's memory: its
// RSS growth plus the kernel memory its new fds hold (fdUsage.kernelBytes).
// As a cross-check it also records the system-wide kernel memory growth of
// the whole path (memSnapshot.kernelKiB), which other activity on the
// machine disturbs. It then closes the connections and waits (bounded)
// until the proxy has too.
func idleMemory(ctx context.Context, cfg *config, p *proxy, r results, notes *notes, stderr io.Writer) error {
	sizes := defaultSlabSizes()
	if b, err := os.ReadFile("/proc/slabinfo"); err == nil {
		sizes = parseSlabinfo(b, sizes)
	}
	time.Sleep(500 * time.Millisecond) // settle after start
	before, err := readMemSnapshot(p.pid())
	if err != nil {
		return err
	}
	lc := loadConfig{test: "idle", addr: p.addr, conns: cfg.idleConns}
	c, err := startChild(ctx, "loadgen", cfg.self, append([]string{"__loadgen"}, lc.args()...)...)
	if err != nil {
		return err
	}
	defer c.stop()
	line, err := c.readLine(ctx, 2*time.Minute)
	if err != nil {
		return err
	}
	var lr loadResult
	if err := json.Unmarshal([]byte(line), &lr); err != nil {
		return fmt.Errorf("loadgen output %q: %w", line, err)
	}
	if lr.Conns < cfg.idleConns/2 {
		return fmt.Errorf("only %d of %d idle connections opened (%d failed)", lr.Conns, cfg.idleConns, lr.Errors)
	}
	if lr.Conns < cfg.idleConns*99/100 {
		notes.add(p.impl, fmt.Sprintf("held only %d of %d idle connections (%d failed); memory is per held connection", lr.Conns, cfg.idleConns, lr.Errors))
	}
	time.Sleep(time.Second) // let deferred frees (RCU, GC) settle
	after, err := readMemSnapshot(p.pid())
	if err != nil {
		return err
	}
	c.stop()

	n := float64(lr.Conns)
	system := float64(after.kernelKiB()-before.kernelKiB()) / n
	r.add(p.impl, mIdleSystem, system)
	dInUse := after.TCP.InUse - before.TCP.InUse
	if p.proc == nil {
		r.add(p.impl, mIdleMem, 0) // no proxy, nothing to count
		fmt.Fprintf(stderr, "  idle: %d conns; system-wide kernel %.1f KiB per conn, %+d TCP sockets, %+d skb pages\n",
			lr.Conns, system, dInUse, after.TCP.MemPages-before.TCP.MemPages)
		return nil
	}
	rss := float64(after.RSSKiB-before.RSSKiB) / n
	kernel := float64(after.FDs.kernelBytes(sizes)-before.FDs.kernelBytes(sizes)) / 1024 / n
	r.add(p.impl, mIdleMem, rss+kernel)
	r.add(p.impl, mIdleRSS, rss)
	r.add(p.impl, mIdleKernel, kernel)
	r.add(p.impl, mIdleFDs, float64(after.FDs.FDs-before.FDs.FDs)/n)
	fmt.Fprintf(stderr, "  idle: %d conns, per conn: RSS %.1f KiB + kernel %.1f KiB; fds %.2f, sockets %.2f, pipes %.2f, epoll %.2f; system-wide kernel %.1f KiB, %+d TCP sockets, %+d skb pages\n",
		lr.Conns, rss, kernel, float64(after.FDs.FDs-before.FDs.FDs)/n, float64(after.FDs.Sockets-before.FDs.Sockets)/n,
		float64(len(after.FDs.Pipes)-len(before.FDs.Pipes))/n, float64(after.FDs.EpollWatch-before.FDs.EpollWatch)/n,
		system, dInUse, after.TCP.MemPages-before.TCP.MemPages)
	for i := 0; i < 100; i++ {
		fds, err := countFDs(p.pid())
		if err != nil || fds <= before.FDs.FDs+16 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// env describes the machine and the versions, for the report.
type env struct {
	date, kernel, cpu, goVersion, haproxy, nlb, commit string
	cores                                              int
}

func environment(ctx context.Context, cfg *config) env {
	e := env{date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), goVersion: runtime.Version(), cores: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	e.haproxy = benchrun.Version(ctx, cfg.haproxy, "-v")
	e.nlb = benchrun.Version(ctx, cfg.nlb, "version")
	e.commit = benchrun.Version(ctx, "git", "describe", "--always", "--dirty")
	return e
}

func renderMarkdown(cfg *config, e env, elapsed time.Duration, table, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Proxy benchmark: nlb vs HAProxy vs direct (loopback)\n\n")
	fmt.Fprintf(&b, "%s, commit %s, %d × %s cores, Linux %s, %s; %s; %s.\n\n", e.date, e.commit, e.cores, e.cpu, e.kernel, e.goVersion, e.haproxy, e.nlb)
	var only string
	if len(cfg.tests) < len(allTests) {
		var ts []string
		for _, t := range allTests {
			if cfg.tests[t] {
				ts = append(ts, t)
			}
		}
		only = " --tests " + strings.Join(ts, ",")
	}
	fmt.Fprintf(&b, "Command: `go run ./bench/proxy --nlb %s --runs %d --duration %v --nice %d%s` (`make bench-proxy` runs the defaults: 5 runs, 3s, nice 0, every test), %v in total. ", cfg.nlb, cfg.runs, cfg.duration, cfg.nice, only, elapsed)
	fmt.Fprintf(&b, "Medians of %d interleaved runs; nice %d; HAProxy nbthread %d, splice %s; %d idle connections", cfg.runs, cfg.nice, cfg.haproxyThreads, cfg.haproxySplice, cfg.idleConns)
	if cfg.idleConns < cfg.idleRequested {
		fmt.Fprintf(&b, " (not %d: RLIMIT_NOFILE's hard limit allows no more)", cfg.idleRequested)
	}
	b.WriteString("; method in bench/README.md.\n\n")
	b.WriteString(table)
	b.WriteString(extra)
	b.WriteString("\n![throughput, latency, connections and memory](proxy.svg)\n")
	return b.String()
}

// notes are remarks per implementation for the report, and the foreign
// CPU load seen in every measured window.
type notes struct {
	byImpl  map[string][]string
	foreign []float64 // cores
}

func (n *notes) add(impl, s string) {
	if n.byImpl == nil {
		n.byImpl = make(map[string][]string)
	}
	n.byImpl[impl] = append(n.byImpl[impl], s)
}

// reportNotes renders failures, notes and the machine's background load
// as Markdown lines.
func reportNotes(failures map[string]string, n *notes, busy []float64) string {
	var b strings.Builder
	for _, impl := range []string{implDirect, implHAProxy, implNLB} {
		if f, ok := failures[impl]; ok {
			fmt.Fprintf(&b, "\n- %s failed: `%s`", impl, strings.ReplaceAll(f, "\n", " "))
		}
		for _, s := range n.byImpl[impl] {
			fmt.Fprintf(&b, "\n- %s: %s", impl, s)
		}
	}
	if len(busy) > 0 {
		fmt.Fprintf(&b, "\n- Background CPU load over 0.5 s before each run (after waiting up to 10 s for it to drop below 25%%): median %.0f%%, max %.0f%% of the machine.", 100*stats.Median(busy), 100*slices.Max(busy))
	}
	if len(n.foreign) > 0 {
		fmt.Fprintf(&b, "\n- CPU used by other processes during the measured windows: median %.2f, max %.2f cores of %d (figures from disturbed windows are noisy).", stats.Median(n.foreign), slices.Max(n.foreign), runtime.NumCPU())
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

// waitQuiet waits up to 10 s for the machine's background CPU load to
// drop below 25 %, so that runs land in quiet moments of a shared machine,
// and returns the last load seen.
func waitQuiet(ctx context.Context) float64 {
	b := backgroundBusy()
	for i := 0; i < 19 && b > 0.25 && ctx.Err() == nil; i++ {
		b = backgroundBusy()
	}
	return b
}

// backgroundBusy returns the fraction of CPU time the machine spent busy
// over 0.5 s, from /proc/stat; it is called while no bench process runs.
func backgroundBusy() float64 {
	read := func() (idle, total float64, ok bool) {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			return 0, 0, false
		}
		return parseProcStatCPU(b)
	}
	i0, t0, ok0 := read()
	time.Sleep(500 * time.Millisecond)
	i1, t1, ok1 := read()
	if !ok0 || !ok1 || t1 <= t0 {
		return math.NaN()
	}
	return 1 - (i1-i0)/(t1-t0)
}
