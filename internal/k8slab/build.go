package k8slab

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// BuildTimeout bounds one build of the API server. A build from a cold
// module and build cache takes several minutes on two cores.
const BuildTimeout = 30 * time.Minute

// APIServerEnv names an environment variable that, when set, gives the path
// of a kube-apiserver binary to use instead of building one.
const APIServerEnv = "NLB_KUBE_APISERVER"

// DefaultCacheDir returns the directory BuildAPIServer keeps its binaries in
// between runs: nlb-e2e under the user's cache directory.
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("k8slab: cache directory: %w", err)
	}
	return filepath.Join(d, "nlb-e2e"), nil
}

// BuildAPIServer returns the path of a kube-apiserver binary built from the
// e2e module of the repository the current directory belongs to (found with
// `go env GOMOD`). The binary is named after a hash of the e2e module's
// go.mod, go.sum and main.go and of the Go version, and is built into dir
// only when no binary of that name is there yet, so repeated test runs reuse
// it; binaries of other keys in dir are removed after a successful build.
// Builds into dir are serialized by a lock file there (flock), so that test
// packages running in parallel never build it twice at once: the second
// waits and finds the first's binary. The build is bounded by
// BuildTimeout, the wait for another's build by twice that. When
// APIServerEnv is set, its value is returned without building (`make unit`
// builds it once beforehand and sets it).
func BuildAPIServer(ctx context.Context, dir string) (string, error) {
	if p := os.Getenv(APIServerEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("k8slab: %s: %w", APIServerEnv, err)
		}
		return p, nil
	}
	e2e, goVersion, err := e2eModule(ctx)
	if err != nil {
		return "", err
	}
	key, err := buildKey(e2e, goVersion)
	if err != nil {
		return "", err
	}
	b := builder{dir: dir, key: key, build: func(ctx context.Context, out string) error {
		cmd := exec.CommandContext(ctx, "go", "build", "-mod=readonly", "-trimpath", "-buildvcs=false",
			"-o", out, "./kube-apiserver")
		cmd.Dir = e2e
		cmd.Env = append(os.Environ(), "GOWORK=off")
		cmd.WaitDelay = 10 * time.Second
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build kube-apiserver in %s: %w\n%s", e2e, err, tail(log.String(), 40))
		}
		return nil
	}}
	return b.run(ctx)
}

// apiServerPrefix begins the name of every binary BuildAPIServer keeps.
const apiServerPrefix = "kube-apiserver-"

// lockPoll is how often a builder retries a lock another one holds.
const lockPoll = 200 * time.Millisecond

// builder builds one binary, named after key, into dir at most once at a
// time across processes.
type builder struct {
	dir, key string
	// build writes the binary to out (a temporary name in dir).
	build func(ctx context.Context, out string) error
	// waiting, if set, is called once when the lock is held by another
	// build (for tests).
	waiting func()
}

// run returns the binary, building it under dir's lock if it is missing.
func (b builder) run(ctx context.Context) (string, error) {
	out := filepath.Join(b.dir, apiServerPrefix+b.key)
	if fi, err := os.Stat(out); err == nil && fi.Mode().IsRegular() {
		return out, nil
	}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return "", fmt.Errorf("k8slab: %w", err)
	}
	lctx, lcancel := context.WithTimeout(ctx, 2*BuildTimeout)
	unlock, err := lockFile(lctx, filepath.Join(b.dir, ".build.lock"), b.waiting)
	lcancel()
	if err != nil {
		return "", fmt.Errorf("k8slab: waiting for another build of kube-apiserver in %s: %w", b.dir, err)
	}
	defer unlock()
	// Another process may have built it while this one waited.
	if fi, err := os.Stat(out); err == nil && fi.Mode().IsRegular() {
		return out, nil
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	tmp := out + ".tmp" + hex.EncodeToString(suffix[:])
	defer os.Remove(tmp)

	bctx, cancel := context.WithTimeout(ctx, BuildTimeout)
	defer cancel()
	start := time.Now()
	if err := b.build(bctx, tmp); err != nil {
		if bctx.Err() != nil {
			err = fmt.Errorf("%w (after %v): %w", bctx.Err(), time.Since(start).Round(time.Second), err)
		}
		return "", fmt.Errorf("k8slab: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("k8slab: %w", err)
	}
	// Older binaries are 100+ MB each; keep only the current one.
	if old, err := filepath.Glob(filepath.Join(b.dir, apiServerPrefix+"*")); err == nil {
		for _, o := range old {
			if o != out && !strings.Contains(filepath.Base(o), ".tmp") {
				_ = os.Remove(o)
			}
		}
	}
	return out, nil
}

// e2eModule returns the directory of the e2e module and the Go version.
func e2eModule(ctx context.Context) (dir, goVersion string, err error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD", "GOVERSION").Output()
	if err != nil {
		return "", "", fmt.Errorf("k8slab: go env: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || lines[0] == "" || lines[0] == os.DevNull {
		return "", "", errors.New("k8slab: not inside the nlb module (go env GOMOD is empty)")
	}
	dir = filepath.Join(filepath.Dir(lines[0]), "e2e")
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", "", fmt.Errorf("k8slab: e2e module: %w", err)
	}
	return dir, lines[1], nil
}

// buildKey hashes what decides the binary's content.
func buildKey(e2e, goVersion string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", goVersion)
	for _, f := range []string{"go.mod", "go.sum", filepath.Join("kube-apiserver", "main.go")} {
		b, err := os.ReadFile(filepath.Join(e2e, f))
		if err != nil {
			return "", fmt.Errorf("k8slab: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
