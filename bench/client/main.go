// Command client measures `nlb client` (node-local load balancing) against
// a real control plane: etcd and three kube-apiservers in a namespace lab
// (internal/k8slab), `nlb client` on the worker, and client-go programs on
// the worker listing and watching through it (internal/nllblab).
//
// Every repetition runs two scenarios under load, restoring the cluster
// after each:
//
//   - kill: SIGKILL of the second API server;
//   - blackhole: the third API server's link goes down.
//
// For each it prints one JSON line
//
//	{"scenario":"kill","detect_ms":D,"failed_requests":N,"failed_connects":M,"requests":T}
//
// where detect_ms runs from the fault to the first /status (polled every
// 50 ms) that shows the victim unhealthy, and the counts are HTTP round
// trips of the programs over the scenario (see nllblab.LoopCounts). Then
// one line for the idle resident set size of `nlb client` with three
// upstreams, {"metric":"idle_rss","value":KiB,"unit":"KiB","upstreams":3},
// measured after 5 s without client traffic, and a Markdown table of
// medians against the goals. Run it as root through
// `make bench-client`.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nlb-dev/nlb/internal/benchrun"
	"github.com/nlb-dev/nlb/internal/k8slab"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nllblab"
)

func main() { benchrun.Main("bench-client", run) }

// rssLine is the idle RSS JSON line.
type rssLine struct {
	Metric    string `json:"metric"`
	Value     int64  `json:"value"`
	Unit      string `json:"unit"`
	Upstreams int    `json:"upstreams"`
}

// idleWait is how long `nlb client` runs without client traffic before its
// RSS is read.
const idleWait = 5 * time.Second

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	b := benchrun.New("client", stdout, stderr, benchrun.Options{
		Reps: 3, KubeAPIServer: k8slab.APIServerBinary, Verbose: true, NeedNLB: true,
		Root: "needs root: it builds network namespaces",
	})
	idleOnly := b.Flags.Bool("idle-only", false, "measure only the idle RSS (no fault scenarios, nothing written to --out)")
	if err := b.Parse(args); err != nil {
		return err
	}
	if err := b.Setup(ctx); err != nil {
		return err
	}

	c, err := k8slab.Start(ctx, k8slab.Options{Name: "bench-client", APIServer: b.APIServer})
	if err != nil {
		return err
	}
	defer c.Close()
	dir, err := os.MkdirTemp("", "nlb-bench-client-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lab, err := nllblab.StartLab(ctx, c, b.NLB, dir, b.Logf)
	if err != nil {
		return err
	}
	defer lab.Close()
	failed := func(err error) error {
		return fmt.Errorf("%w\nnlb client log:\n%s\ncluster logs:\n%s", err, lab.Client.Tail(40), c.Tails(20))
	}

	// Idle RSS first, before any client traffic has grown the heap: three
	// upstreams discovered and checked, discovery's watch open.
	if err := netlab.Sleep(ctx, idleWait); err != nil {
		return err
	}
	rss, err := lab.Client.RSSKiB()
	if err != nil {
		return err
	}
	idle := rssLine{Metric: "idle_rss", Value: rss, Unit: "KiB", Upstreams: len(c.Controllers)}
	if m, err := lab.Client.Metrics(ctx, memMetrics()...); err == nil {
		ps, _ := lab.Client.ProcStatus()
		b.Logf("idle: VmRSS %d KiB (RssAnon %d, RssFile %d); %s", rss, ps["RssAnon"], ps["RssFile"], memSummary(m))
	}
	if maps, err := lab.Client.Smaps(); err == nil {
		b.Logf("idle: Rss by mapping: %s", smapsSummary(maps))
	}
	if *idleOnly {
		if err := b.Add(idle); err != nil {
			return err
		}
		_, err := fmt.Fprint(stdout, "\n", idleSentence(idle))
		return err
	}

	var results []nllblab.Result
	for rep := range b.Reps {
		for _, sc := range []struct {
			fault  nllblab.Fault
			victim *k8slab.Controller
		}{{nllblab.Kill, c.Controllers[1]}, {nllblab.Blackhole, c.Controllers[2]}} {
			if err := ctx.Err(); err != nil {
				return err
			}
			r, err := lab.Run(ctx, sc.fault, sc.victim, nllblab.ScenarioOptions{})
			if err != nil {
				return failed(fmt.Errorf("%s rep %d: %w", sc.fault, rep+1, err))
			}
			results = append(results, r)
			if err := b.Add(r); err != nil {
				return err
			}
			b.Logf("%s rep %d: fault complete after %v, %d connections on the victim, %d connects in flight failed, call errors %d, watch errors %d, live upstreams marked down %v, errors %q",
				sc.fault, rep+1, r.FaultDone.Round(time.Millisecond), r.VictimActive, r.Counts.InFlightConnects, r.Counts.CallErrors, r.Counts.WatchErrors, r.OthersUnhealthy, r.Counts.Errors)
			if err := lab.Restore(ctx, sc.fault, sc.victim); err != nil {
				return failed(fmt.Errorf("%s rep %d: %w", sc.fault, rep+1, err))
			}
		}
	}
	if err := b.Add(idle); err != nil {
		return err
	}

	table := markdown(results, idle)
	return b.Finish(table)
}

// memMetrics are the Go runtime figures logged beside the idle RSS.
func memMetrics() []string {
	return []string{
		"go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes", "go_memstats_heap_released_bytes",
		"go_memstats_stack_inuse_bytes", "go_memstats_sys_bytes", "go_goroutines", "go_threads",
	}
}

// memSummary formats the memory metrics in KiB.
func memSummary(m map[string]float64) string {
	var parts []string
	for _, k := range memMetrics() {
		v, ok := m[k]
		if !ok {
			continue
		}
		if strings.HasSuffix(k, "_bytes") {
			parts = append(parts, fmt.Sprintf("%s=%.0fKiB", strings.TrimPrefix(k, "go_memstats_"), v/1024))
		} else {
			parts = append(parts, fmt.Sprintf("%s=%.0f", k, v))
		}
	}
	return strings.Join(parts, " ")
}

// smapsSummary formats the mappings that hold at least 64 KiB.
func smapsSummary(maps []nllblab.Mapping) string {
	var parts []string
	for _, m := range maps {
		if m.Rss >= 64 {
			parts = append(parts, fmt.Sprintf("%s=%dKiB(anon %d)", m.Name, m.Rss, m.Anonymous))
		}
	}
	return strings.Join(parts, " ")
}
