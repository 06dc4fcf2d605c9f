package main

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nlb-dev/nlb/cplb"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
	"github.com/nlb-dev/nlb/vrrp"
)

// Settings of every controller: k0s's CPLB defaults.
const (
	vrid          = 51
	authPass      = "k0sdemo"
	k0sPriority   = 200
	proxyPort     = 6444
	adminAddr     = "127.0.0.1:9647" // nlb controller's default, in each namespace
	advertSeconds = 1
)

// controllerConfig is the k0s ClusterConfig every controller host reads:
// k0s's CPLB settings (VRRPv2, virtualRouterID 51, advertIntervalSeconds
// 1, authPass; every node priority 200 as k0s's keepalived template) plus
// the user-space proxy port.
func controllerConfig(ifName string, vip netip.Prefix) string {
	return string(nlbtest.K0sConfig{APIPort: 6443, ProxyPort: proxyPort, Instances: []nlbtest.VRRPInstance{{
		VIPs: []netip.Prefix{vip}, Interface: ifName, VRID: vrid, Interval: advertSeconds * time.Second, AuthPass: authPass,
	}}}.YAML())
}

// skewTime and masterDown are the RFC 3768 timers of k0s's CPLB settings
// (VRRPv2, priority 200, 1 s advertisements).
func skewTime() time.Duration {
	return vrrp.SkewTime(vrrp.Version2, k0sPriority, advertSeconds*time.Second)
}

func masterDown() time.Duration {
	return vrrp.MasterDownInterval(vrrp.Version2, k0sPriority, advertSeconds*time.Second)
}

// node is `nlb controller` on one controller host.
type node struct {
	i    int
	host *netlab.Host
	nlb  string
	args []string
	proc *netlab.Process
	http *http.Client
}

func newNode(i int, h *netlab.Host, nlb, dir string, vip netip.Prefix, extra []string) (*node, error) {
	conf := filepath.Join(dir, fmt.Sprintf("controller%d.yaml", i+1))
	if err := os.WriteFile(conf, []byte(controllerConfig(h.IfName, vip)), 0o600); err != nil {
		return nil, fmt.Errorf("controller%d config: %w", i+1, err)
	}
	args := append([]string{"controller", "--config", conf, "--admin", adminAddr}, extra...)
	n := &node{
		i: i, host: h, nlb: nlb, args: args,
		proc: netlab.NewProcess(fmt.Sprintf("controller%d", i+1), filepath.Join(dir, fmt.Sprintf("controller%d.log", i+1)), h, append([]string{nlb}, args...)...),
	}
	n.http = h.HTTPClient(2 * time.Second)
	return n, nil
}

// commandLine is the nlb command line, for the story.
func (n *node) commandLine() string {
	return "nlb " + strings.Join(n.args, " ")
}

// start runs nlb controller in the host's namespace.
func (n *node) start() error { return n.proc.Start() }

func (n *node) running() bool { return n.proc.Running() }

// kill is a crash: SIGKILL, no release advertisement, the VIP stays
// configured where it was.
func (n *node) kill() error { return n.proc.Kill() }

// stop ends nlb gracefully, or kills it.
func (n *node) stop() { _ = n.proc.Stop(5 * time.Second) }

// logTail returns the last lines nlb printed.
func (n *node) logTail(lines int) string { return n.proc.Tail(lines) }

// status is nlb controller's /status (cplb.Status).
type status struct {
	cplb.Status
}

func (s status) state() string {
	if len(s.Instances) == 0 {
		return ""
	}
	return s.Instances[0].State
}

// status asks the node's admin server.
func (n *node) status(ctx context.Context) (status, error) {
	var st status
	if err := nlbtest.GetJSON(ctx, n.http, "http://"+adminAddr+"/status", &st); err != nil {
		return st, fmt.Errorf("controller%d: %w", n.i+1, err)
	}
	return st, nil
}

// nlbStatus runs `nlb status` inside the node's namespace.
func (n *node) nlbStatus(ctx context.Context) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := n.host.Exec(cctx, n.nlb, "status", "--admin", adminAddr).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("nlb status on controller%d: %w: %s", n.i+1, err, out)
	}
	return string(out), nil
}
