//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/keepalived"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
	"github.com/nlb-dev/nlb/vrrp/router"
)

// Helpers of the privileged end-to-end tests: nlb and keepalived nodes on
// the hosts of a netlab lab, their /status and /metrics, and bounded waits.

const (
	// adminAddr is where every nlb node serves /status and /metrics,
	// inside its own namespace (each namespace has its own loopback).
	adminAddr = "127.0.0.1:9647"
	// fastInterval is the VRRPv3 advertisement interval of the tests where
	// timing does not matter.
	fastInterval = 100 * time.Millisecond
	// exitWait bounds the wait for a signalled process to exit.
	exitWait = 10 * time.Second
	// logTail is how much of a daemon's log a failed test prints.
	logTail = 24 << 10
)

// vrrpOpts is one vrrpInstances[] entry of an nlb node's configuration;
// renderNLB sets its interface, authPass "secret" when it has none, and
// one GARP burst.
type vrrpOpts nlbtest.VRRPInstance

// fast returns o as VRRPv3 at 100ms intervals.
func (o vrrpOpts) fast() vrrpOpts {
	o.Version, o.Interval = 3, fastInterval
	return o
}

// renderNLB renders a k0s ClusterConfig holding insts on interface ifName.
func renderNLB(ifName string, insts ...vrrpOpts) []byte {
	return controllerConf(ifName, nlbtest.K0sConfig{}, insts...)
}

// controllerConf is k's ClusterConfig (its controller settings) holding
// insts on interface ifName.
func controllerConf(ifName string, k nlbtest.K0sConfig, insts ...vrrpOpts) []byte {
	for _, o := range insts {
		in := nlbtest.VRRPInstance(o)
		in.Interface = ifName
		if in.AuthPass == "" {
			in.AuthPass = "secret"
		}
		// One GARP burst: less noise in captures and logs.
		in.GARPMasterDelay = new(time.Duration)
		k.Instances = append(k.Instances, in)
	}
	return k.YAML()
}

func tail(s string) string {
	if len(s) > logTail {
		return "...\n" + s[len(s)-logTail:]
	}
	return s
}

// node is an nlb process running `nlb vrrp` on a lab host.
type node struct {
	t      testing.TB
	h      *netlab.Host
	name   string
	proc   *netlab.Process
	client *http.Client
}

// startNLB writes conf to a temporary file and starts `nlb vrrp` on h.
// The process is killed when the test ends and its log printed if the
// test failed.
func startNLB(t testing.TB, h *netlab.Host, conf []byte) *node {
	t.Helper()
	return startNLBCommand(t, h, conf, "vrrp")
}

// startNLBCommand starts `nlb CMD --config FILE --admin ... ARGS...` on h
// with conf in FILE; see startNLB.
func startNLBCommand(t testing.TB, h *netlab.Host, conf []byte, cmd string, args ...string) *node {
	t.Helper()
	bin := nlbBinary(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "k0s.yaml")
	if err := os.WriteFile(path, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, h: h, name: "nlb@" + h.Name}
	argv := append([]string{bin, cmd, "--config", path, "--admin", adminAddr, "--log-format", "text", "--log-level", "debug"}, args...)
	n.proc = netlab.NewProcess(n.name, filepath.Join(dir, "nlb.log"), h, argv...)
	if err := n.proc.Start(); err != nil {
		t.Fatal(err)
	}
	// A safety bound only: a loaded CI machine (load average 20) has kept
	// a healthy node from answering /status within 2 s, and
	// nlbtest.Consistently takes any error for a violation.
	n.client = h.HTTPClient(10 * time.Second)
	t.Cleanup(func() {
		_ = n.proc.Kill()
		if t.Failed() {
			t.Logf("%s (%s) config:\n%s\nlog:\n%s", n.name, h.NS, conf, tail(n.log()))
		}
	})
	return n
}

func (n *node) exited() bool { return !n.proc.Running() }

// log is what nlb printed so far, without netlab's start and exit lines.
func (n *node) log() string {
	var b strings.Builder
	for line := range strings.Lines(n.proc.Log()) {
		if !strings.HasPrefix(line, "=== netlab: ") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// signal sends sig to the nlb process (`ip netns exec` execs it).
func (n *node) signal(sig syscall.Signal) {
	n.t.Helper()
	if err := n.proc.Signal(sig, false, 0); err != nil {
		n.t.Fatal(err)
	}
}

// wait waits, bounded, for the process to exit and returns how it ended.
func (n *node) wait() error {
	n.t.Helper()
	select {
	case <-n.proc.Done():
		return n.proc.Err()
	case <-time.After(exitWait):
		n.t.Fatalf("%s: did not exit within %v", n.name, exitWait)
		return nil
	}
}

// labStatus is the JSON contract of /status.
type labStatus struct {
	Instances []instStatus `json:"instances"`
}

// instStatus is an instance's part of /status: router.Status, its one
// declaration.
type instStatus = router.Status

func (n *node) get(path string) ([]byte, error) {
	if n.exited() {
		return nil, fmt.Errorf("%s exited: %v", n.name, n.proc.Err())
	}
	b, err := nlbtest.Get(context.Background(), n.client, "http://"+adminAddr+path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.name, err)
	}
	return b, nil
}

// getJSON decodes the JSON document at path into v.
func (n *node) getJSON(path string, v any) error {
	b, err := n.get(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %s: %w: %s", n.name, path, err, b)
	}
	return nil
}

func (n *node) status() (labStatus, error) {
	var st labStatus
	return st, n.getJSON("/status", &st)
}

// inst returns the status of the instance with the given VRID.
func (n *node) inst(vrid int) (instStatus, error) {
	st, err := n.status()
	if err != nil {
		return instStatus{}, err
	}
	for _, in := range st.Instances {
		if int(in.VRID) == vrid {
			return in, nil
		}
	}
	return instStatus{}, fmt.Errorf("%s: /status has no instance with VRID %d: %+v", n.name, vrid, st)
}

// metric is one sample of the Prometheus text exposition.
type metric struct {
	labels map[string]string
	value  float64
}

func (n *node) metrics(name string) ([]metric, error) {
	b, err := n.get("/metrics")
	if err != nil {
		return nil, err
	}
	var out []metric
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		m := metric{labels: map[string]string{}}
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndex(rest, "}")
			if end < 0 {
				return nil, fmt.Errorf("%s: bad metric line %q", n.name, line)
			}
			for kv := range strings.SplitSeq(rest[1:end], ",") {
				k, v, ok := strings.Cut(kv, "=")
				if ok {
					m.labels[k] = strings.Trim(v, `"`)
				}
			}
			rest = rest[end+1:]
		} else if !strings.HasPrefix(rest, " ") {
			continue // a longer name with this prefix
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		if m.value, err = strconv.ParseFloat(f[0], 64); err != nil {
			return nil, fmt.Errorf("%s: bad metric line %q: %w", n.name, line, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// metricSum adds up the samples of name whose labels include want.
func (n *node) metricSum(name string, want map[string]string) (float64, error) {
	ms, err := n.metrics(name)
	if err != nil {
		return 0, err
	}
	var sum float64
next:
	for _, m := range ms {
		for k, v := range want {
			if m.labels[k] != v {
				continue next
			}
		}
		sum += m.value
	}
	return sum, nil
}

// dropped is nlb_vrrp_packets_dropped_total for one VRID and reason.
func (n *node) dropped(vrid int, reason string) (float64, error) {
	return n.metricSum("nlb_vrrp_packets_dropped_total", map[string]string{"vrid": strconv.Itoa(vrid), "reason": reason})
}

// cluster is a set of nlb nodes running one VRRP instance.
type cluster struct {
	nodes []*node
	vrid  int
	vip   netip.Prefix
}

// exactlyMaster reports nil when want is the only Master, every other node
// is Backup and sees want's address as master, and the VIP is configured on
// want and on no other node. A nil want means "any one node".
func (c cluster) exactlyMaster(want *node, wantMasterAddr netip.Addr) error {
	var masters, holders []string
	var states []string
	var master *node
	for _, n := range c.nodes {
		in, err := n.inst(c.vrid)
		if err != nil {
			return err
		}
		states = append(states, fmt.Sprintf("%s=%s(master %s)", n.name, in.State, in.Master))
		switch in.State {
		case "Master":
			masters = append(masters, n.name)
			master = n
			if !in.VIPsConfigured {
				return fmt.Errorf("%s is Master with vips_configured false", n.name)
			}
		case "Backup":
			if in.VIPsConfigured {
				return fmt.Errorf("%s is Backup with vips_configured true", n.name)
			}
		default:
			return fmt.Errorf("%s in state %s: %v", n.name, in.State, states)
		}
		has, err := n.h.HasAddr(c.vip)
		if err != nil {
			return err
		}
		if has {
			holders = append(holders, n.name)
		}
	}
	if len(masters) != 1 {
		return fmt.Errorf("masters %v, want exactly one; %v", masters, states)
	}
	if want != nil && master != want {
		return fmt.Errorf("master is %s, want %s; %v", master.name, want.name, states)
	}
	if len(holders) != 1 || holders[0] != master.name {
		return fmt.Errorf("VIP %s held by %v, want only %s", c.vip, holders, master.name)
	}
	if wantMasterAddr.IsValid() {
		for _, n := range c.nodes {
			if n == master {
				continue
			}
			in, err := n.inst(c.vrid)
			if err != nil {
				return err
			}
			if in.Master != wantMasterAddr.String() {
				return fmt.Errorf("%s sees master %q, want %s", n.name, in.Master, wantMasterAddr)
			}
		}
	}
	return nil
}

// oneMaster reports the only Master of c when exactlyMaster(nil, ...)
// holds and every other node sees that Master's IPv4 address as master:
// the outcome a test asserts when the protocol does not decide which node
// wins.
func (c cluster) oneMaster() (*node, error) {
	if err := c.exactlyMaster(nil, netip.Addr{}); err != nil {
		return nil, err
	}
	for _, n := range c.nodes {
		if s, err := n.state(c.vrid); err != nil {
			return nil, err
		} else if s == "Master" {
			return n, c.exactlyMaster(n, n.h.Addr4)
		}
	}
	return nil, errors.New("no master")
}

// stateMetric checks that nlb_vrrp_state agrees with /status for every
// node (0 Initialize, 1 Backup, 2 Master).
func (c cluster) stateMetric() error {
	codes := map[string]float64{"Initialize": 0, "Backup": 1, "Master": 2}
	for _, n := range c.nodes {
		in, err := n.inst(c.vrid)
		if err != nil {
			return err
		}
		v, err := n.metricSum("nlb_vrrp_state", map[string]string{"vrid": strconv.Itoa(c.vrid)})
		if err != nil {
			return err
		}
		if want, ok := codes[in.State]; !ok || v != want {
			return fmt.Errorf("%s: nlb_vrrp_state %v, /status says %s", n.name, v, in.State)
		}
	}
	return nil
}

// state returns n's state for VRID vrid, "" and the error if unreachable.
func (n *node) state(vrid int) (string, error) {
	in, err := n.inst(vrid)
	return in.State, err
}

func wantState(n *node, vrid int, want string) func() error {
	return func() error {
		got, err := n.state(vrid)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s is %s, want %s", n.name, got, want)
		}
		return nil
	}
}

func hasVIP(h *netlab.Host, vip netip.Prefix, want bool) func() error {
	return func() error {
		has, err := h.HasAddr(vip)
		if err != nil {
			return err
		}
		if has != want {
			return fmt.Errorf("%s holds %s: %t, want %t", h.Name, vip, has, want)
		}
		return nil
	}
}

func all(conds ...func() error) func() error {
	return func() error {
		var errs []error
		for _, c := range conds {
			if err := c(); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
}

// kaNode is a keepalived daemon on a lab host.
type kaNode struct {
	h *netlab.Host
	p *netlab.Process
}

func startKeepalived(t testing.TB, h *netlab.Host, inst keepalived.Instance) *kaNode {
	t.Helper()
	if _, err := exec.LookPath("keepalived"); err != nil {
		t.Fatalf("keepalived is required: %v", err)
	}
	conf, err := keepalived.Render([]keepalived.Instance{inst})
	if err != nil {
		t.Fatal(err)
	}
	p, err := keepalived.Start(h, t.TempDir(), conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Stop(exitWait)
		if t.Failed() {
			t.Logf("keepalived@%s config:\n%s\nlog:\n%s", h.Name, conf, tail(p.Log()))
		}
	})
	return &kaNode{h: h, p: p}
}

// logHas reports nil once keepalived's log contains s.
func (k *kaNode) logHas(s string) func() error {
	return func() error {
		if !strings.Contains(k.p.Log(), s) {
			return fmt.Errorf("keepalived@%s log has no %q yet", k.h.Name, s)
		}
		return nil
	}
}

func boolPtr(b bool) *bool { return &b }
