package kubeadmlab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/nlb-dev/nlb/cplb"
	"github.com/nlb-dev/nlb/internal/k8slab"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
	"github.com/nlb-dev/nlb/lb/k8s"
)

// The paths and address of README's kubeadm recipe and of the manifest,
// replaced by the test's.
const (
	controllerYAML = "/etc/nlb/controller.yaml"
	adminConf      = "/etc/kubernetes/admin.conf"
	recipeVIP      = "192.0.2.100/24"
	podAdmin       = "127.0.0.1:9647" // the manifest's --admin
)

// recipeConfig returns the first YAML block of README.md's section
// "kubeadm: a static pod in place of kube-vip" (the recipe's
// /etc/nlb/controller.yaml) with the VIP replaced by vip and the
// instance given ifName as its interface (the recipe leaves it to the
// default-route interface; lab hosts have no default route).
func recipeConfig(t *testing.T, ifName string, vip netip.Prefix) []byte {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	const heading = "### kubeadm: a static pod in place of kube-vip\n"
	i := strings.Index(s, heading)
	if i < 0 {
		t.Fatalf("README.md has no %q", heading)
	}
	s = s[i:]
	const open = "```yaml\n"
	i = strings.Index(s, open)
	j := strings.Index(s[i+len(open):], "```")
	if i < 0 || j < 0 {
		t.Fatal("README.md's kubeadm recipe has no YAML block")
	}
	y := s[i+len(open) : i+len(open)+j]
	const entry = "  - virtualIPs: "
	if strings.Count(y, recipeVIP) != 1 || strings.Count(y, entry) != 1 {
		t.Fatalf("README.md's kubeadm controller.yaml: want one instance with the VIP %s:\n%s", recipeVIP, y)
	}
	y = strings.Replace(y, recipeVIP, vip.String(), 1)
	y = strings.Replace(y, entry, "  - interface: "+ifName+"\n    virtualIPs: ", 1)
	return []byte(y)
}

// manifestCommand returns `nlb manifest controller --for kubeadm`'s
// container: its arguments with the recipe's files replaced by subst's,
// run by bin under setpriv with the container's added capabilities only
// and no new privileges (allowPrivilegeEscalation: false).
func manifestCommand(t *testing.T, bin string, subst map[string]string) []string {
	t.Helper()
	out, err := exec.Command(bin, "manifest", "controller", "--for", "kubeadm").Output()
	if err != nil {
		t.Fatalf("nlb manifest controller --for kubeadm: %v", err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(out, &pod); err != nil {
		t.Fatalf("the manifest: %v\n%s", err, out)
	}
	if len(pod.Spec.Containers) != 1 || !pod.Spec.HostNetwork {
		t.Fatalf("the manifest: want one container on the host network:\n%s", out)
	}
	ctr := pod.Spec.Containers[0]
	sc := ctr.SecurityContext
	if len(ctr.Command) != 0 || sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Fatalf("the manifest's container: want the image's entrypoint, capabilities ALL dropped and some added, no privilege escalation:\n%s", out)
	}
	caps := "-all"
	for _, c := range sc.Capabilities.Add {
		caps += ",+" + strings.ToLower(string(c))
	}
	argv := []string{"setpriv", "--bounding-set=" + caps, "--inh-caps=" + caps, "--ambient-caps=" + caps, "--no-new-privs", bin}
	used := map[string]bool{}
	for _, a := range ctr.Args {
		if to, ok := subst[a]; ok {
			a, used[a] = to, true
		}
		argv = append(argv, a)
	}
	for from := range subst {
		if !used[from] {
			t.Fatalf("the manifest's arguments %q do not name %s", ctr.Args, from)
		}
	}
	return argv
}

// TestKubeadmStaticPod: the kubeadm static pod brings the VIP up where no
// API server runs yet, then discovers the API servers once they are up.
// A real two-API-server cluster (internal/k8slab) is started and its API
// servers stopped: the node of the first is then as during `kubeadm
// init` before the control plane's static pods run. On it, nlb
// controller runs with the manifest's arguments and capabilities, the
// README's controller.yaml, and an admin.conf whose server is the VIP
// (kubeadm's control-plane endpoint; tls-server-name kubernetes, as the
// lab's serving certificates do not name the VIP).
//
//   - No API server: the node is Master and holds the VIP, under the
//     bootstrap rule (/status health.bootstrap), the proxy on its seed
//     127.0.0.1:6443.
//   - The API servers start: health gating starts (no bootstrap, the
//     local API server healthy), discovery replaces the seed with both API
//     servers, healthy, the node stays Master, and a client on another
//     host lists EndpointSlices through VIP:6443.
func TestKubeadmStaticPod(t *testing.T) {
	c := k8slab.StartT(t, k8slab.Options{Name: "kubeadm", Controllers: 2})
	bin := netlab.BuildNLB(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	node := c.Controllers[0].Host
	vip := c.Lab.VIP4(0)
	vipServer := "https://" + net.JoinHostPort(vip.Addr().String(), "6443")

	conf := filepath.Join(dir, "controller.yaml")
	if err := os.WriteFile(conf, recipeConfig(t, node.IfName, vip), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "controller", "--check", "--config", conf).CombinedOutput(); err != nil {
		t.Fatalf("the recipe's nlb controller --check: %v\n%s", err, out)
	}
	admin := filepath.Join(dir, "admin.conf")
	kc, err := c.Kubeconfig(k8slab.Admin, vipServer)
	if err != nil {
		t.Fatal(err)
	}
	kcfg, err := clientcmd.LoadFromFile(kc)
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range kcfg.Clusters {
		cl.TLSServerName = k8s.APIServerName
	}
	if err := clientcmd.WriteToFile(*kcfg, admin); err != nil {
		t.Fatal(err)
	}
	argv := manifestCommand(t, bin, map[string]string{controllerYAML: conf, adminConf: admin})

	// No API server runs yet.
	for _, ctl := range c.Controllers {
		if err := ctl.Stop(30 * time.Second); err != nil {
			t.Fatalf("stop %s: %v", ctl.Name, err)
		}
	}

	p := netlab.NewProcess("nlb controller (kubeadm pod)", filepath.Join(dir, "nlb.log"), node, argv...)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Stop(15 * time.Second)
		if t.Failed() {
			t.Logf("nlb controller log:\n%s", p.Tail(80))
		}
	})
	hc := node.HTTPClient(5 * time.Second)
	var last cplb.Status
	var lastCheck error // the last /status check that failed
	poll := func(what string, check func(st cplb.Status) error) {
		t.Helper()
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
		defer wcancel()
		if err := nlbtest.Poll(wctx, 200*time.Millisecond, what, func() error {
			if !p.Running() {
				return nlbtest.Stop(fmt.Errorf("nlb controller exited: %v", p.Err()))
			}
			var st cplb.Status
			if err := nlbtest.GetJSON(wctx, hc, "http://"+podAdmin+"/status", &st); err != nil {
				return err
			}
			last = st
			lastCheck = func() error {
				if len(st.Instances) != 1 {
					return fmt.Errorf("%d instances, want 1", len(st.Instances))
				}
				if in := st.Instances[0]; in.State != "Master" || !in.VIPsConfigured {
					return fmt.Errorf("%s, VIPs configured %v, want Master with the VIP", in.State, in.VIPsConfigured)
				}
				if st.Health == nil || st.Proxy == nil {
					return fmt.Errorf("no health or proxy in /status")
				}
				return check(st)
			}()
			return lastCheck
		}); err != nil {
			t.Fatalf("%v; the last check that failed: %v; last /status: %+v, health %+v, proxy %+v", err, lastCheck, last, last.Health, last.Proxy)
		}
	}

	poll("Master with the VIP before any API server (the bootstrap rule)", func(st cplb.Status) error {
		if st.Health.Bootstrap == "" {
			return fmt.Errorf("health %+v, want the bootstrap rule in force", st.Health)
		}
		if got := backends(st); !slices.Equal(got, []string{"127.0.0.1:6443"}) {
			return fmt.Errorf("proxy backends %q, want the seed 127.0.0.1:6443", got)
		}
		return nil
	})
	if ok, err := node.HasAddr(vip); err != nil || !ok {
		t.Fatalf("VIP %s on %s: %v %v", vip, node.IfName, ok, err)
	}
	for _, ctl := range c.Controllers {
		if ctl.Running() {
			t.Fatalf("%s runs: the first phase must have no API server", ctl.Name)
		}
	}

	// The control plane comes up.
	for _, ctl := range c.Controllers {
		if err := ctl.Restart(ctx); err != nil {
			t.Fatalf("start %s: %v", ctl.Name, err)
		}
	}
	var want []string
	for _, ctl := range c.Controllers {
		want = append(want, netip.AddrPortFrom(ctl.Addr, k8slab.APIServerPort).String())
	}
	slices.Sort(want)
	poll("the API servers discovered, health gating on", func(st cplb.Status) error {
		if st.Health.Bootstrap != "" || !st.Health.Tracked.Healthy {
			return fmt.Errorf("health %+v, want gating started and the local API server healthy", st.Health)
		}
		if got := backends(st); !slices.Equal(got, want) {
			return fmt.Errorf("proxy backends %q, want the API servers %q", got, want)
		}
		for _, b := range st.Proxy.Backends {
			// The seed, removed, drains the connections it has (the
			// first discovery watch went through it).
			if !b.Removed && !b.Healthy {
				return fmt.Errorf("backend %s unhealthy", b.Address)
			}
		}
		return nil
	})

	// A client elsewhere reaches the API through the VIP.
	rc := c.RESTConfig(k8slab.Admin, c.Worker, vipServer)
	rc.TLSClientConfig.ServerName = k8s.APIServerName
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list through VIP:6443: %v", err)
	}
}

// backends returns the proxy's current backends, sorted.
func backends(st cplb.Status) []string {
	var out []string
	for _, b := range st.Proxy.Backends {
		if !b.Removed {
			out = append(out, b.Address)
		}
	}
	slices.Sort(out)
	return out
}
