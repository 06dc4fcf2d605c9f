package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nlb-dev/nlb/internal/benchtool"
	"github.com/nlb-dev/nlb/internal/netlab"
)

// The tests, in the order a session runs them.
const (
	testRR       = "rr"            // wrk, kept-alive
	testConn     = "conn"          // wrk, Connection: close
	testLatency  = "latency"       // vegeta at a fixed rate
	testSyscalls = "syscalls"      // wrk, kept-alive, under strace -c (proxies only)
	testBulk1    = "bulk1"         // iperf3 -R, 1 process
	testBulk8    = "bulk8"         // iperf3 -R, 8 processes
	testBulk1F   = "bulk1-forward" // iperf3 (client to server), 1 process
	testIdle     = "idle"          // the bench's own client: memory per idle connection (loopback only)
)

var allTests = []string{testRR, testConn, testLatency, testSyscalls, testBulk1, testBulk8, testBulk1F, testIdle}

// kindOf is what a test's proxy is started for.
func kindOf(test string) string {
	switch test {
	case testBulk1, testBulk8, testBulk1F:
		return kindBulk
	case testIdle:
		return kindIdle
	}
	return kindHTTP
}

// Metric names.
const (
	mRRRate            = "rr_rate"                    // req/s, wrk kept-alive
	mRRP99             = "rr_latency_p99_closed"      // µs, wrk's p99 at saturation
	mConnRate          = "conn_rate"                  // conn/s, wrk Connection: close
	mLatP50            = "latency_p50"                // µs, vegeta at a fixed rate
	mLatP99            = "latency_p99"                //
	mLatP999           = "latency_p999"               //
	mLatRate           = "latency_rate"               // req/s vegeta sent
	mLatFailed         = "latency_failed"             // requests without a 2xx
	mThroughput1       = "throughput_1stream"         // Gbit/s, iperf3 -R
	mThroughput8       = "throughput_8streams"        //
	mThroughput1F      = "throughput_1stream_fwd"     // Gbit/s, iperf3 client to server
	mThroughput8Window = "throughput_8streams_window" // s: how long the 8 iperf3 clients all ran
	mBulk8Start        = "bulk8_start"                // s: starting the 8 clients one after another
	mCtxRR             = "ctxsw_per_request"          // the proxy's context switches per kept-alive request
	mCtxConn           = "ctxsw_per_connection"       // per request on a new connection
	mCPURR             = "proxy_cpu_per_request"      // µs of the proxy's CPU per kept-alive request
	mCPUConn           = "proxy_cpu_per_connection"   //
	mSyscallsRR        = "syscalls_per_request"       // the proxy's system calls per kept-alive request (strace -c)
	mErrRR             = "errors_rr"                  // wrk socket errors and non-2xx
	mErrConn           = "errors_conn"                //
	mIdleMem           = "idle_conn_memory"           // KiB: RSS + kernel objects
	mIdleRSS           = "idle_conn_rss"              // KiB
	mIdleKernel        = "idle_conn_kernel"           // KiB
	mIdleSystem        = "idle_conn_kernel_system"    // KiB, system-wide, whole path (cross-check)
	mIdleFDs           = "idle_conn_fds"
)

// params are the load settings of a run.
type params struct {
	duration  time.Duration // each measured run
	warmup    time.Duration // vegeta's first requests left out (connections opening)
	threads   int           // wrk
	conns     int           // wrk
	rate      int           // vegeta, requests/s
	workers   int           // vegeta's initial workers
	straceFor time.Duration // the kept-alive run under strace
	idleConns int
	vegeta    string
	self      string // this binary: the idle test's backend and client
	dir       string
	plan      planOptions
}

// clientRun runs argv on t's client host, bounded, and returns its stdout.
func clientRun(ctx context.Context, h *netlab.Host, argv []string, limit time.Duration, stdin string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := h.Exec(ctx, argv[0], argv[1:]...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s %s", err, strings.TrimSpace(string(ee.Stderr)), benchtool.LastLines(string(out), 5))
		}
		return out, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	}
	return out, nil
}

// counters are the proxy's context switches (all threads) and CPU time.
type counters struct {
	ctxsw int64
	cpu   float64
}

func readCounters(pid int) (counters, error) {
	if pid <= 0 {
		return counters{}, nil
	}
	n, err1 := benchtool.ContextSwitches("/proc", pid)
	c, err2 := benchtool.ProcCPUSeconds(pid)
	return counters{n, c}, errors.Join(err1, err2)
}

func url(a netip.AddrPort) string { return "http://" + a.String() + "/" }

// measureWrk runs wrk kept-alive (or Connection: close) through p: the
// request rate, and per request the proxy's context switches and CPU.
func measureWrk(ctx context.Context, t *topology, p *proxy, prm *params, closeEach bool) (map[string]float64, error) {
	c0, err := readCounters(p.pid())
	if err != nil {
		return nil, err
	}
	out, err := clientRun(ctx, t.client, benchtool.WrkArgs(prm.threads, prm.conns, prm.duration, closeEach, url(p.targets[0])), prm.duration+30*time.Second, "")
	if err != nil {
		return nil, err
	}
	c1, err := readCounters(p.pid())
	if err != nil {
		return nil, err
	}
	r, err := benchtool.ParseWrk(string(out))
	if err != nil {
		return nil, err
	}
	rate, ctx_, cpu, errs := mRRRate, mCtxRR, mCPURR, mErrRR
	m := map[string]float64{}
	if closeEach {
		rate, ctx_, cpu, errs = mConnRate, mCtxConn, mCPUConn, mErrConn
	} else {
		m[mRRP99] = r.P99
	}
	m[rate], m[errs] = r.Rate, r.Errors
	if p.pid() > 0 && r.Requests > 0 {
		m[ctx_] = float64(c1.ctxsw-c0.ctxsw) / r.Requests
		m[cpu] = (c1.cpu - c0.cpu) / r.Requests * 1e6
	}
	return m, nil
}

// measureLatency runs vegeta at prm.rate for warmup + duration and
// returns exact percentiles over the requests after the warm-up.
func measureLatency(ctx context.Context, t *topology, p *proxy, prm *params) (map[string]float64, error) {
	bin := filepath.Join(prm.dir, "vegeta-"+t.name+".bin")
	defer os.Remove(bin)
	d := prm.warmup + prm.duration
	if _, err := clientRun(ctx, t.client, benchtool.VegetaAttackArgs(prm.vegeta, prm.rate, d, prm.workers, bin), d+30*time.Second,
		"GET "+url(p.targets[0])+"\n"); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	argv := benchtool.VegetaReportArgs(prm.vegeta, bin)
	js, err := exec.CommandContext(rctx, argv[0], argv[1:]...).Output()
	if err != nil {
		return nil, fmt.Errorf("vegeta report: %w", err)
	}
	rep, err := benchtool.ParseVegetaReport(js)
	if err != nil {
		return nil, err
	}
	argv = benchtool.VegetaEncodeArgs(prm.vegeta, bin)
	enc := exec.CommandContext(rctx, argv[0], argv[1:]...)
	stdout, err := enc.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := enc.Start(); err != nil {
		return nil, fmt.Errorf("vegeta encode: %w", err)
	}
	l, perr := benchtool.ParseVegetaCSV(bufio.NewReaderSize(stdout, 1<<16), prm.warmup)
	if err := errors.Join(perr, enc.Wait()); err != nil {
		return nil, err
	}
	return map[string]float64{
		mLatP50: benchtool.Percentile(l.Sorted, 0.5), mLatP99: benchtool.Percentile(l.Sorted, 0.99),
		mLatP999: benchtool.Percentile(l.Sorted, 0.999), mLatRate: rep.Rate, mLatFailed: float64(l.Failed),
	}, nil
}

// measureSyscalls runs wrk kept-alive for prm.straceFor with strace -c
// attached to every thread of the proxy and returns the system calls per
// request, and the most frequent calls per request for the notes. strace
// slows the proxy down: this run's rate is not reported.
func measureSyscalls(ctx context.Context, t *topology, p *proxy, prm *params) (map[string]float64, string, error) {
	file := filepath.Join(prm.dir, "strace-"+p.impl+"-"+t.name+".txt")
	defer os.Remove(file)
	sctx, cancel := context.WithTimeout(ctx, prm.straceFor+time.Minute)
	defer cancel()
	argv := benchtool.StraceArgs(p.pid(), file)
	st := exec.CommandContext(sctx, argv[0], argv[1:]...)
	st.Cancel = func() error { return st.Process.Kill() }
	stderr, err := st.StderrPipe()
	if err != nil {
		return nil, "", err
	}
	if err := st.Start(); err != nil {
		return nil, "", fmt.Errorf("strace: %w", err)
	}
	attached := make(chan struct{})
	var msgs strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			if msgs.Len() < 4096 {
				msgs.WriteString(sc.Text() + "\n")
			}
			if !once && strings.Contains(sc.Text(), "attached") {
				once = true
				close(attached)
			}
		}
	}()
	select {
	case <-attached:
	case <-time.After(10 * time.Second):
		_ = st.Process.Kill()
		_ = st.Wait()
		return nil, "", fmt.Errorf("strace did not attach to %d within 10 s", p.pid())
	}
	time.Sleep(200 * time.Millisecond) // the other threads
	out, werr := clientRun(ctx, t.client, benchtool.WrkArgs(prm.threads, prm.conns, prm.straceFor, false, url(p.targets[0])), prm.straceFor+30*time.Second, "")
	_ = st.Process.Signal(syscall.SIGINT) // detach and write the summary
	if err := st.Wait(); err != nil && !interrupted(err) {
		return nil, "", fmt.Errorf("strace: %w: %s", err, msgs.String())
	}
	if werr != nil {
		return nil, "", werr
	}
	r, err := benchtool.ParseWrk(string(out))
	if err != nil {
		return nil, "", err
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, "", err
	}
	s, err := benchtool.ParseStraceSummary(string(b))
	if err != nil {
		return nil, "", err
	}
	return map[string]float64{mSyscallsRR: float64(s.Calls) / r.Requests}, topCalls(s, r.Requests, 6), nil
}

// interrupted reports whether a process ended by SIGINT, as strace does
// once it has written its summary.
func interrupted(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGINT
}

// topCalls formats the n most frequent system calls per request.
func topCalls(s benchtool.StraceSummary, requests float64, n int) string {
	names := make([]string, 0, len(s.ByName))
	for k := range s.ByName {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int {
		if s.ByName[a] != s.ByName[b] {
			return int(s.ByName[b] - s.ByName[a])
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, k := range names[:min(n, len(names))] {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, float64(s.ByName[k])/requests))
	}
	return strings.Join(parts, ", ")
}

// busyServers returns the iperf3 servers of t with a test under way: at
// least a control and a data connection established on the server's port.
func busyServers(t *topology) (map[int]bool, error) {
	socks, err := benchtool.TCPSockets(t.iperf[0].Pid())
	if err != nil {
		return nil, err
	}
	est := map[int]int{}
	for _, s := range socks {
		if s.State == benchtool.TCPEstablished {
			est[s.LocalPort]++
		}
	}
	busy := map[int]bool{}
	for i := range t.iperf {
		if est[portIperf+i] >= 2 {
			busy[i] = true
		}
	}
	return busy, nil
}

// waitServers polls the iperf3 servers every 2 ms, bounded, until done
// says so; seen collects every server found busy meanwhile.
func waitServers(ctx context.Context, t *topology, limit time.Duration, seen map[int]bool, done func(busy map[int]bool) (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		busy, err := busyServers(t)
		if err != nil {
			return err
		}
		for i := range busy {
			seen[i] = true
		}
		if ok, err := done(busy); ok || err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("iperf3 servers: %d busy, %d seen busy after %v (a client's control and data connections must reach one server)", len(busy), len(seen), limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// bulkStartAllowance is how much longer than --duration the clients of
// the 8-stream test run.
const bulkStartAllowance = 4 * time.Second

// measureBulk runs streams iperf3 clients (each its own process: Debian's
// iperf3 3.12 runs all of a process's streams in one thread) to p's bulk
// targets, reverse (server to client) or forward, and returns what their
// receivers got together, in Gbit/s, and for several clients the length
// of the window in which all of them ran. The clients start one after
// another, each once the previous one's server is busy (for nlb, whose
// round robin must take a client's control and data connections to one
// server), so several clients are counted only over the window in which
// they all ran (benchtool.OverlapRate, from their 0.1 s intervals).
func measureBulk(ctx context.Context, t *topology, p *proxy, prm *params, streams int, reverse bool) (gbps float64, window, start time.Duration, err error) {
	if err := waitServers(ctx, t, 10*time.Second, map[int]bool{}, func(busy map[int]bool) (bool, error) { return len(busy) == 0, nil }); err != nil {
		return 0, 0, 0, fmt.Errorf("before the run: %w", err)
	}
	type client struct {
		out  []byte
		err  error
		done chan struct{}
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	clients := make([]*client, streams)
	wait := func() {
		for _, c := range clients {
			if c != nil {
				<-c.done
			}
		}
	}
	defer wait()
	// Several clients run bulkStartAllowance longer, so that they all
	// run at once for about the measured duration however long starting
	// them took (each start is a process and a control exchange through
	// a proxy on saturated cores: 50-400 ms here).
	d := prm.duration
	if streams > 1 {
		d += bulkStartAllowance
	}
	begin := time.Now()
	starts := make([]time.Duration, streams)
	seen := map[int]bool{}
	for i := range streams {
		c := &client{done: make(chan struct{})}
		clients[i] = c
		tg := p.targets[i]
		argv := append(benchtool.Iperf3Args(tg.Addr().String(), int(tg.Port()), d, reverse, 1), "-i", "0.1")
		go func() {
			defer close(c.done)
			c.out, c.err = clientRun(cctx, t.client, argv, d+30*time.Second, "")
		}()
		err := waitServers(ctx, t, 10*time.Second, seen, func(map[int]bool) (bool, error) {
			if len(seen) > i {
				return true, nil
			}
			select {
			case <-c.done:
				return false, fmt.Errorf("iperf3 client %d ended before its server was seen busy: %v", i, c.err)
			default:
				return false, nil
			}
		})
		if err != nil {
			cancel()
			return 0, 0, 0, err
		}
		starts[i] = time.Since(begin)
	}
	wait()
	runs := make([]benchtool.Iperf3Result, streams)
	for i, c := range clients {
		if c.err != nil {
			return 0, 0, 0, c.err
		}
		r, err := benchtool.ParseIperf3(c.out)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("client %d: %w", i, err)
		}
		runs[i] = r
	}
	if streams == 1 {
		return runs[0].BitsPerSecond / 1e9, 0, 0, nil
	}
	start = starts[streams-1]
	bps, window, err := benchtool.OverlapRate(starts, runs)
	if err != nil {
		return 0, 0, start, fmt.Errorf("%w; starting the %d clients one after another took %v", err, streams, start.Round(time.Millisecond))
	}
	if window < prm.duration/2 {
		return 0, 0, start, fmt.Errorf("the %d iperf3 clients ran all at once for only %v of %v: starting them one after another took %v",
			streams, window.Round(time.Millisecond), prm.duration, starts[streams-1].Round(time.Millisecond))
	}
	return bps / 1e9, window, start, nil
}

// measureIdle opens prm.idleConns connections through a fresh impl to
// the bench's own echo backend, each after one 64-byte exchange, and
// returns per connection the proxy's memory: its RSS growth plus the
// kernel memory its new fds hold (fdUsage.kernelBytes), and as a
// cross-check the system-wide kernel memory growth of the whole path
// (memSnapshot.kernelKiB), which other activity on the machine disturbs.
func measureIdle(ctx context.Context, t *topology, impl string, prm *params, logf func(string, ...any)) (map[string]float64, string, error) {
	be, err := startChild("backend", t.backend.Exec(ctx, prm.self, "__backend"))
	if err != nil {
		return nil, "", err
	}
	defer be.stop()
	addr, err := be.readLine(ctx, 10*time.Second)
	if err != nil {
		return nil, "", err
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, "", fmt.Errorf("backend address %q: %w", addr, err)
	}
	p, err := startProxy(ctx, t, impl, kindIdle, ap, prm.plan)
	if err != nil {
		return nil, "", err
	}
	defer p.stop()
	sizes := defaultSlabSizes()
	if b, err := os.ReadFile("/proc/slabinfo"); err == nil {
		sizes = parseSlabinfo(b, sizes)
	}
	time.Sleep(500 * time.Millisecond) // settle after the start
	before, err := readMemSnapshot(p.pid())
	if err != nil {
		return nil, "", err
	}
	lg, err := startChild("loadgen", t.client.Exec(ctx, prm.self, "__loadgen", "-addr", p.targets[0].String(), "-conns", fmt.Sprint(prm.idleConns)))
	if err != nil {
		return nil, "", err
	}
	defer lg.stop()
	line, err := lg.readLine(ctx, 2*time.Minute)
	if err != nil {
		return nil, "", err
	}
	var lr idleResult
	if err := json.Unmarshal([]byte(line), &lr); err != nil {
		return nil, "", fmt.Errorf("loadgen output %q: %w", line, err)
	}
	if lr.Conns < prm.idleConns/2 {
		return nil, "", fmt.Errorf("only %d of %d idle connections opened (%d failed, the first: %s)", lr.Conns, prm.idleConns, lr.Errors, lr.FirstError)
	}
	var note string
	if lr.Conns < prm.idleConns*99/100 {
		note = fmt.Sprintf("held only %d of %d idle connections (%d failed, the first: %s); memory is per held connection", lr.Conns, prm.idleConns, lr.Errors, lr.FirstError)
	}
	time.Sleep(time.Second) // let deferred frees (RCU, GC) settle
	after, err := readMemSnapshot(p.pid())
	if err != nil {
		return nil, "", err
	}
	n := float64(lr.Conns)
	rss := float64(after.RSSKiB-before.RSSKiB) / n
	kernel := float64(after.FDs.kernelBytes(sizes)-before.FDs.kernelBytes(sizes)) / 1024 / n
	m := map[string]float64{
		mIdleMem: rss + kernel, mIdleRSS: rss, mIdleKernel: kernel,
		mIdleFDs:    float64(after.FDs.FDs-before.FDs.FDs) / n,
		mIdleSystem: float64(after.kernelKiB()-before.kernelKiB()) / n,
	}
	logf("  idle: %d conns, per conn: RSS %.2f KiB + kernel %.2f KiB; fds %.2f, sockets %.2f, pipes %.2f, epoll %.2f; system-wide kernel %.1f KiB, %+d TCP sockets, %+d skb pages",
		lr.Conns, rss, kernel, m[mIdleFDs], float64(after.FDs.Sockets-before.FDs.Sockets)/n,
		float64(len(after.FDs.Pipes)-len(before.FDs.Pipes))/n, float64(after.FDs.EpollWatch-before.FDs.EpollWatch)/n,
		m[mIdleSystem], after.TCP.InUse-before.TCP.InUse, after.TCP.MemPages-before.TCP.MemPages)
	return m, note, nil
}
