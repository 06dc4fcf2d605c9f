package chaoslab

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/internal/k8slab"
	"github.com/nlb-dev/nlb/internal/netlab"
)

// fakeCluster has what the renderers read: the controllers' names,
// addresses and interfaces.
func fakeCluster() *k8slab.Cluster {
	c := &k8slab.Cluster{}
	for i, a := range []string{"192.0.2.11", "192.0.2.12", "192.0.2.13"} {
		c.Controllers = append(c.Controllers, &k8slab.Controller{
			Name: "apiserver-" + string(rune('1'+i)),
			Addr: netip.MustParseAddr(a),
			Host: &netlab.Host{Name: "h" + string(rune('1'+i)), IfName: "eth0"},
		})
	}
	return c
}

// TestPeerConfig checks the peer's files against the kubeadm guide's
// settings, and lets HAProxy and (as root) keepalived themselves check
// them where they are installed.
func TestPeerConfig(t *testing.T) {
	c := fakeCluster()
	dir := t.TempDir()
	pr := NewPeer(c, DefaultParams(), dir)

	ka := string(pr.keepalivedConf(0))
	for _, want := range []string{
		"interval 3", "weight -2", "fall 10", "rise 2",
		"state MASTER", "priority 101", "virtual_router_id 51", "advert_int 1",
		"auth_type PASS", "auth_pass chaos", "192.0.2.100/24 dev eth0", "track_script",
	} {
		if !strings.Contains(ka, want) {
			t.Errorf("keepalived.conf of the first node lacks %q:\n%s", want, ka)
		}
	}
	if kb := string(pr.keepalivedConf(1)); !strings.Contains(kb, "state BACKUP") || !strings.Contains(kb, "priority 100") {
		t.Errorf("keepalived.conf of a backup:\n%s", kb)
	}

	sock := filepath.Join(dir, "haproxy.sock")
	hc := string(HAProxyConfig(c, sock))
	for _, want := range []string{
		"bind *:8443", "mode tcp", "balance     roundrobin", "option httpchk GET /healthz",
		"option ssl-hello-chk", "retries                 1", "option                  redispatch",
		"timeout connect         5s", "server apiserver-2 192.0.2.12:6443 check",
	} {
		if !strings.Contains(hc, want) {
			t.Errorf("haproxy.cfg lacks %q:\n%s", want, hc)
		}
	}

	script := string(CheckScript(DefaultParams(), 6443))
	for _, want := range []string{
		"curl --silent --max-time 2 --insecure https://localhost:6443/",
		"if ip addr | grep -q 192.0.2.100; then",
		"curl --silent --max-time 2 --insecure https://192.0.2.100:6443/",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("check script lacks %q:\n%s", want, script)
		}
	}

	if _, err := exec.LookPath("haproxy"); err == nil {
		f := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(f, []byte(hc), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("haproxy", "-c", "-f", f).CombinedOutput(); err != nil {
			t.Errorf("haproxy -c: %v\n%s", err, out)
		}
	}
	// With enable_script_security keepalived accepts only a script owned
	// by root, as the bench runs it.
	if _, err := exec.LookPath("keepalived"); err == nil && os.Geteuid() == 0 {
		// The script must exist, or keepalived disables it.
		if err := os.MkdirAll(pr.nodeDir(0), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pr.nodeDir(0), "check_apiserver.sh"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, "keepalived.conf")
		if err := os.WriteFile(f, []byte(ka), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("keepalived", "--config-test", "--use-file", f).CombinedOutput()
		if err != nil {
			t.Errorf("keepalived --config-test: %v\n%s", err, out)
		}
	}
}

// TestNLBConfig checks the ClusterConfig `nlb controller` reads.
func TestNLBConfig(t *testing.T) {
	n := NewNLB(fakeCluster(), DefaultParams(), "/bin/false", t.TempDir())
	c, err := config.Load(bytes.NewReader(n.Config(1)))
	if err != nil {
		t.Fatalf("%v\n%s", err, n.Config(1))
	}
	want := config.Controller{APIPort: 6443, ProxyPort: 6444, Steering: "auto",
		Health: config.Health{Enabled: true, Interval: 500 * time.Millisecond, Timeout: 400 * time.Millisecond, Fall: 3, Rise: 5, Weight: 0,
			StartupGrace: config.DefaultHealthStartupGrace}}
	if got := c.Controller(); !reflect.DeepEqual(got, want) {
		t.Errorf("controller %+v, want %+v", got, want)
	}
	x := NewNLBXDP(fakeCluster(), DefaultParams(), "/bin/false", t.TempDir())
	cx, err := config.Load(bytes.NewReader(x.Config(1)))
	if err != nil {
		t.Fatalf("%v\n%s", err, x.Config(1))
	}
	if vs := cx.Controller().VirtualServers; len(vs) != 1 || vs[0].VIP != DefaultParams().VIP.Addr() || len(cx.Warnings()) != 0 {
		t.Errorf("XDP: virtual servers %+v, warnings %q: want the VIP, no warning", vs, cx.Warnings())
	}
	insts := c.VRRPInstances()
	if len(insts) != 1 {
		t.Fatalf("%d instances, want 1", len(insts))
	}
	in := insts[0]
	if in.VIPs[0] != netip.MustParsePrefix("192.0.2.100/24") || len(in.VIPs) != 1 || in.Interface != "eth0" || in.VRID != 51 ||
		in.Interval != time.Second || in.Version != 2 || in.AuthData != [8]byte{'c', 'h', 'a', 'o', 's'} {
		t.Errorf("instance %+v", in)
	}
}
