package k8s

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestNoKubernetesLibraries guards the memory of `nlb client`: this package
// links neither client-go nor apimachinery (nor klog, protobuf, CBOR...),
// whose package initialisation and code were most of the resident memory
// of a client on every worker. It needs the go command.
func TestNoKubernetesLibraries(t *testing.T) {
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goCmd, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "k8s.io/") || strings.Contains(p, "protobuf") || strings.Contains(p, "cbor") ||
			strings.Contains(p, "json-iterator") || p == "sigs.k8s.io/json" {
			t.Errorf("lb/k8s depends on %s", p)
		}
	}
}
