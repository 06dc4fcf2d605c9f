package nllblab

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nlb-dev/nlb/internal/k8slab"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
)

// The paths of the README's k0s worker steps, replaced by the test's.
const (
	kubeletConf      = "/var/lib/k0s/kubelet.conf"
	clientKubeconfig = "/etc/nlb/client.kubeconfig"
	unitAdmin        = "127.0.0.1:9902" // nlb-client.service's --admin
)

// readmeCommand returns the one command of README.md's section "On a k0s
// worker in place of Envoy" (from that heading to the next) written in
// backticks that starts with prefix, with the README's paths replaced
// by subst's.
func readmeCommand(t *testing.T, prefix string, subst map[string]string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	const heading = "### On a k0s worker in place of Envoy\n"
	i := strings.Index(s, heading)
	if i < 0 {
		t.Fatalf("README.md has no %q", heading)
	}
	s = s[i+len(heading):]
	if j := strings.Index(s, "\n#"); j >= 0 {
		s = s[:j]
	}
	var found []string
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(s, -1) {
		if strings.HasPrefix(m[1], prefix) {
			found = append(found, m[1])
		}
	}
	if len(found) != 1 {
		t.Fatalf("README.md's k0s worker steps: %d commands starting with %q, want 1: %q", len(found), prefix, found)
	}
	cmd := found[0]
	for from, to := range subst {
		if !strings.Contains(cmd, from) {
			t.Fatalf("README.md's %q does not name %s", cmd, from)
		}
		cmd = strings.ReplaceAll(cmd, from, to)
	}
	return cmd
}

// clientUnitArgv returns nlb-client.service's ExecStart with the binary
// and kubeconfig replaced and $NLB_ARGS expanded as systemd would from
// the unit's Environment= and the packaged /etc/nlb/client.env
// (EnvironmentFile=), under setpriv with the unit's capability sets
// (none) and no new privileges.
func clientUnitArgv(t *testing.T, bin, kubeconfig string) []string {
	t.Helper()
	unit, err := os.ReadFile("../../dist/systemd/nlb-client.service")
	if err != nil {
		t.Fatal(err)
	}
	env, err := os.ReadFile("../../dist/etc/client.env")
	if err != nil {
		t.Fatal(err)
	}
	var execStart string
	vars := map[string]string{}
	for _, src := range [][]byte{unit, env} { // the environment file overrides Environment=
		sc := bufio.NewScanner(bytes.NewReader(src))
		for sc.Scan() {
			k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
			switch {
			case !ok || strings.HasPrefix(k, "#"):
			case k == "ExecStart":
				execStart = v
			case k == "Environment":
				ek, ev, _ := strings.Cut(v, "=")
				vars[ek] = ev
			case k == "CapabilityBoundingSet" || k == "AmbientCapabilities":
				if v != "" {
					t.Fatalf("nlb-client.service: %s=%s, want none", k, v)
				}
			case strings.ToUpper(k) == k: // a variable of client.env
				vars[k] = v
			}
		}
	}
	if execStart == "" {
		t.Fatal("nlb-client.service has no ExecStart")
	}
	argv := []string{"setpriv", "--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all", "--no-new-privs"}
	for _, f := range strings.Fields(execStart) {
		switch {
		case f == "/usr/bin/nlb":
			argv = append(argv, bin)
		case f == clientKubeconfig:
			argv = append(argv, kubeconfig)
		case strings.HasPrefix(f, "$"):
			argv = append(argv, strings.Fields(vars[f[1:]])...) // systemd splits $VAR at spaces
		default:
			argv = append(argv, f)
		}
	}
	return argv
}

// TestK0sWorkerPath runs the steps of README's "On a k0s worker in place
// of Envoy" that need no k0s, on the worker of a real two-API-server
// cluster. The kubelet's kubeconfig is a worker kubeconfig whose server is
// the join controller, as k0s bootstraps it.
//
//   - step 2: the README's cp gives nlb client its copy;
//   - step 3: nlb client runs as nlb-client.service would (its ExecStart
//     and packaged environment file, no capabilities, no new privileges):
//     both API servers discovered and healthy;
//   - step 4: the README's sed points the kubelet's kubeconfig at
//     https://127.0.0.1:7443 and changes nothing else; `nlb kubeconfig`
//     writes the same server;
//   - a client-go program with either rewritten kubeconfig (the kubelet's
//     stand-in) lists the EndpointSlices of default/kubernetes, through
//     nlb client's listener (its connection count rises).
//
// Steps 1 (the ClusterConfig), 3's k0sworker drop-in and 4's restart of
// k0sworker are k0s's side and documented only.
func TestK0sWorkerPath(t *testing.T) {
	c := k8slab.StartT(t, k8slab.Options{Name: "nllbw", Controllers: 2})
	bin := netlab.BuildNLB(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()

	// The kubelet's kubeconfig as k0s bootstraps it: the join address.
	joined, err := c.WorkerKubeconfig(c.Controllers[0].Server)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(joined)
	if err != nil {
		t.Fatal(err)
	}
	kubelet := filepath.Join(dir, "kubelet.conf")
	if err := os.WriteFile(kubelet, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(dir, "client.kubeconfig")

	// Step 2.
	sh(t, readmeCommand(t, "cp ", map[string]string{kubeletConf: kubelet, clientKubeconfig: copyPath}))
	if b, err := os.ReadFile(copyPath); err != nil || !bytes.Equal(b, orig) {
		t.Fatalf("step 2 wrote %q (%v), want the kubelet's kubeconfig", b, err)
	}

	// Step 3.
	p := netlab.NewProcess("nlb client (unit)", filepath.Join(dir, "nlb-client.log"), c.Worker, clientUnitArgv(t, bin, copyPath)...)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("nlb client log:\n%s", p.Tail(60))
		}
	})
	admin := c.Worker.HTTPClient(5 * time.Second)
	status := func() (*Status, error) {
		var st Status
		if !p.Running() {
			return nil, nlbtest.Stop(fmt.Errorf("nlb client exited: %v", p.Err()))
		}
		return &st, nlbtest.GetJSON(ctx, admin, "http://"+unitAdmin+"/status", &st)
	}
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer wcancel()
	if err := nlbtest.Poll(wctx, 100*time.Millisecond, "nlb client: both API servers healthy", func() error {
		st, err := status()
		if err != nil {
			return err
		}
		return st.CheckHealthy(Upstreams(c.Controllers...)...)
	}); err != nil {
		t.Fatal(err)
	}

	// Step 4, and nlb kubeconfig.
	sh(t, readmeCommand(t, "sed ", map[string]string{kubeletConf: kubelet}))
	rewritten, err := os.ReadFile(kubelet)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Replace(string(orig), "server: "+c.Controllers[0].Server, "server: "+LocalServer, 1); string(rewritten) != want {
		t.Fatalf("step 4 wrote:\n%s\nwant only the server replaced:\n%s", rewritten, want)
	}
	viaCmd := filepath.Join(dir, "kubelet-nlb-kubeconfig.conf")
	if out, err := exec.Command(bin, "kubeconfig", "--in", copyPath, "--out", viaCmd).CombinedOutput(); err != nil {
		t.Fatalf("nlb kubeconfig: %v: %s", err, out)
	}

	for _, kc := range []string{kubelet, viaCmd} {
		cfg, err := clientcmd.BuildConfigFromFlags("", kc)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Host != LocalServer {
			t.Errorf("%s: server %q, want %s", filepath.Base(kc), cfg.Host, LocalServer)
		}
		cfg.Dial = c.Worker.Dialer(3 * time.Second)
		cfg.Timeout = 10 * time.Second
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		before, err := status()
		if err != nil {
			t.Fatal(err)
		}
		sl, err := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=kubernetes"})
		if err != nil {
			t.Fatalf("%s: list through nlb client: %v", filepath.Base(kc), err)
		}
		if len(sl.Items) == 0 {
			t.Errorf("%s: no EndpointSlice of default/kubernetes", filepath.Base(kc))
		}
		after, err := status()
		if err != nil {
			t.Fatal(err)
		}
		if after.APIServer.Total <= before.APIServer.Total {
			t.Errorf("%s: nlb client's API server connections %d before the list, %d after: it did not go through nlb client",
				filepath.Base(kc), before.APIServer.Total, after.APIServer.Total)
		}
	}
}

// sh runs a README command line with sh -c.
func sh(t *testing.T, cmd string) {
	t.Helper()
	if out, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, out)
	}
}
