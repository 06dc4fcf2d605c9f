package chaoslab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nlb-dev/nlb/internal/k8slab"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
)

// nlb controller's settings in the lab.
const (
	// NLBName labels nlb's results.
	NLBName = "nlb"
	// NLBXDPName labels the results of nlb's XDP fast path.
	NLBXDPName = "nlb-xdp"
	// NLBAdminAddr is the admin server of `nlb controller` inside each
	// controller's namespace.
	NLBAdminAddr = "127.0.0.1:9647"
	// NLBProxyPort is keepalived.userSpaceProxyBindPort.
	NLBProxyPort = 6444
	// NLBPriority is every node's priority: k0s configures none, and nlb's
	// default is k0s's 200.
	NLBPriority = 200
)

// NLB is `nlb controller` on every controller, configured from a k0s
// ClusterConfig, with an admin kubeconfig pointing at the local API
// server. Clients use VIP:6443, which the VIP holder steers into its
// proxy.
type NLB struct {
	c   *k8slab.Cluster
	p   Params
	bin string
	dir string
	xdp bool

	bpffs   string // the bpffs the XDP mode pins in (mounted by Start)
	mounted bool

	nodes []*netlab.Process
	admin []*http.Client
}

// NewNLB prepares `nlb controller` (binary bin) on c's controllers with
// files under dir.
func NewNLB(c *k8slab.Cluster, p Params, bin, dir string) *NLB {
	return newNLB(c, p, bin, dir, false)
}

// NewNLBXDP is NewNLB with the VIP as a keepalived.virtualServers entry
// (k0s's defaults): nlb's XDP fast path balances it by direct server
// return from the VRRP Master, every controller a real server. Each node
// pins its datapath in a bpffs of the lab's own, mounted under dir by
// Start; Close unmounts it.
func NewNLBXDP(c *k8slab.Cluster, p Params, bin, dir string) *NLB {
	return newNLB(c, p, bin, dir, true)
}

func newNLB(c *k8slab.Cluster, p Params, bin, dir string, xdp bool) *NLB {
	n := &NLB{c: c, p: p, bin: bin, dir: dir, xdp: xdp, bpffs: filepath.Join(dir, "bpffs")}
	for i, ctl := range c.Controllers {
		nd := n.nodeDir(i)
		args := []string{"controller",
			"--config", filepath.Join(nd, "k0s.yaml"),
			"--kubeconfig", ctl.Kubeconfig,
			"--admin", NLBAdminAddr,
			"--cache-file", filepath.Join(nd, "apiservers.cache"),
			"--log-format", "json",
			"--log-level", "info"}
		if xdp {
			args = append(args, "--bpf-pin-dir", filepath.Join(n.bpffs, ctl.Host.Name),
				"--dsr-state-file", filepath.Join(nd, "dsr.json"))
		}
		n.nodes = append(n.nodes, netlab.NewProcess("nlb@"+ctl.Host.Name, filepath.Join(nd, "nlb.log"), ctl.Host, append([]string{bin}, args...)...))
		n.admin = append(n.admin, ctl.Host.HTTPClient(2*time.Second))
	}
	return n
}

func (n *NLB) nodeDir(i int) string {
	return filepath.Join(n.dir, "nlb-"+n.c.Controllers[i].Host.Name)
}

// Name implements Impl.
func (n *NLB) Name() string {
	if n.xdp {
		return NLBXDPName
	}
	return NLBName
}

// Close unmounts the XDP mode's bpffs (what is still pinned in it goes
// with it).
func (n *NLB) Close() error {
	if !n.mounted {
		return nil
	}
	n.mounted = false
	if err := syscall.Unmount(n.bpffs, syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("chaoslab: unmount %s: %w", n.bpffs, err)
	}
	return nil
}

// Port implements Impl: the API server port on the VIP.
func (n *NLB) Port() int { return k8slab.APIServerPort }

// Priority implements Impl.
func (n *NLB) Priority(int) uint8 { return NLBPriority }

// Config is node i's k0s ClusterConfig: k0s's CPLB settings with the
// lab's parameters, steering auto (XDP: the VIP as a virtual server
// instead), and health tracking that gives up the VIP (weight 0) after 3
// failed checks 500 ms apart.
func (n *NLB) Config(i int) []byte {
	weight := 0
	steering := "auto"
	var vss []netip.Addr
	if n.xdp {
		steering, vss = "", []netip.Addr{n.p.VIP.Addr()}
	}
	return nlbtest.K0sConfig{
		APIPort: k8slab.APIServerPort, ProxyPort: NLBProxyPort, Steering: steering, VirtualServers: vss,
		Health: &nlbtest.Health{Interval: 500 * time.Millisecond, Timeout: 400 * time.Millisecond, Fall: 3, Rise: 5, Weight: &weight},
		Instances: []nlbtest.VRRPInstance{{
			VIPs: []netip.Prefix{n.p.VIP}, AuthPass: n.p.AuthPass, Interface: n.c.Controllers[i].Host.IfName,
			VRID: int(n.p.VRID), Version: 2, Interval: n.p.Advert,
		}},
	}.YAML()
}

// Start implements Impl.
func (n *NLB) Start(i int) error {
	nd := n.nodeDir(i)
	if err := os.MkdirAll(nd, 0o755); err != nil {
		return fmt.Errorf("chaoslab: %w", err)
	}
	if err := os.WriteFile(filepath.Join(nd, "k0s.yaml"), n.Config(i), 0o644); err != nil {
		return fmt.Errorf("chaoslab: %w", err)
	}
	if n.xdp && !n.mounted {
		if err := os.MkdirAll(n.bpffs, 0o700); err != nil {
			return fmt.Errorf("chaoslab: %w", err)
		}
		if err := syscall.Mount("bpf", n.bpffs, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("chaoslab: mount a bpffs on %s: %w", n.bpffs, err)
		}
		n.mounted = true
		// Nothing on the lab's side: on these veths nlb attaches its
		// tcx program (xdplb.DefaultModes), which needs no XDP program
		// on the switch's side of the veth and keeps the clients'
		// partial checksums, as in a container whose host side does
		// nothing for it.
	}
	return n.nodes[i].Start()
}

// Kill implements Impl.
func (n *NLB) Kill(i int) error { return n.nodes[i].Kill() }

// NLBStopTimeout is how long Stop waits after SIGTERM before it kills.
// A stopping Master sends a priority-0 advertisement, keeps the VIP
// (steered into its proxy) until the new Master's first advertisement (at
// most 4 s), then lets the proxy drain open connections for up to its
// shutdownTimeout (30 s by default; long-lived watches use all of it): 40 s
// covers both, so that a clean stop is not taken for a hung one.
const NLBStopTimeout = 40 * time.Second

// Stop implements Impl: SIGTERM hands the VIP over (make-before-break),
// the proxy drains, and nlb exits; see NLBStopTimeout.
func (n *NLB) Stop(i int) error { return n.nodes[i].Stop(NLBStopTimeout) }

// Status fetches node i's admin /status as generic JSON.
func (n *NLB) Status(ctx context.Context, i int) (map[string]any, error) {
	var st map[string]any
	return st, nlbtest.GetJSON(ctx, n.admin[i], "http://"+NLBAdminAddr+"/status", &st)
}

// Ready implements Impl: every node runs and answers /status, every VRRP
// instance is Master or Backup at its configured priority (not lowered to
// 0 by the health tracking, whose rise can lag the API server's readiness
// by seconds: a scenario must not start while a Backup cannot take over)
// and exactly one is Master, and every API server of the cluster is a
// proxy backend, healthy.
func (n *NLB) Ready(ctx context.Context) error {
	masters := 0
	for i, d := range n.nodes {
		if !d.Running() {
			return fmt.Errorf("%s is not running", d.Name)
		}
		st, err := n.Status(ctx, i)
		if err != nil {
			return fmt.Errorf("%s: %w", d.Name, err)
		}
		insts, backends := statusFacts(st)
		if len(insts) == 0 {
			return fmt.Errorf("%s: /status lists no VRRP instance", d.Name)
		}
		for _, in := range insts {
			switch in.state {
			case "Master":
				masters++
			case "Backup":
			default:
				return fmt.Errorf("%s: instance in state %q", d.Name, in.state)
			}
			if in.priority >= 0 && in.priority != int(n.Priority(i)) {
				return fmt.Errorf("%s: %s at priority %d (configured %d)", d.Name, in.state, in.priority, n.Priority(i))
			}
		}
		for addr, healthy := range backends {
			if !healthy {
				return fmt.Errorf("%s: proxy backend %s unhealthy", d.Name, addr)
			}
		}
		// Every API server discovered: a node that still misses one
		// (the endpoints of a freshly started API server lag its
		// readiness) would build another Maglev table than the others,
		// and a VIP move then moves flows between backends.
		if len(backends) != len(n.c.Controllers) {
			return fmt.Errorf("%s: %d API servers known, want %d", d.Name, len(backends), len(n.c.Controllers))
		}
	}
	if masters != 1 {
		return fmt.Errorf("%d nodes report Master", masters)
	}
	return nil
}

// statusInstance is a VRRP instance in a /status document: its state and
// its effective priority (-1 when not given).
type statusInstance struct {
	state    string
	priority int
}

// statusFacts digs the VRRP instances (objects with "state", and maybe
// "priority", inside an "instances" list) and the proxy backends (objects
// with "address" and "healthy" inside a "backends" list, not removed ones)
// out of a /status document, wherever they sit, so that the bench does not
// depend on the exact shape.
func statusFacts(v any) (insts []statusInstance, backends map[string]bool) {
	backends = map[string]bool{}
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(k, e)
			}
		case []any:
			for _, e := range x {
				m, ok := e.(map[string]any)
				if !ok {
					continue
				}
				switch key {
				case "instances":
					if s, ok := m["state"].(string); ok {
						in := statusInstance{state: s, priority: -1}
						if p, ok := m["priority"].(float64); ok {
							in.priority = int(p)
						}
						insts = append(insts, in)
					}
				case "backends":
					addr, _ := m["address"].(string)
					healthy, hok := m["healthy"].(bool)
					removed, _ := m["removed"].(bool)
					// The XDP fast path names a backend it left out of
					// its table (no MAC yet, after a link came back).
					problem, _ := m["problem"].(string)
					if addr != "" && hok && !removed {
						ok := healthy && problem == ""
						if prev, seen := backends[addr]; seen {
							ok = ok && prev
						}
						backends[addr] = ok
					}
				}
				walk("", m)
			}
		}
	}
	walk("", v)
	return insts, backends
}

// Tail implements Impl.
func (n *NLB) Tail(i, k int) string {
	return fmt.Sprintf("--- %s:\n%s", n.nodes[i].Name, n.nodes[i].Tail(k))
}

// NLBAvailable reports why bin cannot run `nlb controller` (missing, or
// built before the subcommand existed), or nil.
func NLBAvailable(ctx context.Context, bin string) error {
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("chaoslab: nlb binary: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "controller", "-h").CombinedOutput()
	if err != nil || strings.Contains(string(out), "unknown command") {
		return errors.Join(errors.New("chaoslab: this nlb has no `controller` subcommand"), err)
	}
	return nil
}
