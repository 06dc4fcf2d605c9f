package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
)

// nlbBuild builds the nlb binary once per test binary run.
var nlbBuild struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if nlbBuild.dir != "" {
		os.RemoveAll(nlbBuild.dir)
	}
	os.Exit(code)
}

// nlbBinary returns the path of the nlb binary built from this module.
func nlbBinary(t testing.TB) string {
	t.Helper()
	nlbBuild.once.Do(func() {
		nlbBuild.dir, nlbBuild.err = os.MkdirTemp("", "nlb-cmd-test-")
		if nlbBuild.err != nil {
			return
		}
		nlbBuild.bin, nlbBuild.err = netlab.Build(context.Background(), nlbBuild.dir)
	})
	if nlbBuild.err != nil {
		t.Fatalf("build nlb: %v", nlbBuild.err)
	}
	return nlbBuild.bin
}

// checkTimeout bounds one `nlb vrrp --check` run.
const checkTimeout = 30 * time.Second

// runCheck runs `nlb vrrp --check --config path` and returns its exit code,
// stdout and stderr.
func runCheck(t *testing.T, bin, path string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "vrrp", "--check", "--config", path)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		code = ee.ExitCode()
	default:
		t.Fatalf("nlb vrrp --check --config %s: %v\n%s", path, err, errb.String())
	}
	return code, out.String(), errb.String()
}

// readPaths reads an .err file: the expected field paths, one per line;
// # starts a comment (as config's own tests read them).
func readPaths(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for l := range strings.SplitSeq(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// problemPath matches the path of one "config: <path>: <message>" line.
var problemPath = regexp.MustCompile(`(?m)config: ([A-Za-z0-9_.\[\]-]+): `)

// TestCheckConfigs runs `nlb vrrp --check` on the configuration corpus
// shared with package config: every valid file exits 0 and says it is
// valid; every invalid file exits non-zero, and its stderr names exactly
// the field paths of the .err file next to it. It needs no privileges.
func TestCheckConfigs(t *testing.T) {
	bin := nlbBinary(t)
	root := filepath.Join("..", "..", "testdata", "config")
	valid, err := filepath.Glob(filepath.Join(root, "valid", "*.yaml"))
	if err != nil || len(valid) == 0 {
		t.Fatalf("no valid configurations under %s: %v", root, err)
	}
	invalid, err := filepath.Glob(filepath.Join(root, "invalid", "*.yaml"))
	if err != nil || len(invalid) == 0 {
		t.Fatalf("no invalid configurations under %s: %v", root, err)
	}
	for _, f := range valid {
		t.Run("valid/"+filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runCheck(t, bin, f)
			if code != 0 {
				t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			if !strings.Contains(stdout, f+": valid") {
				t.Errorf("stdout does not say %q is valid:\n%s", f, stdout)
			}
		})
	}
	for _, f := range invalid {
		t.Run("invalid/"+filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			want := readPaths(t, strings.TrimSuffix(f, ".yaml")+".err")
			code, stdout, stderr := runCheck(t, bin, f)
			if code == 0 {
				t.Fatalf("exit 0, want non-zero\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
			}
			for _, p := range want {
				if !strings.Contains(stderr, "config: "+p+": ") {
					t.Errorf("stderr does not name %s:\n%s", p, stderr)
				}
			}
			var got []string
			for _, m := range problemPath.FindAllStringSubmatch(stderr, -1) {
				got = append(got, m[1])
			}
			slices.Sort(got)
			want = slices.Clone(want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("stderr names paths %q, want %q:\n%s", got, want, stderr)
			}
		})
	}
}
