package k8slab

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestBuildOnce: two builds of the same binary into one directory at the
// same time (two test packages on a cold cache) run the build once: the
// second waits for the first's lock and then finds its binary. The order
// is forced by events: the second starts while the first is inside its
// build, and the first finishes only once the second waits for the lock
// (or has, wrongly, started a build of its own).
func TestBuildOnce(t *testing.T) {
	dir := t.TempDir()
	var builds atomic.Int32
	inFirst, release := make(chan struct{}), make(chan struct{})
	secondBuilt, secondWaits := make(chan struct{}), make(chan struct{})
	fake := func(ctx context.Context, out string) error {
		switch builds.Add(1) {
		case 1:
			close(inFirst)
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		case 2:
			close(secondBuilt)
		}
		return os.WriteFile(out, []byte("binary"), 0o755)
	}
	type result struct {
		path string
		err  error
	}
	first, second := make(chan result, 1), make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() {
		p, err := builder{dir: dir, key: "k1", build: fake}.run(ctx)
		first <- result{p, err}
	}()
	select {
	case <-inFirst:
	case <-ctx.Done():
		t.Fatal("the first build never started")
	}
	go func() {
		b := builder{dir: dir, key: "k1", build: fake, waiting: func() { close(secondWaits) }}
		p, err := b.run(ctx)
		second <- result{p, err}
	}()
	select {
	case <-secondWaits:
	case <-secondBuilt:
		t.Error("the second build ran while the first was building")
	case <-ctx.Done():
		t.Fatal("the second build neither waited nor built")
	}
	close(release)
	r1, r2 := <-first, <-second
	if r1.err != nil || r2.err != nil {
		t.Fatalf("builds: %v, %v", r1.err, r2.err)
	}
	want := filepath.Join(dir, apiServerPrefix+"k1")
	if r1.path != want || r2.path != want {
		t.Errorf("paths %q and %q, want %q", r1.path, r2.path, want)
	}
	if n := builds.Load(); n != 1 {
		t.Errorf("%d builds, want 1", n)
	}

	// A later key rebuilds once and removes the old binary; a failed
	// build leaves nothing behind and does not hold the lock.
	p, err := builder{dir: dir, key: "k2", build: fake}.run(ctx)
	if err != nil || p != filepath.Join(dir, apiServerPrefix+"k2") {
		t.Fatalf("k2: %q, %v", p, err)
	}
	if _, err := os.Stat(want); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the k1 binary is still there: %v", err)
	}
	boom := errors.New("boom")
	if _, err := (builder{dir: dir, key: "k3", build: func(context.Context, string) error { return boom }}).run(ctx); !errors.Is(err, boom) {
		t.Errorf("failed build: %v, want %v", err, boom)
	}
	left, _ := filepath.Glob(filepath.Join(dir, apiServerPrefix+"*"))
	if len(left) != 1 {
		t.Errorf("binaries left %v, want only k2's", left)
	}
	if n := builds.Load(); n != 2 {
		t.Errorf("%d builds in all, want 2", n)
	}
}

// TestBuildAPIServerEnv: the path in APIServerEnv is used as it is (make
// builds the binary once before the tests), and a missing file is an error
// naming the variable.
func TestBuildAPIServerEnv(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kube-apiserver")
	if err := os.WriteFile(bin, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(APIServerEnv, bin)
	dir := filepath.Join(t.TempDir(), "cache")
	if p, err := BuildAPIServer(context.Background(), dir); err != nil || p != bin {
		t.Errorf("BuildAPIServer: %q, %v, want %q", p, err, bin)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cache directory was touched: %v", err)
	}
	t.Setenv(APIServerEnv, bin+".missing")
	if _, err := BuildAPIServer(context.Background(), dir); err == nil {
		t.Errorf("missing %s: no error", APIServerEnv)
	}
}
