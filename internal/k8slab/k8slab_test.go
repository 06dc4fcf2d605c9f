package k8slab

import (
	"context"
	"net/netip"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestCluster starts etcd and three API servers, checks that the
// `kubernetes` EndpointSlice lists all three, that the worker identity can
// read what it was granted (and nothing more), that a SIGKILLed API server
// leaves the slice once its lease expires and returns when restarted, and
// that a blackholed one (link down) leaves and returns likewise.
func TestCluster(t *testing.T) {
	c := StartT(t, Options{Name: "k8slab"})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	// All three advertise themselves through their leases.
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	got, err := c.WaitAPIEndpoints(wctx, c.Controllers...)
	wcancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubernetes endpoints: %v", got)
	for _, ctl := range c.Controllers {
		if ctl.Addr.Is4() && !netip.MustParsePrefix("192.0.2.0/24").Contains(ctl.Addr) {
			t.Errorf("%s advertises %v, outside the lab segment", ctl.Name, ctl.Addr)
		}
	}

	// The worker identity, from the worker namespace, reads the slices and
	// the test namespace's ConfigMaps but may not read Secrets.
	wk, err := c.Client(Worker, c.Worker, c.Controllers[1].Server)
	if err != nil {
		t.Fatal(err)
	}
	if eps, err := KubernetesEndpoints(ctx, wk); err != nil || len(eps) != len(c.Controllers) {
		t.Errorf("worker lists kubernetes endpoints %v, %v; want %d", eps, err, len(c.Controllers))
	}
	if _, err := wk.CoreV1().ConfigMaps(TestNamespace).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("worker lists configmaps in %s: %v", TestNamespace, err)
	}
	if _, err := wk.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); err == nil {
		t.Errorf("worker may list secrets in default; want forbidden")
	}
	// The worker kubeconfig names files that exist, for programs run in
	// the worker namespace.
	if _, err := c.WorkerKubeconfig(c.Controllers[0].Server); err != nil {
		t.Fatal(err)
	}

	// A crashed API server's lease expires (15 s TTL) and the next
	// reconcile (every 10 s) of a live one drops it.
	victim := c.Controllers[2]
	start := time.Now()
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel = context.WithTimeout(ctx, 45*time.Second)
	got, err = c.WaitAPIEndpoints(wctx, c.Controllers[:2]...)
	wcancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGKILL of %s: endpoints %v after %v", victim.Name, got, time.Since(start).Round(100*time.Millisecond))

	// Started again, it comes back.
	start = time.Now()
	if err := victim.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel = context.WithTimeout(ctx, 30*time.Second)
	got, err = c.WaitAPIEndpoints(wctx, c.Controllers...)
	wcancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restart of %s: endpoints %v after %v", victim.Name, got, time.Since(start).Round(100*time.Millisecond))

	// A blackholed one (link down: it loses etcd too) can no longer renew
	// its lease and leaves as well; with the link back it returns.
	victim = c.Controllers[0]
	start = time.Now()
	if err := victim.Host.LinkDown(); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel = context.WithTimeout(ctx, 45*time.Second)
	got, err = c.WaitAPIEndpoints(wctx, c.Controllers[1:]...)
	wcancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("link down of %s: endpoints %v after %v", victim.Name, got, time.Since(start).Round(100*time.Millisecond))
	start = time.Now()
	if err := victim.Host.LinkUp(); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel = context.WithTimeout(ctx, 45*time.Second)
	got, err = c.WaitAPIEndpoints(wctx, c.Controllers...)
	wcancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("link up of %s: endpoints %v after %v", victim.Name, got, time.Since(start).Round(100*time.Millisecond))
}
