// Command chaos compares `nlb controller` with keepalived + HAProxy (set up
// as in the kubeadm high-availability guide) under faults, on real
// kube-apiservers (internal/k8slab), in one run on one lab: each
// implementation runs on the three controllers in turn, with continuous
// client traffic through the VIP (a new TCP+TLS connection every 20 ms,
// three long-lived watches), while the VIP holder is repeatedly
//
//   - kill: SIGKILLed (its LB processes and its API server, then both
//     restarted as a kubelet would);
//   - apiserver: deprived of its API server alone (SIGKILL, then restart);
//   - link: cut off (link down, then up);
//   - restart: restarted as planned (its LB gets SIGTERM and, once it has
//     exited, is started again; the API server stays up);
//   - lbkill: its LB alone SIGKILLed (the API server stays up), then started
//     again.
//
// nlb runs twice: with its proxy (steering), and as nlb-xdp with the VIP as
// a virtualServers entry (the XDP fast path, direct server return). Before
// every fault 16 connections and watches are opened that never reconnect;
// each scenario counts those broken.
//
// It prints one JSON line per implementation, scenario and repetition,
//
//	{"impl":"nlb","scenario":"kill","rep":1,"outage_ms":...,"failed_requests":...,"requests":...,"dup_vip_ms":...,"leftover_vips":...,...}
//
// one line of medians per implementation and scenario ("stat":"median"),
// one "teardown" line per implementation, then a Markdown table against
// the goals of issue 5. internal/chaoslab defines every figure. Run it as
// root through `make bench-chaos`.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nlb-dev/nlb/internal/benchrun"
	"github.com/nlb-dev/nlb/internal/chaoslab"
	"github.com/nlb-dev/nlb/internal/k8slab"
)

func main() { benchrun.Main("bench-chaos", run) }

// implRun is what one implementation produced.
type implRun struct {
	name     string
	results  []chaoslab.Result
	teardown *chaoslab.Teardown
	err      error
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	b := benchrun.New("chaos", stdout, stderr, benchrun.Options{
		Reps: 3, KubeAPIServer: k8slab.APIServerBinary, Verbose: true, Root: "needs root: it builds network namespaces",
	})
	fs := b.Flags
	impls := fs.String("impls", "keepalived+haproxy,nlb,nlb-xdp", "implementations, in order")
	var all []string
	for _, sc := range chaoslab.Scenarios() {
		all = append(all, string(sc))
	}
	scenarios := fs.String("scenarios", strings.Join(all, ","), "scenarios, in order")
	watches := fs.Int("watches", 3, "long-lived watches")
	linkHold := fs.Duration("link-hold", 5*time.Second, "shortest time the link stays down")
	maxHold := fs.Duration("max-hold", 60*time.Second, "longest fault phase")
	logs := fs.String("logs", "", "keep the LB processes' configurations and logs in this `directory` (default: a temporary one, removed)")
	if err := b.Parse(args); err != nil {
		return err
	}
	var scs []chaoslab.Scenario
	for _, s := range strings.Split(*scenarios, ",") {
		sc, err := chaoslab.ParseScenario(s)
		if err != nil {
			return err
		}
		scs = append(scs, sc)
	}
	names := strings.Split(*impls, ",")
	for _, n := range names {
		if n != chaoslab.NLBName && n != chaoslab.NLBXDPName && n != chaoslab.PeerName {
			return fmt.Errorf("unknown implementation %q (want %s, %s or %s)", n, chaoslab.NLBName, chaoslab.NLBXDPName, chaoslab.PeerName)
		}
	}
	if err := b.Setup(ctx); err != nil {
		return err
	}
	bin := b.NLB

	c, err := k8slab.Start(ctx, chaoslab.ClusterOptions("bench-chaos", b.APIServer))
	if err != nil {
		return err
	}
	defer c.Close()
	dir := *logs
	if dir == "" {
		if dir, err = os.MkdirTemp("", "nlb-bench-chaos-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	// A snapshot of the binary: a rebuild of --nlb during the run must
	// not change what the restarts run.
	if snap, err := snapshot(bin, dir); err == nil {
		bin = snap
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	opts := chaoslab.Options{Logf: b.Logf}
	opts.Traffic.Watches = *watches
	opts.Timing.LinkHold = *linkHold
	opts.Timing.MaxHold = *maxHold
	lab, err := chaoslab.Open(ctx, c, opts)
	if err != nil {
		return err
	}
	defer lab.Close()

	var runs []*implRun
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		r := &implRun{name: name}
		runs = append(runs, r)
		var impl chaoslab.Impl
		switch name {
		case chaoslab.NLBName, chaoslab.NLBXDPName:
			if r.err = chaoslab.NLBAvailable(ctx, bin); r.err != nil {
				fmt.Fprintf(stderr, "bench-chaos: %s not run: %v\n", name, r.err)
				continue
			}
			n := chaoslab.NewNLB(c, lab.Params, bin, filepath.Join(dir, "nlb"))
			if name == chaoslab.NLBXDPName {
				n = chaoslab.NewNLBXDP(c, lab.Params, bin, filepath.Join(dir, "nlb-xdp"))
			}
			defer n.Close()
			impl = n
		default:
			if r.err = chaoslab.PeerAvailable(); r.err != nil {
				fmt.Fprintf(stderr, "bench-chaos: %s not run: %v\n", name, r.err)
				continue
			}
			impl = chaoslab.NewPeer(c, lab.Params, filepath.Join(dir, "peer"))
		}
		r.err = runImpl(ctx, lab, impl, b, scs, r)
		if r.err != nil {
			fmt.Fprintf(stderr, "bench-chaos: %s: %v\n", name, r.err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, line := range medianLines(runs, scs) {
		if err := b.Add(line); err != nil {
			return err
		}
	}
	// The table names what was measured: nlb's, keepalived's and HAProxy's versions.
	table := fmt.Sprintf("Measured %s: %s; %s; %s.\n\n", time.Now().UTC().Format("2006-01-02"), benchrun.Version(ctx, bin, "version"),
		benchrun.Version(ctx, "keepalived", "--version"), benchrun.Version(ctx, "haproxy", "-v")) + markdown(runs, scs, lab.Params, b.Reps)
	if err := b.Finish(table); err != nil {
		return err
	}
	var failed []string
	for _, r := range runs {
		if r.err != nil {
			failed = append(failed, r.name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("incomplete: %s did not finish (see above)", strings.Join(failed, ", "))
	}
	return nil
}

// runImpl runs every repetition of every scenario for impl, then tears it
// down; results go to r and b as they come.
func runImpl(ctx context.Context, lab *chaoslab.Lab, impl chaoslab.Impl, b *benchrun.Bench, scs []chaoslab.Scenario, r *implRun) (err error) {
	start := time.Now()
	s, err := lab.Begin(ctx, impl)
	if err != nil {
		return err
	}
	defer func() {
		td, terr := s.End(context.Background())
		r.teardown = &td
		if eerr := b.Add(td); eerr != nil {
			err = errors.Join(err, eerr)
		}
		err = errors.Join(err, terr)
		b.Logf("%s: done in %v", impl.Name(), time.Since(start).Round(time.Second))
	}()
	for rep := 1; rep <= b.Reps; rep++ {
		for _, sc := range scs {
			if err := ctx.Err(); err != nil {
				return err
			}
			res, err := s.Run(ctx, sc)
			if err != nil {
				return fmt.Errorf("%s rep %d: %w", sc, rep, err)
			}
			res.Rep = rep
			r.results = append(r.results, res)
			if err := b.Add(res); err != nil {
				return err
			}
			b.Logf("%s %s rep %d on %s: outage %.0f ms in %d bursts, %d/%d failed (%d after the restore), dup %.0f ms, leftover %d, watch broken %.0f ms",
				impl.Name(), sc, rep, res.Victim, res.OutageMS, res.OutageBursts, res.FailedRequests, res.Requests,
				res.RestoreFailed, res.DupVIPMS, res.LeftoverVIPs, res.WatchBrokenMS)
			if sc == chaoslab.Restart {
				b.Logf("  stop took %.0f ms (error: %q)", res.StopMS, res.StopError)
			}
			for _, e := range res.Errors {
				b.Logf("  %s", e)
			}
		}
	}
	return nil
}

// snapshot copies the binary bin into dir and returns the copy's path.
func snapshot(bin, dir string) (string, error) {
	b, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "bin", "nlb")
	if err := os.WriteFile(out, b, 0o755); err != nil {
		return "", err
	}
	return out, nil
}
