package chaoslab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nlb-dev/nlb/internal/k8slab"
	"github.com/nlb-dev/nlb/internal/keepalived"
	"github.com/nlb-dev/nlb/internal/netlab"
)

// The peer's settings from the kubeadm high-availability guide
// (kubernetes/kubeadm docs/ha-considerations.md, "keepalived and haproxy").
const (
	// HAProxyPort is HAProxy's frontend port (the guide's
	// APISERVER_DEST_PORT): it must differ from the API servers' 6443,
	// which they bind on every address.
	HAProxyPort = 8443
	// PeerName labels the peer's results.
	PeerName = "keepalived+haproxy"
)

// Peer is keepalived (VRRP with the guide's check script) plus HAProxy on
// every controller, set up as the kubeadm guide does: the first node has
// state MASTER and priority 101, the others BACKUP and 100; the script
// runs every 3 s, and 10 failures lower the priority by 2.
type Peer struct {
	c   *k8slab.Cluster
	p   Params
	dir string

	keepalived []*netlab.Process
	haproxy    []*netlab.Process
}

// NewPeer prepares the peer on c's controllers with files under dir.
func NewPeer(c *k8slab.Cluster, p Params, dir string) *Peer {
	pr := &Peer{c: c, p: p, dir: dir}
	for i, ctl := range c.Controllers {
		nd := pr.nodeDir(i)
		pr.keepalived = append(pr.keepalived, keepalived.NewProcess(ctl.Host, nd))
		pr.haproxy = append(pr.haproxy, netlab.NewProcess("haproxy@"+ctl.Host.Name, filepath.Join(nd, "haproxy.log"), ctl.Host,
			"haproxy", "-db", "-f", filepath.Join(nd, "haproxy.cfg")))
	}
	return pr
}

func (pr *Peer) nodeDir(i int) string {
	return filepath.Join(pr.dir, "peer-"+pr.c.Controllers[i].Host.Name)
}

// Name implements Impl.
func (pr *Peer) Name() string { return PeerName }

// Port implements Impl: HAProxy's port.
func (pr *Peer) Port() int { return HAProxyPort }

// Priority implements Impl: 101 for the first node, 100 for the others.
func (pr *Peer) Priority(i int) uint8 {
	if i == 0 {
		return 101
	}
	return 100
}

// Start implements Impl: it writes node i's files and starts HAProxy and
// keepalived.
func (pr *Peer) Start(i int) error {
	nd := pr.nodeDir(i)
	if err := os.MkdirAll(nd, 0o755); err != nil {
		return fmt.Errorf("chaoslab: %w", err)
	}
	files := []struct {
		name string
		body []byte
		mode os.FileMode
	}{
		{"check_apiserver.sh", CheckScript(pr.p, k8slab.APIServerPort), 0o755},
		{"keepalived.conf", pr.keepalivedConf(i), 0o644},
		{"haproxy.cfg", HAProxyConfig(pr.c, filepath.Join(nd, "haproxy.sock")), 0o644},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(nd, f.name), f.body, f.mode); err != nil {
			return fmt.Errorf("chaoslab: %w", err)
		}
	}
	if err := pr.haproxy[i].Start(); err != nil {
		return err
	}
	return pr.keepalived[i].Start()
}

// Kill implements Impl: SIGKILL to keepalived (parent, VRRP child and any
// running check script) and HAProxy at once.
func (pr *Peer) Kill(i int) error {
	errc := make(chan error, 1)
	go func() { errc <- pr.haproxy[i].Kill() }()
	return errors.Join(pr.keepalived[i].Kill(), <-errc)
}

// Stop implements Impl: SIGTERM to keepalived (a master sends a
// priority-0 advertisement and removes the VIP), then to HAProxy.
func (pr *Peer) Stop(i int) error {
	return errors.Join(pr.keepalived[i].Stop(5*time.Second), pr.haproxy[i].Stop(5*time.Second))
}

// Ready implements Impl: every keepalived and HAProxy runs, and every
// HAProxy sees every API server UP.
func (pr *Peer) Ready(ctx context.Context) error {
	for i, ctl := range pr.c.Controllers {
		for _, d := range []*netlab.Process{pr.keepalived[i], pr.haproxy[i]} {
			if !d.Running() {
				return fmt.Errorf("%s is not running", d.Name)
			}
		}
		st, err := haproxyServers(ctx, filepath.Join(pr.nodeDir(i), "haproxy.sock"))
		if err != nil {
			return fmt.Errorf("haproxy@%s: %w", ctl.Host.Name, err)
		}
		for _, c := range pr.c.Controllers {
			if s := st[c.Name]; s != "UP" {
				return fmt.Errorf("haproxy@%s: server %s is %q", ctl.Host.Name, c.Name, s)
			}
		}
	}
	return nil
}

// Tail implements Impl.
func (pr *Peer) Tail(i, n int) string {
	return fmt.Sprintf("--- %s:\n%s\n--- %s:\n%s", pr.keepalived[i].Name, pr.keepalived[i].Tail(n), pr.haproxy[i].Name, pr.haproxy[i].Tail(n))
}

// keepalivedConf is the guide's keepalived.conf for node i, with the
// bench's VRID, password and VIP (with its prefix, as nlb has it) and the
// script's path. script_user root with enable_script_security runs the
// script as root (there is no keepalived_script user here) without
// keepalived's warning.
func (pr *Peer) keepalivedConf(i int) []byte {
	state := "BACKUP"
	if i == 0 {
		state = "MASTER"
	}
	ifName := pr.c.Controllers[i].Host.IfName
	var b bytes.Buffer
	fmt.Fprintf(&b, `! Configuration File for keepalived (kubeadm ha-considerations.md)
global_defs {
    router_id LVS_DEVEL
    script_user root
    enable_script_security
}
vrrp_script check_apiserver {
  script "%s"
  interval 3
  weight -2
  fall 10
  rise 2
}

vrrp_instance VI_1 {
    state %s
    interface %s
    virtual_router_id %d
    priority %d
    advert_int %d
    authentication {
        auth_type PASS
        auth_pass %s
    }
    virtual_ipaddress {
        %s dev %s
    }
    track_script {
        check_apiserver
    }
}
`, filepath.Join(pr.nodeDir(i), "check_apiserver.sh"), state, ifName, pr.p.VRID, pr.Priority(i),
		int(pr.p.Advert/time.Second), pr.p.AuthPass, pr.p.VIP, ifName)
	return b.Bytes()
}

// CheckScript is the guide's check_apiserver.sh, pointed at the API
// server's port (the issue: "check script on the API server"): any HTTP
// answer from https://localhost:PORT/ passes (curl without --fail), and on
// the VIP holder https://VIP:PORT/ must answer too.
func CheckScript(p Params, port int) []byte {
	vip := p.VIP.Addr().String()
	return fmt.Appendf(nil, `#!/bin/sh

errorExit() {
    echo "*** $*" 1>&2
    exit 1
}

curl --silent --max-time 2 --insecure https://localhost:%[2]d/ -o /dev/null || errorExit "Error GET https://localhost:%[2]d/"
if ip addr | grep -q %[1]s; then
    curl --silent --max-time 2 --insecure https://%[1]s:%[2]d/ -o /dev/null || errorExit "Error GET https://%[1]s:%[2]d/"
fi
`, vip, port)
}

// HAProxyConfig is the guide's haproxy.cfg: the defaults it lists, a TCP
// frontend on HAProxyPort and a round-robin backend over every API server
// with the default checks (inter 2s, fall 3, rise 2). The backend names
// both `option httpchk GET /healthz` and `option ssl-hello-chk`, in the
// guide's order; HAProxy keeps the last check option, so the servers are
// checked with an SSLv3 client hello, not an HTTP request. The only
// addition is a stats socket at sock for Ready; there is no logging.
func HAProxyConfig(c *k8slab.Cluster, sock string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `global
    stats socket %s mode 600 level admin

defaults
    mode                    http
    option                  http-server-close
    option                  redispatch
    retries                 1
    timeout connect         5s
    timeout client          20s
    timeout server          20s
    timeout check           10s

frontend apiserver
    bind *:%d
    mode tcp
    option tcplog
    default_backend apiserverbackend

backend apiserverbackend
    option httpchk GET /healthz
    http-check expect status 200
    mode tcp
    option ssl-hello-chk
    balance     roundrobin
`, sock, HAProxyPort)
	for _, ctl := range c.Controllers {
		fmt.Fprintf(&b, "        server %s %s:%d check\n", ctl.Name, ctl.Addr, k8slab.APIServerPort)
	}
	return b.Bytes()
}

// haproxyServers returns the status ("UP", "DOWN", "UP 1/2", ...) of every
// server of the apiserverbackend backend, from the stats socket's CSV.
func haproxyServers(ctx context.Context, sock string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, fmt.Errorf("stats socket: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte("show stat\n")); err != nil {
		return nil, fmt.Errorf("stats socket: %w", err)
	}
	out := map[string]string{}
	status := -1
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ",")
		if strings.HasPrefix(sc.Text(), "# ") {
			f[0] = strings.TrimPrefix(f[0], "# ")
			for j, name := range f {
				if name == "status" {
					status = j
				}
			}
			continue
		}
		if status < 0 || len(f) <= status || f[0] != "apiserverbackend" || f[1] == "BACKEND" || f[1] == "FRONTEND" {
			continue
		}
		out[f[1]] = f[status]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("stats socket: %w", err)
	}
	if status < 0 {
		return nil, errors.New("stats socket: no CSV header")
	}
	return out, nil
}

// PeerAvailable reports why the peer cannot run here (keepalived,
// HAProxy or curl missing), or nil.
func PeerAvailable() error {
	var errs []error
	for _, bin := range []string{"keepalived", "haproxy", "curl"} {
		if _, err := exec.LookPath(bin); err != nil {
			errs = append(errs, fmt.Errorf("chaoslab: %s not installed: %w", bin, err))
		}
	}
	return errors.Join(errs...)
}
