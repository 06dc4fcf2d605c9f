package k8s

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/nlb-dev/nlb/input"
)

// TestKubeconfigBounded: a kubeconfig or token file that never ends
// (/dev/zero) is refused promptly with the size error, not read until
// memory runs out.
func TestKubeconfigBounded(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	var tl *input.TooLargeError
	_, err := LoadKubeconfig("/dev/zero")
	if !errors.As(err, &tl) || err.Error() != "k8s: kubeconfig: /dev/zero is larger than 4 MiB" {
		t.Errorf("kubeconfig /dev/zero: %v", err)
	}
	path := writeFile(t, t.TempDir(), "kubeconfig", []byte(`apiVersion: v1
kind: Config
current-context: c
clusters:
- name: k0s
  cluster: {server: "https://api.example.com:6443"}
contexts:
- name: c
  context: {cluster: k0s, user: u}
users:
- name: u
  user: {tokenFile: /dev/zero}
`))
	k, err := LoadKubeconfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.RESTConfig(); !errors.As(err, &tl) || !strings.HasSuffix(err.Error(), ": /dev/zero is larger than 1 MiB") {
		t.Errorf("tokenFile /dev/zero: %v", err)
	}
}
