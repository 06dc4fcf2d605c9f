// Command xdp measures nlb's XDP fast path (keepalived.virtualServers:
// layer-2 direct server return from the VRRP Master) against a client
// talking to the backend directly, nlb's proxy and HAProxy, in one
// namespace lab on one bridge (see lab): bulk throughput from server to
// client with iperf3 -R (1 stream, and 8 with -P 8), kept-alive HTTP
// requests/s and latency with wrk against nginx, new connections/s with
// wrk and Connection: close, the whole machine's CPU time per request and
// per GB (/proc/stat), the XDP program's own run time (the kernel's BPF
// statistics), and the program's cost per packet through BPF_PROG_RUN
// (ebpf/xdplb's benchmarks). Every round runs every test on every path,
// the paths in a rotated order; the report gives medians. Run it as root
// through `make bench-xdp`; bench/README.md describes it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/nlb-dev/nlb/internal/benchrun"
	"github.com/nlb-dev/nlb/internal/benchtool"
)

func main() { benchrun.Main("bench-xdp", run) }

// meta is the first JSON line: the setup.
type meta struct {
	benchrun.Setup
	Connections int       `json:"connections"`
	Threads     int       `json:"threads"`
	Backend     string    `json:"backend"`
	Attach      string    `json:"xdp_attach"`
	Targets     []string  `json:"targets"`
	Background  []float64 `json:"background_busy"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	b := benchrun.New("xdp", stdout, stderr, benchrun.Options{
		Reps: 5, RepsUsage: "rounds: every test on every path, the paths in a rotated order",
		Verbose: true, NeedNLB: true, Root: "needs root: it builds network namespaces and loads BPF programs",
	})
	var p params
	b.Flags.DurationVar(&p.duration, "duration", 5*time.Second, "length of each measured run (iperf3: whole seconds)")
	// 64: enough that every path keeps the machine busy. With 32 the
	// XDP path, a hop longer, left 6 % of the cores idle while wrk's
	// connections waited for replies, and its requests/s measured that
	// wait rather than what the path can carry (0.88x direct at 1.87
	// cores busy; 0.93x at 1.94 with 64).
	b.Flags.IntVar(&p.connections, "connections", 64, "wrk connections (enough to keep every path's machine busy)")
	b.Flags.IntVar(&p.threads, "threads", 2, "wrk threads")
	implsFlag := b.Flags.String("impls", strings.Join(allImpls, ","), "paths to measure")
	testsFlag := b.Flags.String("tests", strings.Join(allTests, ","), "tests to run")
	progRun := b.Flags.Bool("prog-run", true, "measure the program through BPF_PROG_RUN (ebpf/xdplb's benchmarks) every round")
	progTime := b.Flags.Duration("prog-benchtime", time.Second, "-test.benchtime of each BPF_PROG_RUN benchmark")
	xdpMode := b.Flags.String("xdp-mode", "auto", "nlb controller --xdp-mode: auto (tcx-ingress on these veths), xdp-native, xdp-generic or tcx-ingress")
	logs := b.Flags.String("logs", "", "keep the processes' logs and configurations in this directory (default: a temporary one, removed)")
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
	if p.duration < time.Second || p.connections < 1 || p.threads < 1 || p.threads > p.connections {
		return errors.New("--duration must be at least 1s, --connections and --threads at least 1, threads at most connections")
	}
	if err := b.Setup(ctx); err != nil {
		return err
	}
	for _, tool := range []string{"wrk", "iperf3", "nginx", "haproxy", "ip", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (make deps installs it): %w", tool, err)
		}
	}
	dir := *logs
	if dir == "" {
		if dir, err = os.MkdirTemp("", "nlb-bench-xdp-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}

	var pb *progRunBench
	if *progRun {
		b.Logf("building ebpf/xdplb's test binary")
		if pb, err = buildProgRun(ctx, dir); err != nil {
			return err
		}
	}
	b.Logf("starting the lab")
	l, err := startLab(ctx, b.NLB, dir, *xdpMode, b.Logf)
	if err != nil {
		return err
	}
	defer l.Close()
	prog, err := l.program()
	if err != nil {
		return err
	}
	defer prog.Close()

	res := newResults()
	var background []float64
	for rep := range b.Reps {
		// The kernel's BPF run-time statistics, on while the fd is open
		// (the switch behind sysctl kernel.bpf_stats_enabled=1, undone
		// when the bench exits, however it exits); off again for
		// BPF_PROG_RUN, whose runs they would slow down by two clock
		// reads each.
		st, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
		if err != nil {
			return fmt.Errorf("enable BPF statistics: %w", err)
		}
		// Alternate the phases so that the servers running carry over.
		order := slices.Clone(tests)
		slices.SortStableFunc(order, func(a, c string) int {
			pa, pc := serversFor(a) == serversNginx, serversFor(c) == serversNginx
			if pa == pc {
				return 0
			}
			if pa == (rep%2 == 0) {
				return -1
			}
			return 1
		})
		for ti, test := range order {
			if err := l.useServers(ctx, serversFor(test)); err != nil {
				st.Close()
				return fmt.Errorf("round %d: %w", rep+1, err)
			}
			for _, impl := range benchtool.Rotate(impls, rep+ti) {
				if err := ctx.Err(); err != nil {
					st.Close()
					return err
				}
				bg := benchtool.WaitQuiet(ctx)
				background = append(background, bg)
				var pr *ebpf.Program
				if impl == implXDP {
					pr = prog
				}
				m, err := l.measure(ctx, impl, test, p, pr)
				for try := 1; err != nil && try < 3 && startRefused(err) && ctx.Err() == nil; try++ {
					// iperf3's server closes its listener between
					// tests: a client that comes in that gap is
					// refused before anything was measured.
					b.Logf("round %d %s %s: %v; again", rep+1, test, impl, err)
					time.Sleep(500 * time.Millisecond)
					m, err = l.measure(ctx, impl, test, p, pr)
				}
				if err != nil {
					if ctx.Err() != nil {
						st.Close()
						return ctx.Err()
					}
					b.Logf("round %d %s %s: %v", rep+1, test, impl, err)
					res.fail(impl, fmt.Sprintf("round %d %s: %v", rep+1, test, err))
					continue
				}
				res.add(impl, m)
				b.Logf("round %d %s %s (background %.0f%%): %s", rep+1, test, impl, 100*bg, summary(m))
			}
		}
		st.Close()
		if pb != nil {
			m, err := pb.run(ctx, *progTime)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				res.fail(implXDP, fmt.Sprintf("round %d BPF_PROG_RUN: %v", rep+1, err))
			} else {
				res.add(implXDP, m)
				b.Logf("round %d BPF_PROG_RUN: %s", rep+1, summary(m))
			}
		}
	}

	md := meta{
		Setup: benchrun.NewSetup(ctx, "xdp", b.NLB, b.Reps, p.duration, []string{benchrun.Version(ctx, "haproxy", "-v"), benchrun.Version(ctx, "nginx", "-v"),
			benchtool.ToolVersion(ctx, "wrk", "-v"), benchrun.Version(ctx, "iperf3", "-v")}),
		Connections: p.connections, Threads: p.threads,
		Backend: l.backend.Name, Attach: l.attach, Background: background,
	}
	var notes []string
	for _, impl := range impls {
		md.Targets = append(md.Targets, fmt.Sprintf("%s=%s:%d", impl, l.target[impl], port))
	}
	if err := b.Add(md); err != nil {
		return err
	}
	for _, r := range res.lines() {
		if err := b.Add(r); err != nil {
			return err
		}
	}
	if v, err := os.ReadFile("/proc/sys/kernel/bpf_stats_enabled"); err == nil && strings.TrimSpace(string(v)) != "0" {
		notes = append(notes, "kernel.bpf_stats_enabled was set by someone else during the bench: the BPF_PROG_RUN figures include the statistics' two clock reads per run.")
	}
	notes = append(notes,
		md.Measured()+".",
		fmt.Sprintf("%d rounds of %v per run; wrk -t %d -c %d; iperf3 -R; every path ends on backend %s (%s); the XDP program attached as %s.",
			b.Reps, p.duration, p.threads, p.connections, l.backend.Name, strings.Join(md.Targets, ", "), l.attach))
	return b.Finish(res.markdown(notes, background))
}

// summary formats a run's metrics for the log.
func summary(m map[string]float64) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%.4g", k, m[k]))
	}
	return strings.Join(parts, " ")
}
