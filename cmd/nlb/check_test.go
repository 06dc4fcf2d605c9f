package main

import (
	"bytes"
	"context"
	"errors"
	"io"
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
			if strings.HasPrefix(filepath.Base(f), "nllb-") {
				// Valid, but for nlb client: no CPLB section, so
				// nothing for nlb vrrp to run, and --check says so
				// as the run would.
				if code == 0 || !strings.Contains(stderr, "vrrp: config: nothing to run: ") {
					t.Fatalf("exit %d, want non-zero with \"nothing to run\"\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
				}
				return
			}
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

// TestCheckAgreesWithRun: for a valid file with nothing to run, nlb vrrp
// and nlb controller fail with --check exactly as without it, with one
// message saying why (issue 10, item 6). Neither gets as far as any OS
// effect, so this needs no privileges.
func TestCheckAgreesWithRun(t *testing.T) {
	inst := "keepalived: {vrrpInstances: [{virtualIPs: [192.0.2.100/24], authPass: x}]}"
	for _, tc := range []struct{ name, doc, want string }{
		{"k0sctl without CPLB", "apiVersion: k0sctl.k0sproject.io/v1beta1\nkind: Cluster\nspec:\n  hosts: []\n  k0s:\n    config:\n      spec:\n        network: {provider: calico}\n",
			"config: nothing to run: spec.k0s.config.spec.network.controlPlaneLoadBalancing is missing;"},
		{"k0sctl spec null", "apiVersion: k0sctl.k0sproject.io/v1beta1\nkind: Cluster\nspec: null\n",
			"config: nothing to run: spec.k0s.config.spec.network.controlPlaneLoadBalancing is missing (spec is null);"},
		{"enabled false", "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec:\n  network:\n    controlPlaneLoadBalancing: {enabled: false, " + inst + "}\n",
			"config: nothing to run: spec.network.controlPlaneLoadBalancing.enabled is false: k0s runs no control plane load balancing with this configuration;"},
		{"no instances", "enabled: true\nkeepalived: {vrrpInstances: []}\n",
			"config: nothing to run: keepalived.vrrpInstances is empty: there is no VRRP instance to run;"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "k0s.yaml")
			if err := os.WriteFile(f, []byte(tc.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				name string
				run  func(context.Context, []string, io.Writer, io.Writer) error
			}{{"vrrp", runVRRP}, {"controller", runController}} {
				var checkOut, runOut bytes.Buffer
				// --admin off: should the run get past the check, it
				// must not bind the default admin port.
				checkErr := c.run(context.Background(), []string{"--check", "--config", f}, &checkOut, &checkOut)
				runErr := c.run(context.Background(), []string{"--config", f, "--admin", ""}, &runOut, &runOut)
				if checkErr == nil || runErr == nil {
					t.Fatalf("%s: --check error %v, run error %v; want both to fail\n%s%s", c.name, checkErr, runErr, &checkOut, &runOut)
				}
				if checkErr.Error() != runErr.Error() {
					t.Errorf("%s: --check and the run disagree:\n--check: %v\nrun:     %v", c.name, checkErr, runErr)
				}
				if want := c.name + ": " + tc.want; !strings.HasPrefix(checkErr.Error(), want) {
					t.Errorf("%s: error\n %v\nwant it to start with\n %s", c.name, checkErr, want)
				}
				if strings.Contains(checkOut.String(), "valid") || strings.Contains(checkOut.String(), "steered") {
					t.Errorf("%s --check printed a plan for a file with nothing to run:\n%s", c.name, &checkOut)
				}
			}
		})
	}
}
