package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nlb-dev/nlb/lb/k8s"
)

// TestKubeconfigRewrite: `nlb kubeconfig` replaces only the current
// cluster's server, keeps every other cluster, context and credential, and
// writes the file with mode 0600.
func TestKubeconfigRewrite(t *testing.T) {
	ca := newTestCA(t, "kubernetes-ca")
	_, certPEM, keyPEM := ca.issue(t, "system:node:worker", true)
	dir := t.TempDir()
	in := filepath.Join(dir, "kubelet.conf")
	writeKubeconfig(t, in, "https://192.0.2.10:6443", ca.CertPEM, certPEM, keyPEM)

	for _, tc := range []struct{ server, want string }{
		{"", "https://127.0.0.1:7443"},
		{"https://[::1]:7443", "https://[::1]:7443"},
		{"127.0.0.1:7444", "https://127.0.0.1:7444"},
	} {
		out := filepath.Join(dir, "nllb", "kubeconfig.yaml")
		os.MkdirAll(filepath.Dir(out), 0o700)
		args := []string{"--in", in, "--out", out}
		if tc.server != "" {
			args = append(args, "--server", tc.server)
		}
		var stdout, stderr bytes.Buffer
		if err := runKubeconfig(context.Background(), args, &stdout, &stderr); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, stderr.String())
		}
		st, err := os.Stat(out)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", st.Mode().Perm())
		}
		a, err := k8s.LoadKubeconfig(in)
		if err != nil {
			t.Fatal(err)
		}
		b, err := k8s.LoadKubeconfig(out)
		if err != nil {
			t.Fatal(err)
		}
		if s, _ := b.Server(); s != tc.want {
			t.Errorf("--server %q: server %q, want %q", tc.server, s, tc.want)
		}
		if a.Config.CurrentContext != b.Config.CurrentContext || len(a.Config.Clusters) != len(b.Config.Clusters) ||
			len(a.Config.Contexts) != len(b.Config.Contexts) || len(a.Config.AuthInfos) != len(b.Config.AuthInfos) {
			t.Fatalf("structure changed: %+v vs %+v", a.Config, b.Config)
		}
		for name, ac := range a.Config.Clusters {
			bc := b.Config.Clusters[name]
			if bc == nil {
				t.Fatalf("cluster %s lost", name)
			}
			wantServer := ac.Server
			if name == a.ClusterName {
				wantServer = tc.want
			}
			if bc.Server != wantServer || !bytes.Equal(ac.CertificateAuthorityData, bc.CertificateAuthorityData) ||
				ac.InsecureSkipTLSVerify != bc.InsecureSkipTLSVerify {
				t.Errorf("cluster %s: %+v, want %+v with server %s", name, bc, ac, wantServer)
			}
		}
		for name, au := range a.Config.AuthInfos {
			bu := b.Config.AuthInfos[name]
			if bu == nil || !bytes.Equal(au.ClientCertificateData, bu.ClientCertificateData) ||
				!bytes.Equal(au.ClientKeyData, bu.ClientKeyData) {
				t.Errorf("user %s changed", name)
			}
		}
		for name, ac := range a.Config.Contexts {
			bc := b.Config.Contexts[name]
			if bc == nil || bc.Cluster != ac.Cluster || bc.AuthInfo != ac.AuthInfo {
				t.Errorf("context %s changed", name)
			}
		}
		// No temporary file is left behind.
		ents, _ := os.ReadDir(filepath.Dir(out))
		if len(ents) != 1 {
			t.Errorf("files next to the output: %v", ents)
		}
	}

	var stdout, stderr bytes.Buffer
	if err := runKubeconfig(context.Background(), []string{"--in", in, "--out", "-"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "server: https://127.0.0.1:7443") {
		t.Errorf("--out -: %s", stdout.String())
	}
	for _, args := range [][]string{
		{"--in", in},
		{"--in", in, "--out", "-", "--server", "http://127.0.0.1:7443"},
		{"--in", filepath.Join(dir, "missing"), "--out", "-"},
	} {
		if err := runKubeconfig(context.Background(), args, &stdout, &stderr); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

// TestKubeconfigFlagErrors: flags that cannot work are refused with an
// error naming the flag and the problem, before anything is read or
// written (issue 10, items 5 and 7).
func TestKubeconfigFlagErrors(t *testing.T) {
	ca := newTestCA(t, "kubernetes-ca")
	_, certPEM, keyPEM := ca.issue(t, "system:node:worker", true)
	dir := t.TempDir()
	in := filepath.Join(dir, "kubelet.conf")
	writeKubeconfig(t, in, "https://192.0.2.10:6443", ca.CertPEM, certPEM, keyPEM)
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--server", "https://127.0.0.1:99999"}, `kubeconfig: --server: "https://127.0.0.1:99999": the port must be between 1 and 65535, got "99999"`},
		{[]string{"--server", "https://127.0.0.1:0"}, `the port must be between 1 and 65535, got "0"`},
		{[]string{"--server", "https://127.0.0.1:"}, `the port must be between 1 and 65535, got ""`},
		{[]string{"--server", "127.0.0.1:65536"}, `kubeconfig: --server: "127.0.0.1:65536": the port must be between 1 and 65535`},
		{[]string{"--server", "127.0.0.1:https"}, `the port must be between 1 and 65535, got "https"`},
		{[]string{"--server", ":7443"}, `is neither an https://host:port URL nor host:port`},
		{[]string{"--server", "http://127.0.0.1:7443"}, `is not an https://host:port URL`},
		{[]string{"--server", "https://user:pw@127.0.0.1:7443"}, `without user, query or fragment`},
		{[]string{"--server", "https://127.0.0.1:7443/?x=1"}, `without user, query or fragment`},
		{[]string{"--out", dir}, "kubeconfig: --out: " + dir + " is a directory; want a file name"},
		{[]string{"--out", filepath.Join(dir, "missing", "kubeconfig")}, "kubeconfig: --out: " + filepath.Join(dir, "missing", "kubeconfig") + ": directory " + filepath.Join(dir, "missing") + " does not exist"},
		{[]string{"--out", filepath.Join(notDir, "kubeconfig")}, "is not a directory"},
		{[]string{"--in", "/dev/zero"}, "kubeconfig: k8s: kubeconfig: /dev/zero is larger than 4 MiB"},
	} {
		args := append([]string{"--in", in, "--out", filepath.Join(dir, "out.yaml")}, tc.args...)
		var stdout, stderr bytes.Buffer
		err := runKubeconfig(context.Background(), args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.args, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out.yaml")); err == nil {
		t.Error("a refused command wrote its output")
	}
	// Good ones still pass: no port means 443, a path prefix is kept.
	for _, server := range []string{"https://127.0.0.1", "https://127.0.0.1:65535/prefix", "127.0.0.1:1", "[::1]:7443"} {
		var stdout, stderr bytes.Buffer
		if err := runKubeconfig(context.Background(), []string{"--in", in, "--out", "-", "--server", server}, &stdout, &stderr); err != nil {
			t.Errorf("--server %s: %v", server, err)
		}
	}
}
