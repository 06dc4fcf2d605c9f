package k8slab

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
)

// APIServerT returns a kube-apiserver binary for a test, building it into
// DefaultCacheDir if needed (minutes from a cold cache, bounded by
// BuildTimeout). It calls netlab.Require first. When no binary can be had
// the test is skipped, or fails when netlab.PrivilegedEnv is "1".
func APIServerT(t testing.TB) string {
	t.Helper()
	netlab.Require(t)
	dir, err := DefaultCacheDir()
	if err != nil {
		unavailable(t, "%v", err)
	}
	start := time.Now()
	path, err := BuildAPIServer(context.Background(), dir)
	if err != nil {
		unavailable(t, "k8slab: no kube-apiserver: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Logf("k8slab: built %s in %v", path, d.Round(time.Second))
	}
	return path
}

// StartT starts a cluster for a test and closes it when the test ends;
// when the test has failed, it first logs the tail of every process's log.
// An empty opts.APIServer is filled by APIServerT. Without root, without
// etcd, or without an API server binary the test is skipped, or fails when
// netlab.PrivilegedEnv is "1".
func StartT(t testing.TB, opts Options) *Cluster {
	t.Helper()
	netlab.Require(t)
	if opts.APIServer == "" {
		opts.APIServer = APIServerT(t)
	}
	etcd := opts.Etcd
	if etcd == "" {
		etcd = "etcd"
	}
	if _, err := exec.LookPath(etcd); err != nil {
		unavailable(t, "k8slab: %s not found (install Debian's etcd-server): %v", etcd, err)
	}
	start := time.Now()
	c, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Logf("k8slab: etcd and %d API servers ready in %v (%s)", len(c.Controllers), time.Since(start).Round(10*time.Millisecond), c.Dir)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("k8slab: process logs:\n%s", c.Tails(40))
		}
		if err := c.Close(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return c
}

// unavailable skips the test, or fails it when privileged tests are
// required to run.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(netlab.PrivilegedEnv) == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}
