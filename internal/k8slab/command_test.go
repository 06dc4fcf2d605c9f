package k8slab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAPIServerBinaryEnv: a binary named by APIServerEnv is used as it is;
// a missing one is an error, not a build.
func TestAPIServerBinaryEnv(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kube-apiserver")
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(APIServerEnv, bin)
	if got, err := APIServerBinary(context.Background()); err != nil || got != bin {
		t.Fatalf("APIServerBinary = %q, %v, want %q", got, err, bin)
	}
	t.Setenv(APIServerEnv, bin+".missing")
	if got, err := APIServerBinary(context.Background()); err == nil || !strings.Contains(err.Error(), APIServerEnv) {
		t.Errorf("APIServerBinary with a missing %s = %q, %v", APIServerEnv, got, err)
	}
}
