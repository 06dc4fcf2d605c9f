package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestBinaryLinksNoKubernetesLibraries guards the resident memory of every
// nlb command, `nlb client` on every worker first: the binary links no
// k8s.io module (client-go, apimachinery, api, klog) nor their serializers,
// whose package initialisation alone kept megabytes of the binary resident
// (bench/README.md, client section). Tests and labs may use them.
func TestBinaryLinksNoKubernetesLibraries(t *testing.T) {
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goCmd, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "k8s.io/") || strings.Contains(p, "cbor") || strings.Contains(p, "json-iterator") ||
			strings.Contains(p, "gogo/protobuf") || p == "sigs.k8s.io/json" {
			t.Errorf("nlb links %s", p)
		}
	}
}
