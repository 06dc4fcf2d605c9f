package k8slab

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAPIServerBinaryEnv: a binary named by APIServerEnv is used as it is,
// and the command is told so; a missing one is an error, not a build.
func TestAPIServerBinaryEnv(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kube-apiserver")
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(APIServerEnv, bin)
	var notes []string
	note := func(msg string) { notes = append(notes, msg) }
	got, err := APIServerBinary(context.Background(), note)
	if err != nil || got != bin {
		t.Fatalf("APIServerBinary = %q, %v, want %q", got, err, bin)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "$"+APIServerEnv) || !strings.Contains(notes[0], bin) {
		t.Errorf("notes = %q", notes)
	}

	t.Setenv(APIServerEnv, bin+".missing")
	if got, err := APIServerBinary(context.Background(), note); err == nil || !strings.Contains(err.Error(), APIServerEnv) {
		t.Errorf("APIServerBinary with a missing %s = %q, %v", APIServerEnv, got, err)
	}
}
