package chaoslab

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nlb-dev/nlb/internal/k8slab"
	"github.com/nlb-dev/nlb/internal/netlab"
)

// TickConfigMap is the ConfigMap in k8slab.TestNamespace the ticker
// patches and the watches follow.
const TickConfigMap = "chaos-tick"

// TrafficOptions shape the traffic generator.
type TrafficOptions struct {
	// Interval between two new-connection probes; 0 means 20 ms.
	Interval time.Duration
	// Timeout of one probe (dial, TLS, request, response); 0 means 1 s.
	Timeout time.Duration
	// Path is what a probe GETs; empty means /readyz.
	Path string
	// Watches is the number of long-lived watches; 0 means 3, negative
	// none.
	Watches int
	// Tick is the interval of the ConfigMap writes the watches follow; 0
	// means 200 ms.
	Tick time.Duration
	// WatchSilence is how long a watch may deliver nothing before it is
	// considered broken and reconnected; 0 means 1 s.
	WatchSilence time.Duration
	// Survivors and SurvivorWatches are the connections and watches
	// established before each fault that never reconnect (Survivors);
	// 0 means 12 and 4, negative none.
	Survivors, SurvivorWatches int
}

func (o *TrafficOptions) setDefaults() {
	if o.Interval == 0 {
		o.Interval = 20 * time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = time.Second
	}
	if o.Path == "" {
		o.Path = "/readyz"
	}
	if o.Watches == 0 {
		o.Watches = 3
	}
	if o.Tick == 0 {
		o.Tick = 200 * time.Millisecond
	}
	if o.WatchSilence == 0 {
		o.WatchSilence = time.Second
	}
	if o.Survivors == 0 {
		o.Survivors = 12
	}
	if o.SurvivorWatches == 0 {
		o.SurvivorWatches = 4
	}
}

// Traffic is the client load on the VIP: new-connection probes from the
// worker, watches from the worker, and the ticker writing the ConfigMap
// the watches follow from the etcd host straight to an API server.
type Traffic struct {
	opts   TrafficOptions
	server string
	probe  *http.Client

	mu       sync.Mutex
	probes   []Probe
	inflight map[uint64]time.Time
	seq      uint64
	errs     []string

	watches []*watchState
	tickers []*kubernetes.Clientset
	ctls    []*k8slab.Controller
	avoid   atomic.Int64
	tickErr atomic.Int64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// watchState is one watch's record.
type watchState struct {
	mu         sync.Mutex
	events     []time.Time
	reconnects []time.Time
}

// StartTraffic starts probing server (https://VIP:port), the watches and
// the ticker. Stop ends them.
func StartTraffic(ctx context.Context, c *k8slab.Cluster, server string, opts TrafficOptions) (*Traffic, error) {
	opts.setDefaults()
	tlsCfg, err := rest.TLSConfigFor(c.RESTConfig(k8slab.Worker, c.Worker, server))
	if err != nil {
		return nil, fmt.Errorf("chaoslab: worker TLS: %w", err)
	}
	// The serving certificates name "kubernetes", not the VIP.
	tlsCfg.ServerName = "kubernetes"
	t := &Traffic{
		opts:     opts,
		server:   server,
		inflight: map[uint64]time.Time{},
		ctls:     c.Controllers,
		probe:    &http.Client{Transport: transport(c.Worker, tlsCfg, opts.Timeout)},
	}
	t.avoid.Store(-1)
	for _, ctl := range c.Controllers {
		cfg := c.RESTConfig(k8slab.Admin, c.EtcdHost, ctl.Server)
		cfg.Timeout = time.Second
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("chaoslab: ticker client: %w", err)
		}
		t.tickers = append(t.tickers, cs)
	}
	if err := t.createTick(ctx); err != nil {
		return nil, err
	}
	ctx, t.cancel = context.WithCancel(context.Background())
	t.wg.Add(2)
	go t.probeLoop(ctx)
	go t.tickLoop(ctx)
	for range max(opts.Watches, 0) {
		w := &watchState{}
		t.watches = append(t.watches, w)
		tr := transport(c.Worker, tlsCfg.Clone(), opts.Timeout)
		t.wg.Add(1)
		go t.watchLoop(ctx, w, &http.Client{Transport: tr})
	}
	return t, nil
}

// transport opens a new connection from host's namespace for every
// request (HTTP/1.1, no keep-alive).
func transport(host *netlab.Host, tlsCfg *tls.Config, timeout time.Duration) *http.Transport {
	return &http.Transport{
		DialContext:           host.Dialer(timeout),
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		DisableKeepAlives:     true,
	}
}

// Stop ends the traffic and waits for every probe and watch.
func (t *Traffic) Stop() {
	t.cancel()
	t.wg.Wait()
}

// Avoid tells the ticker not to write through controller i (the victim);
// -1 lifts it.
func (t *Traffic) Avoid(i int) { t.avoid.Store(int64(i)) }

func (t *Traffic) probeLoop(ctx context.Context) {
	defer t.wg.Done()
	tk := time.NewTicker(t.opts.Interval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		t.mu.Lock()
		t.seq++
		id, start := t.seq, time.Now()
		t.inflight[id] = start
		t.mu.Unlock()
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			err := t.probeOnce(ctx, start)
			if ctx.Err() != nil {
				t.mu.Lock()
				delete(t.inflight, id)
				t.mu.Unlock()
				return // stopped: not the VIP's fault
			}
			p := Probe{Start: start, End: time.Now(), OK: err == nil}
			if err != nil {
				p.Err = err.Error()
			}
			t.mu.Lock()
			delete(t.inflight, id)
			t.probes = append(t.probes, p)
			if err != nil && len(t.errs) < 2000 {
				t.errs = append(t.errs, p.Start.Format("15:04:05.000")+" "+p.Err)
			}
			t.mu.Unlock()
		}()
	}
}

// probeOnce is one new connection: TCP, TLS, GET, status 200.
func (t *Traffic) probeOnce(ctx context.Context, start time.Time) error {
	ctx, cancel := context.WithDeadline(ctx, start.Add(t.opts.Timeout))
	defer cancel()
	var gotConn atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { gotConn.Store(true) }})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.server+t.opts.Path, nil)
	if err != nil {
		return err
	}
	resp, err := t.probe.Do(req)
	if err != nil {
		if gotConn.Load() {
			return fmt.Errorf("request: %w", err)
		}
		return fmt.Errorf("connect: %w", err)
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	if err != nil {
		return fmt.Errorf("response: %w", err)
	}
	return nil
}

// createTick creates the ConfigMap the ticker patches.
func (t *Traffic) createTick(ctx context.Context) error {
	var err error
	for attempt := range 10 {
		for _, cs := range t.tickers {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err = cs.CoreV1().ConfigMaps(k8slab.TestNamespace).Create(cctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: TickConfigMap, Namespace: k8slab.TestNamespace},
				Data:       map[string]string{"n": "0"},
			}, metav1.CreateOptions{})
			cancel()
			if err == nil || apierrors.IsAlreadyExists(err) {
				return nil
			}
		}
		if attempt < 9 {
			if err := netlab.Sleep(ctx, time.Second); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("chaoslab: create configmap %s: %w", TickConfigMap, err)
}

// tickLoop patches the ConfigMap every Tick through the first running
// controller that is not avoided and answers.
func (t *Traffic) tickLoop(ctx context.Context) {
	defer t.wg.Done()
	tk := time.NewTicker(t.opts.Tick)
	defer tk.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		patch := []byte(`{"data":{"n":"` + strconv.Itoa(n) + `"}}`)
		ok := false
		for i, cs := range t.tickers {
			if int64(i) == t.avoid.Load() || !t.ctls[i].Running() {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, t.opts.Tick)
			_, err := cs.CoreV1().ConfigMaps(k8slab.TestNamespace).Patch(cctx, TickConfigMap, types.MergePatchType, patch, metav1.PatchOptions{})
			cancel()
			if err == nil {
				ok = true
				break
			}
		}
		if !ok && ctx.Err() == nil {
			t.tickErr.Add(1)
		}
	}
}

// watchLoop keeps one watch open, reconnecting after every break.
func (t *Traffic) watchLoop(ctx context.Context, w *watchState, hc *http.Client) {
	defer t.wg.Done()
	rv := ""
	for ctx.Err() == nil {
		err := t.watchOnce(ctx, w, hc, &rv)
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		w.reconnects = append(w.reconnects, time.Now())
		w.mu.Unlock()
		t.mu.Lock()
		if len(t.errs) < 2000 {
			t.errs = append(t.errs, time.Now().Format("15:04:05.000")+" watch: "+fmt.Sprint(err))
		}
		t.mu.Unlock()
		if netlab.Sleep(ctx, 100*time.Millisecond) != nil {
			return
		}
	}
}

// watchEvent is a watch event's envelope: an object with metadata, or a
// Status in an ERROR event.
type watchEvent struct {
	Type   string `json:"type"`
	Object struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Code int `json:"code"`
	} `json:"object"`
}

// watchOnce runs one watch request until it breaks, stays silent for
// WatchSilence, or ctx ends. It resumes from *rv and updates it.
func (t *Traffic) watchOnce(ctx context.Context, w *watchState, hc *http.Client, rv *string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	url := t.server + "/api/v1/namespaces/" + k8slab.TestNamespace + "/configmaps?watch=true&timeoutSeconds=3600&fieldSelector=metadata.name%3D" + TickConfigMap
	if *rv != "" {
		url += "&resourceVersion=" + *rv
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	// The dial and the response header are bounded by the transport.
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode == http.StatusGone {
			*rv = ""
		}
		return fmt.Errorf("watch: %s", resp.Status)
	}
	var silent atomic.Bool
	timer := time.AfterFunc(t.opts.WatchSilence, func() { silent.Store(true); cancel() })
	defer timer.Stop()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev watchEvent
		if err := dec.Decode(&ev); err != nil {
			if silent.Load() {
				return fmt.Errorf("watch: silent for %v", t.opts.WatchSilence)
			}
			return fmt.Errorf("watch: %w", err)
		}
		now := time.Now()
		timer.Reset(t.opts.WatchSilence)
		switch ev.Type {
		case "ERROR":
			if ev.Object.Code == http.StatusGone {
				*rv = ""
			}
			return fmt.Errorf("watch: error event, code %d", ev.Object.Code)
		case "BOOKMARK":
			continue
		}
		if ev.Object.Metadata.ResourceVersion != "" {
			*rv = ev.Object.Metadata.ResourceVersion
		}
		w.mu.Lock()
		w.events = append(w.events, now)
		w.mu.Unlock()
	}
}

// Probes returns the completed probes so far.
func (t *Traffic) Probes() []Probe {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.probes)
}

// Errors returns the first probe and watch errors, each prefixed with its
// time of day.
func (t *Traffic) Errors() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.errs)
}

// WatchEvents returns every watch's event arrival times.
func (t *Traffic) WatchEvents() [][]time.Time {
	out := make([][]time.Time, len(t.watches))
	for i, w := range t.watches {
		w.mu.Lock()
		out[i] = slices.Clone(w.events)
		w.mu.Unlock()
	}
	return out
}

// Reconnects counts the watches' reconnects in [from, to).
func (t *Traffic) Reconnects(from, to time.Time) int {
	n := 0
	for _, w := range t.watches {
		w.mu.Lock()
		for _, r := range w.reconnects {
			if !r.Before(from) && r.Before(to) {
				n++
			}
		}
		w.mu.Unlock()
	}
	return n
}

// TickFailures counts ticks that no API server took.
func (t *Traffic) TickFailures() int64 { return t.tickErr.Load() }

// Clean reports whether every probe started in [now-d, now) that has
// completed succeeded, at least a third of the probes expected in d have
// completed, and no probe older than stuck is still in flight.
func (t *Traffic) Clean(now time.Time, d, stuck time.Duration) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.inflight {
		if now.Sub(s) > stuck {
			return fmt.Errorf("a probe started %v ago is still in flight", now.Sub(s).Round(time.Millisecond))
		}
	}
	n := 0
	for i := len(t.probes) - 1; i >= 0; i-- {
		p := t.probes[i]
		if p.End.Before(now.Add(-d - t.opts.Timeout)) {
			break // completed in order of End; older ones started earlier still
		}
		if p.Start.Before(now.Add(-d)) {
			continue
		}
		if !p.OK {
			return fmt.Errorf("probe at %s failed: %s", p.Start.Format("15:04:05.000"), p.Err)
		}
		n++
	}
	if want := int(d / t.opts.Interval / 3); n < want {
		return fmt.Errorf("only %d probes completed in %v", n, d)
	}
	return nil
}

// WaitDone waits until no probe started before t is in flight, at most
// Timeout plus a margin.
func (t *Traffic) WaitDone(ctx context.Context, before time.Time) error {
	deadline := time.Now().Add(t.opts.Timeout + time.Second)
	for {
		t.mu.Lock()
		busy := false
		for _, s := range t.inflight {
			if s.Before(before) {
				busy = true
				break
			}
		}
		t.mu.Unlock()
		if !busy {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("chaoslab: probes still in flight after their timeout")
		}
		if err := netlab.Sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}
