package nllblab

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nlb-dev/nlb/internal/k8slab"
	"github.com/nlb-dev/nlb/internal/netlab"
)

// Fault is how a scenario takes an API server away.
type Fault string

// The faults.
const (
	// Kill SIGKILLs the API server process: its host refuses connections
	// and resets the ones it had.
	Kill Fault = "kill"
	// Blackhole takes the controller's link down: packets to it vanish.
	Blackhole Fault = "blackhole"
)

// Lab is a cluster with `nlb client` running on its worker.
type Lab struct {
	Cluster *k8slab.Cluster
	Client  *Client
	// Logf reports progress; nil means silent.
	Logf func(format string, args ...any)
	// seq numbers the ConfigMaps written to check the watch.
	seq int
}

// StartLab starts `nlb client` (binary bin, files in dir) on c's worker with
// the first controller as the join controller, and waits until it has
// discovered every controller and found them all healthy.
func StartLab(ctx context.Context, c *k8slab.Cluster, bin, dir string, logf func(string, ...any)) (*Lab, error) {
	n, err := NewClient(c, bin, dir, c.Controllers[0])
	if err != nil {
		return nil, err
	}
	if err := n.Start(); err != nil {
		return nil, err
	}
	l := &Lab{Cluster: c, Client: n, Logf: logf}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := n.WaitHealthy(wctx, c.Controllers...); err != nil {
		_ = n.Stop(5 * time.Second)
		return nil, fmt.Errorf("nllblab: nlb client never saw every API server healthy: %w; log:\n%s", err, n.Tail(30))
	}
	return l, nil
}

// Close stops `nlb client`.
func (l *Lab) Close() error {
	return l.Client.Stop(10 * time.Second)
}

func (l *Lab) logf(format string, args ...any) {
	if l.Logf != nil {
		l.Logf(format, args...)
	}
}

// Result is one fault scenario. The first four fields are the JSON line of
// `make bench-client`.
type Result struct {
	Scenario Fault `json:"scenario"`
	// DetectMS is the time from the fault to the first /status (polled
	// every 50 ms) that shows the victim unhealthy.
	DetectMS       float64 `json:"detect_ms"`
	FailedRequests int64   `json:"failed_requests"`
	FailedConnects int64   `json:"failed_connects"`
	Requests       int64   `json:"requests"`

	// Victim is the API server taken away (host:port).
	Victim string `json:"-"`
	// VictimActive is the number of connections `nlb client` had open to
	// the victim just before the fault.
	VictimActive int64 `json:"-"`
	// FaultDone is how long the fault took to complete after it began
	// (SIGKILL sent to process reaped; link down).
	FaultDone time.Duration `json:"-"`
	// Detected is false when the victim was never seen unhealthy.
	Detected bool `json:"-"`
	// Recovery is the time from the fault until every loop had a
	// successful call started after the detection, and the informer
	// had delivered a ConfigMap written after it.
	Recovery time.Duration `json:"-"`
	// OthersUnhealthy lists live upstreams /status showed unhealthy or
	// suspect during the scenario (none should be).
	OthersUnhealthy []string `json:"-"`
	// Counts are the client programs' counts over the whole scenario.
	Counts Counts `json:"-"`
}

// ScenarioOptions shape a scenario.
type ScenarioOptions struct {
	Load LoadOptions
	// Warmup is how long the load runs before the fault; 0 means 2 s.
	Warmup time.Duration
	// DetectTimeout bounds the wait for the victim to be marked
	// unhealthy; 0 means 10 s.
	DetectTimeout time.Duration
	// RecoverTimeout bounds the wait for every program to succeed again
	// after the detection; 0 means 40 s.
	RecoverTimeout time.Duration
}

func (o *ScenarioOptions) setDefaults() {
	if o.Warmup == 0 {
		o.Warmup = 2 * time.Second
	}
	if o.DetectTimeout == 0 {
		o.DetectTimeout = 10 * time.Second
	}
	if o.RecoverTimeout == 0 {
		o.RecoverTimeout = 40 * time.Second
	}
}

// Run runs one scenario: with every controller healthy it starts the
// load, lets it warm up, takes victim away by fault, measures how long
// `nlb client` takes to mark it unhealthy, waits until every program has
// succeeded again and the watch delivers a new write, and stops the load.
// It leaves the victim down: Restore brings it back.
func (l *Lab) Run(ctx context.Context, fault Fault, victim *k8slab.Controller, opts ScenarioOptions) (res Result, err error) {
	opts.setDefaults()
	res = Result{Scenario: fault, Victim: Upstream(victim)}
	c := l.Cluster
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	_, err = l.Client.WaitHealthy(wctx, c.Controllers...)
	cancel()
	if err != nil {
		return res, fmt.Errorf("nllblab: %s: before the fault: %w", fault, err)
	}

	load, err := StartLoad(c, opts.Load)
	if err != nil {
		return res, err
	}
	defer func() { res.Counts = load.Stop() }()
	start := time.Now()
	wctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	err = load.WaitProgress(wctx, start)
	cancel()
	if err != nil {
		return res, fmt.Errorf("nllblab: %s: load does not run: %w", fault, err)
	}
	if err := netlab.Sleep(ctx, opts.Warmup); err != nil {
		return res, err
	}
	st, err := l.Client.Status(ctx)
	if err != nil {
		return res, err
	}
	if err := st.CheckHealthy(Upstreams(c.Controllers...)...); err != nil {
		return res, fmt.Errorf("nllblab: %s: after the warm-up: %w", fault, err)
	}
	b, _ := st.Backend(res.Victim)
	res.VictimActive = b.Active
	l.logf("%s %s: %d connections on it; status %s", fault, victim.Name, b.Active, activeSummary(st))

	others := map[string]bool{}
	watchOthers := func(st *Status) {
		for _, b := range st.APIServer.Backends {
			if b.Address != res.Victim && !b.Removed && (!b.Healthy || b.Suspect) {
				others[b.Address] = true
			}
		}
	}

	load.SetFault(time.Unix(0, math.MaxInt64))
	t0 := time.Now()
	switch fault {
	case Kill:
		err = victim.Kill()
	case Blackhole:
		err = victim.Host.LinkDown()
	default:
		err = fmt.Errorf("unknown fault %q", fault)
	}
	if err != nil {
		return res, fmt.Errorf("nllblab: %s %s: %w", fault, victim.Name, err)
	}
	// Kill returns once the process is reaped (its sockets closed),
	// LinkDown once the link is down.
	res.FaultDone = time.Since(t0)
	load.SetFault(time.Now())

	// Detection: /status every 50 ms.
	dctx, cancel := context.WithTimeout(ctx, opts.DetectTimeout)
	st, err = l.Client.WaitStatus(dctx, 50*time.Millisecond, func(st *Status) error {
		watchOthers(st)
		if b, ok := st.Backend(res.Victim); ok && b.Healthy {
			return fmt.Errorf("%s still healthy", res.Victim)
		}
		return nil
	})
	cancel()
	detected := time.Now()
	if err != nil {
		return res, fmt.Errorf("nllblab: %s %s: not detected: %w", fault, victim.Name, err)
	}
	res.Detected = true
	res.DetectMS = float64(detected.Sub(t0).Microseconds()) / 1000
	l.logf("%s %s: unhealthy after %.0f ms; status %s", fault, victim.Name, res.DetectMS, activeSummary(st))

	// Recovery: every program succeeds again and the watch delivers a
	// write made after the detection, while /status is watched for
	// false alarms on the live upstreams.
	rctx, cancel := context.WithTimeout(ctx, opts.RecoverTimeout)
	defer cancel()
	pollDone := make(chan struct{})
	pollCtx, stopPoll := context.WithCancel(rctx)
	go func() {
		defer close(pollDone)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if st, err := l.Client.Status(pollCtx); err == nil {
				watchOthers(st)
			}
			select {
			case <-pollCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
	err = l.recover(rctx, load, victim, detected)
	stopPoll()
	<-pollDone
	res.Recovery = time.Since(t0)
	for a := range others {
		res.OthersUnhealthy = append(res.OthersUnhealthy, a)
	}
	slices.Sort(res.OthersUnhealthy)
	if err != nil {
		return res, fmt.Errorf("nllblab: %s %s: %w", fault, victim.Name, err)
	}
	res.Counts = load.Stop()
	res.Requests, res.FailedRequests, res.FailedConnects = res.Counts.Requests, res.Counts.FailedRequests, res.Counts.FailedConnects
	l.logf("%s %s: recovered after %v: %d requests, %d failed, %d failed connects, %d watch errors",
		fault, victim.Name, res.Recovery.Round(time.Millisecond), res.Requests, res.FailedRequests, res.FailedConnects, res.Counts.WatchErrors)
	return res, nil
}

// recover waits until every loop has succeeded since detected and the
// informer delivers a ConfigMap written after it through a live API
// server.
func (l *Lab) recover(ctx context.Context, load *Load, victim *k8slab.Controller, detected time.Time) error {
	if err := load.WaitProgress(ctx, detected); err != nil {
		return err
	}
	name, rv, err := l.Write(ctx, victim)
	if err != nil {
		return err
	}
	return load.WaitSeen(ctx, name, rv)
}

// Write creates or updates a ConfigMap in k8slab.TestNamespace with the
// admin identity, directly on the first controller other than except
// that runs, and returns its name and resource version.
func (l *Lab) Write(ctx context.Context, except *k8slab.Controller) (name, rv string, err error) {
	var ctl *k8slab.Controller
	for _, c := range l.Cluster.Controllers {
		if c != except && c.Running() {
			ctl = c
			break
		}
	}
	if ctl == nil {
		return "", "", fmt.Errorf("nllblab: no live API server to write to")
	}
	cs, err := l.Cluster.Client(k8slab.Admin, l.Cluster.EtcdHost, ctl.Server)
	if err != nil {
		return "", "", err
	}
	l.seq++
	name = "nllblab-" + strconv.Itoa(l.seq)
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: k8slab.TestNamespace},
		Data:       map[string]string{"written": time.Now().Format(time.RFC3339Nano)},
	}
	var out *corev1.ConfigMap
	for attempt := 0; ; attempt++ {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, err = cs.CoreV1().ConfigMaps(k8slab.TestNamespace).Create(wctx, cm, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			var cur *corev1.ConfigMap
			if cur, err = cs.CoreV1().ConfigMaps(k8slab.TestNamespace).Get(wctx, name, metav1.GetOptions{}); err == nil {
				cur.Data = cm.Data
				out, err = cs.CoreV1().ConfigMaps(k8slab.TestNamespace).Update(wctx, cur, metav1.UpdateOptions{})
			}
		}
		cancel()
		if err == nil || attempt == 4 || ctx.Err() != nil {
			break
		}
		if err := netlab.Sleep(ctx, time.Second); err != nil {
			return "", "", err
		}
	}
	if err != nil {
		return "", "", fmt.Errorf("nllblab: write configmap %s through %s: %w", name, ctl.Name, err)
	}
	return name, out.ResourceVersion, nil
}

// Restore brings victim back after fault and waits until `nlb client`
// has every controller healthy again.
func (l *Lab) Restore(ctx context.Context, fault Fault, victim *k8slab.Controller) error {
	start := time.Now()
	var err error
	switch fault {
	case Kill:
		err = victim.Restart(ctx)
	case Blackhole:
		if err = victim.Host.LinkUp(); err == nil {
			rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			err = victim.WaitReady(rctx)
			cancel()
		}
	}
	if err != nil {
		return fmt.Errorf("nllblab: restore %s after %s: %w", victim.Name, fault, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if _, err := l.Client.WaitHealthy(wctx, l.Cluster.Controllers...); err != nil {
		return fmt.Errorf("nllblab: restore %s after %s: %w", victim.Name, fault, err)
	}
	l.logf("restored %s after %s in %v", victim.Name, fault, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// activeSummary lists each upstream's health and open connections.
func activeSummary(st *Status) string {
	s := ""
	for _, b := range st.APIServer.Backends {
		h := "healthy"
		if !b.Healthy {
			h = "unhealthy"
		}
		if b.Suspect {
			h += ",suspect"
		}
		if b.Removed {
			h += ",removed"
		}
		s += fmt.Sprintf(" %s(%s,active=%d)", b.Address, h, b.Active)
	}
	return s
}
