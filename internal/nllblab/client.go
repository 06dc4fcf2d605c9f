// Package nllblab runs `nlb client` on the worker of a k8slab cluster, with
// client-go programs in the same namespace listing and watching through it,
// and injects API server failures (SIGKILL, blackhole) while they run. It
// serves the end-to-end test of client mode and `make bench-client`.
//
// Layout (k8slab's defaults): API servers on 192.0.2.11-13:6443, the worker
// h4 runs `nlb client --bind 127.0.0.1` with the API server listener on
// 127.0.0.1:7443 and its admin server on 127.0.0.1:9648, both inside the
// worker's namespace; clients in the test process reach them through
// netlab.Host.Dialer.
package nllblab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nlb-dev/nlb/internal/k8slab"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
	"github.com/nlb-dev/nlb/nllb"
)

// Addresses of `nlb client` inside the worker namespace.
const (
	// APIPort is the API server listener's port (k0s's default).
	APIPort = 7443
	// AdminAddr is the admin server's address.
	AdminAddr = "127.0.0.1:9648"
	// LocalServer is the URL client programs on the worker use.
	LocalServer = "https://127.0.0.1:7443"
	// ServerName is the name client programs verify the API server
	// certificate against through the local listener.
	ServerName = "kubernetes"
)

// Status is `nlb client`'s /status document (nllb.Status, with its
// Backend and Upstreams) and the labs' checks.
type Status struct{ nllb.Status }

// CheckHealthy returns nil when the configured API server upstreams are
// exactly addrs and all of them are healthy, and discovery lists exactly
// addrs too.
func (s *Status) CheckHealthy(addrs ...string) error {
	want := slices.Clone(addrs)
	slices.Sort(want)
	if got := s.Upstreams(); !slices.Equal(got, want) {
		return fmt.Errorf("upstreams %v, want %v", got, want)
	}
	disc := slices.Clone(s.Discovered)
	slices.Sort(disc)
	if !slices.Equal(disc, want) {
		return fmt.Errorf("discovered %v, want %v", disc, want)
	}
	for _, a := range want {
		if b, _ := s.Backend(a); !b.Healthy || b.Suspect {
			return fmt.Errorf("upstream %s: healthy %v, suspect %v", a, b.Healthy, b.Suspect)
		}
	}
	return nil
}

// Client is an `nlb client` process on the cluster's worker. Its
// netlab.Process starts, stops and kills it and keeps its log (LogFile),
// appended across restarts.
type Client struct {
	*netlab.Process
	// Kubeconfig is the worker kubeconfig it reads (its server is the
	// join controller).
	Kubeconfig string
	// CacheFile is its API server cache.
	CacheFile string

	bin   string
	admin *http.Client
}

// NewClient prepares `nlb client` (binary bin) on c's worker with a worker
// kubeconfig pointing at join, its cache and log in dir, and extra flags.
// It does not start it; Start does not wait for it to be ready (see
// WaitHealthy).
func NewClient(c *k8slab.Cluster, bin, dir string, join *k8slab.Controller, extra ...string) (*Client, error) {
	kc, err := c.WorkerKubeconfig(join.Server)
	if err != nil {
		return nil, fmt.Errorf("nllblab: %w", err)
	}
	n := &Client{
		Kubeconfig: kc,
		CacheFile:  filepath.Join(dir, "nlb-cache", "apiservers"),
		bin:        bin,
		admin:      c.Worker.HTTPClient(2 * time.Second),
	}
	argv := append([]string{bin, "client",
		"--kubeconfig", kc,
		"--cache-file", n.CacheFile,
		"--admin", AdminAddr,
		"--bind", "127.0.0.1",
		"--api-port", strconv.Itoa(APIPort),
		"--readyz",
	}, extra...)
	n.Process = netlab.NewProcess("nlb client", filepath.Join(dir, "nlb-client.log"), c.Worker, argv...)
	return n, nil
}

// Status fetches /status from the admin server.
func (n *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	if err := nlbtest.GetJSON(ctx, n.admin, "http://"+AdminAddr+"/status", &st); err != nil {
		return nil, fmt.Errorf("nllblab: status: %w", err)
	}
	return &st, nil
}

// WaitStatus polls /status every interval until check accepts it, ctx
// ends, or the process exits.
func (n *Client) WaitStatus(ctx context.Context, interval time.Duration, check func(*Status) error) (*Status, error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr error
	for {
		st, err := n.Status(ctx)
		if err == nil {
			if err = check(st); err == nil {
				return st, nil
			}
		}
		if ctx.Err() == nil || lastErr == nil {
			lastErr = err // not the fetch that ctx's end cut short
		}
		if !n.Running() {
			return nil, fmt.Errorf("nllblab: nlb client exited (last status: %v); log:\n%s", lastErr, n.Tail(30))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("nllblab: waiting for nlb client: %w (last: %v)", ctx.Err(), lastErr)
		case <-t.C:
		}
	}
}

// WaitHealthy waits until the upstreams are exactly ctls, all healthy and
// discovered.
func (n *Client) WaitHealthy(ctx context.Context, ctls ...*k8slab.Controller) (*Status, error) {
	return n.WaitStatus(ctx, 100*time.Millisecond, func(st *Status) error {
		return st.CheckHealthy(Upstreams(ctls...)...)
	})
}

// Upstreams returns the controllers' API server addresses (host:port).
func Upstreams(ctls ...*k8slab.Controller) []string {
	out := make([]string, len(ctls))
	for i, c := range ctls {
		out[i] = Upstream(c)
	}
	return out
}

// Upstream returns a controller's API server address (host:port).
func Upstream(c *k8slab.Controller) string {
	return strings.TrimPrefix(c.Server, "https://")
}

// RSSKiB returns the resident set size (VmRSS) of the running process.
func (n *Client) RSSKiB() (int64, error) {
	m, err := n.ProcStatus()
	if err != nil {
		return 0, err
	}
	v, ok := m["VmRSS"]
	if !ok {
		return 0, fmt.Errorf("nllblab: no VmRSS in /proc/%d/status", n.Pid())
	}
	return v, nil
}

// ProcStatus returns the kB figures of /proc/PID/status of the running
// process (VmRSS, RssAnon, RssFile, ...), in KiB.
func (n *Client) ProcStatus() (map[string]int64, error) {
	pid := n.Pid()
	if pid == 0 || !n.Running() {
		return nil, errors.New("nllblab: nlb client is not running")
	}
	// ip netns exec must have exec'd nlb in place.
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return nil, fmt.Errorf("nllblab: %w", err)
	}
	if filepath.Base(exe) != filepath.Base(n.bin) {
		return nil, fmt.Errorf("nllblab: pid %d runs %s, not %s", pid, exe, n.bin)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, fmt.Errorf("nllblab: %w", err)
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		f := strings.Fields(v)
		if !ok || len(f) != 2 || f[1] != "kB" {
			continue
		}
		if kib, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			out[k] = kib
		}
	}
	return out, nil
}

// Metrics fetches /metrics from the admin server and returns the samples
// without labels whose names are given (Go runtime and process figures,
// for instance go_memstats_heap_inuse_bytes).
func (n *Client) Metrics(ctx context.Context, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+AdminAddr+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("nllblab: %w", err)
	}
	resp, err := n.admin.Do(req)
	if err != nil {
		return nil, fmt.Errorf("nllblab: metrics: %w", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || !slices.Contains(names, f[0]) {
			continue
		}
		if v, err := strconv.ParseFloat(f[1], 64); err == nil {
			out[f[0]] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("nllblab: metrics: %w", err)
	}
	return out, nil
}

// Mapping is the resident memory of one kind of mapping of the process, in
// KiB, from /proc/PID/smaps.
type Mapping struct {
	// Name is the mapping's kind: "binary r-xp" (text), "binary r--p"
	// (rodata), "binary rw-p" (data), "[heap]", "[stack]", "anon rw-p" (Go
	// heap, goroutine stacks, runtime structures), and so on.
	Name string
	// Rss, Anonymous and Swap are the sums over the kind's mappings.
	Rss, Anonymous, Swap int64
}

// Smaps returns the resident memory of the running process by kind of
// mapping, largest first: where VmRSS goes (binary text, rodata, data, Go
// heap and stacks...).
func (n *Client) Smaps() ([]Mapping, error) {
	pid := n.Pid()
	if pid == 0 || !n.Running() {
		return nil, errors.New("nllblab: nlb client is not running")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return nil, fmt.Errorf("nllblab: %w", err)
	}
	return parseSmaps(b, filepath.Base(n.bin)), nil
}

// parseSmaps sums /proc/PID/smaps by kind of mapping; mappings of a file
// whose base name is bin count as "binary".
func parseSmaps(b []byte, bin string) []Mapping {
	byName := map[string]*Mapping{}
	var cur *Mapping
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") { // a mapping's header line
			if len(f) < 5 {
				cur = nil
				continue
			}
			name := "anon " + f[1]
			if len(f) >= 6 {
				switch path := f[5]; {
				case filepath.Base(path) == bin:
					name = "binary " + f[1]
				case strings.HasPrefix(path, "["):
					name = path
				default:
					name = path + " " + f[1]
				}
			}
			if byName[name] == nil {
				byName[name] = &Mapping{Name: name}
			}
			cur = byName[name]
			continue
		}
		if cur == nil || len(f) != 3 || f[2] != "kB" {
			continue
		}
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "Rss:":
			cur.Rss += v
		case "Anonymous:":
			cur.Anonymous += v
		case "Swap:":
			cur.Swap += v
		}
	}
	out := make([]Mapping, 0, len(byName))
	for _, m := range byName {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Mapping) int {
		if a.Rss != b.Rss {
			return int(b.Rss - a.Rss)
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}
