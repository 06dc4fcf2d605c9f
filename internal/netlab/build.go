package netlab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildTimeout bounds one `go build` of the nlb binary.
const buildTimeout = 5 * time.Minute

// Build compiles ./cmd/nlb of the module the current directory belongs to
// (found with `go env GOMOD`) into dir and returns the binary's path. It is
// meant for a TestMain, the demo or a benchmark that builds once and runs the
// binary many times; tests use [BuildNLB].
func Build(ctx context.Context, dir string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("netlab: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("netlab: not inside a Go module")
	}
	bin := filepath.Join(dir, "nlb")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/nlb")
	cmd.Dir = filepath.Dir(gomod)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("netlab: go build ./cmd/nlb: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return bin, nil
}

// BuildNLB builds ./cmd/nlb into a directory removed when the test ends and
// returns the binary's path; it fails the test if the build fails. The Go
// build cache makes repeated calls cheap; a package that runs the binary in
// many tests can call [Build] once from TestMain instead.
func BuildNLB(t testing.TB) string {
	t.Helper()
	bin, err := Build(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}
