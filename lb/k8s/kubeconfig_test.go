package k8s

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nlb-dev/nlb/internal/nlbtest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// pki is a CA with a server and a client certificate, PEM encoded.
type pki struct {
	caPEM, serverPEM, serverKeyPEM, clientPEM, clientKeyPEM []byte
	server                                                  *x509.Certificate
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	ca, err := nlbtest.NewCA("nlb test CA")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.Server("kube-apiserver", nil, net.ParseIP("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Client("nlb")
	if err != nil {
		t.Fatal(err)
	}
	return &pki{
		caPEM: ca.CertPEM, serverPEM: server.CertPEM, serverKeyPEM: server.KeyPEM,
		clientPEM: client.CertPEM, clientKeyPEM: client.KeyPEM, server: server.Cert,
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// writeFile writes a file in dir and returns its path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// embeddedKubeconfig has two clusters, users and contexts, with data
// embedded; the current context is "nlb".
func embeddedKubeconfig(p *pki) string {
	return `apiVersion: v1
kind: Config
current-context: nlb
clusters:
- name: k0s
  cluster:
    server: https://192.0.2.10:6443
    certificate-authority-data: ` + b64(p.caPEM) + `
    tls-server-name: kubernetes.default.svc
- name: other
  cluster:
    server: https://198.51.100.1:6443
    insecure-skip-tls-verify: true
contexts:
- name: nlb
  context:
    cluster: k0s
    user: nlb
    namespace: kube-system
- name: other
  context:
    cluster: other
    user: token
users:
- name: nlb
  user:
    client-certificate-data: ` + b64(p.clientPEM) + `
    client-key-data: ` + b64(p.clientKeyPEM) + `
- name: token
  user:
    token: abc123
preferences: {}
`
}

func TestKubeconfigEmbedded(t *testing.T) {
	p := newPKI(t)
	path := writeFile(t, t.TempDir(), "kubeconfig", []byte(embeddedKubeconfig(p)))
	k, err := LoadKubeconfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if k.Context != "nlb" || k.ClusterName != "k0s" || k.Path != path {
		t.Errorf("context %q, cluster %q, path %q", k.Context, k.ClusterName, k.Path)
	}
	if s, err := k.Server(); err != nil || s != "https://192.0.2.10:6443" {
		t.Errorf("Server() = %q, %v", s, err)
	}
	checkCA(t, k, p)
	checkClientCert(t, k, p)

	rc, err := k.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	if rc.Host != "https://192.0.2.10:6443" || !bytes.Equal(rc.CAData, p.caPEM) ||
		!bytes.Equal(rc.CertData, p.clientPEM) || !bytes.Equal(rc.KeyData, p.clientKeyPEM) ||
		rc.ServerName != "kubernetes.default.svc" || rc.BearerToken != "" {
		t.Errorf("RESTConfig() = %+v", rc)
	}
	api, err := NewAPI(rc)
	if err != nil || api == nil {
		t.Errorf("NewAPI = %v, %v", api, err)
	}
	if _, err := NewAPI(nil); err == nil {
		t.Error("NewAPI(nil) succeeded")
	}
}

func checkCA(t *testing.T, k *Kubeconfig, p *pki) {
	t.Helper()
	pool, err := k.CAPool()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.server.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
		t.Errorf("server certificate does not verify against CAPool(): %v", err)
	}
}

func checkClientCert(t *testing.T, k *Kubeconfig, p *pki) {
	t.Helper()
	cert, err := k.ClientCertificate()
	if err != nil {
		t.Fatal(err)
	}
	if cert == nil || len(cert.Certificate) != 1 {
		t.Fatalf("ClientCertificate() = %v", cert)
	}
	block, _ := pem.Decode(p.clientPEM)
	if !bytes.Equal(cert.Certificate[0], block.Bytes) {
		t.Error("ClientCertificate() returned another certificate")
	}
}

// TestKubeconfigFiles reads certificates from files named relative to the
// kubeconfig, as clientcmd resolves them.
func TestKubeconfigFiles(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "pki"), 0o700); err != nil {
		t.Fatal(err)
	}
	ca := writeFile(t, dir, "pki/ca.crt", p.caPEM)
	writeFile(t, dir, "pki/nlb.crt", p.clientPEM)
	writeFile(t, dir, "pki/nlb.key", p.clientKeyPEM)
	path := writeFile(t, dir, "kubeconfig", []byte(`apiVersion: v1
kind: Config
current-context: c
clusters:
- name: k0s
  cluster:
    server: https://[2001:db8::10]:6443
    certificate-authority: pki/ca.crt
contexts:
- name: c
  context: {cluster: k0s, user: u}
users:
- name: u
  user:
    client-certificate: pki/nlb.crt
    client-key: pki/nlb.key
`))
	k, err := LoadKubeconfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := k.Server(); s != "https://[2001:db8::10]:6443" {
		t.Errorf("Server() = %q", s)
	}
	checkCA(t, k, p)
	checkClientCert(t, k, p)
	rc, err := k.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	if rc.CAFile != ca || rc.CertFile != filepath.Join(dir, "pki/nlb.crt") {
		t.Errorf("RESTConfig files %q, %q", rc.CAFile, rc.CertFile)
	}

	// The copy names the same files by absolute paths, so it works from
	// another directory.
	y, err := k.WithServer("https://127.0.0.1:7443")
	if err != nil {
		t.Fatal(err)
	}
	copyPath := writeFile(t, t.TempDir(), "kubeconfig", y)
	k2, err := LoadKubeconfig(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := k2.Server(); s != "https://127.0.0.1:7443" {
		t.Errorf("copy's Server() = %q", s)
	}
	checkCA(t, k2, p)
	checkClientCert(t, k2, p)
}

func TestKubeconfigTokenNoCA(t *testing.T) {
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
  user: {token: abc123}
`))
	k, err := LoadKubeconfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if pool, err := k.CAPool(); pool != nil || err != nil {
		t.Errorf("CAPool() = %v, %v; want nil, nil", pool, err)
	}
	if cert, err := k.ClientCertificate(); cert != nil || err != nil {
		t.Errorf("ClientCertificate() = %v, %v; want nil, nil", cert, err)
	}
	rc, err := k.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	if rc.BearerToken != "abc123" {
		t.Errorf("BearerToken %q", rc.BearerToken)
	}
}

func TestKubeconfigErrors(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	cluster := func(extra string) string {
		return `apiVersion: v1
kind: Config
current-context: c
clusters:
- name: k0s
  cluster:
    server: https://192.0.2.10:6443
` + extra + `
contexts:
- name: c
  context: {cluster: k0s, user: u}
`
	}
	for _, tc := range []struct {
		name, yaml string
		call       func(*Kubeconfig) error
	}{
		{"no current context", "apiVersion: v1\nkind: Config\n", nil},
		{"unknown context", "apiVersion: v1\nkind: Config\ncurrent-context: x\n", nil},
		{"unknown cluster", "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {cluster: x}\n", nil},
		{"not YAML", "{{{", nil},
		{"no server", strings.Replace(cluster(""), "    server: https://192.0.2.10:6443\n", "    insecure-skip-tls-verify: true\n", 1),
			func(k *Kubeconfig) error { _, err := k.Server(); return err }},
		{"bad CA data", cluster("    certificate-authority-data: " + b64([]byte("junk"))),
			func(k *Kubeconfig) error { _, err := k.CAPool(); return err }},
		{"missing CA file", cluster("    certificate-authority: " + filepath.Join(dir, "missing.crt")),
			func(k *Kubeconfig) error { _, err := k.CAPool(); return err }},
		{"certificate without key", cluster("") + "users:\n- name: u\n  user:\n    client-certificate-data: " + b64(p.clientPEM) + "\n",
			func(k *Kubeconfig) error { _, err := k.ClientCertificate(); return err }},
		{"key without certificate", cluster("") + "users:\n- name: u\n  user:\n    client-key-data: " + b64(p.clientKeyPEM) + "\n",
			func(k *Kubeconfig) error { _, err := k.ClientCertificate(); return err }},
		{"mismatched key", cluster("") + "users:\n- name: u\n  user:\n    client-certificate-data: " + b64(p.caPEM) +
			"\n    client-key-data: " + b64(p.clientKeyPEM) + "\n",
			func(k *Kubeconfig) error { _, err := k.ClientCertificate(); return err }},
		{"missing key file", cluster("") + "users:\n- name: u\n  user:\n    client-certificate-data: " + b64(p.clientPEM) +
			"\n    client-key: " + filepath.Join(dir, "missing.key") + "\n",
			func(k *Kubeconfig) error { _, err := k.ClientCertificate(); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, dir, strings.ReplaceAll(tc.name, " ", "_"), []byte(tc.yaml))
			k, err := LoadKubeconfig(path)
			if tc.call != nil {
				if err != nil {
					t.Fatal(err)
				}
				err = tc.call(k)
			}
			if err == nil || !strings.HasPrefix(err.Error(), "k8s: ") {
				t.Errorf("error %v, want a k8s: error", err)
			}
		})
	}
	if _, err := LoadKubeconfig(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file was accepted")
	}
}

// stripOrigins clears what clientcmd records about where each entry came
// from, which is not written to files.
func stripOrigins(c *clientcmdapi.Config) {
	for _, v := range c.Clusters {
		v.LocationOfOrigin = ""
	}
	for _, v := range c.AuthInfos {
		v.LocationOfOrigin = ""
	}
	for _, v := range c.Contexts {
		v.LocationOfOrigin = ""
	}
}

func TestWithServer(t *testing.T) {
	p := newPKI(t)
	path := writeFile(t, t.TempDir(), "kubeconfig", []byte(strings.Replace(embeddedKubeconfig(p),
		"https://192.0.2.10:6443", "https://192.0.2.10:6443/prefix", 1)))
	k, err := LoadKubeconfig(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{"https://127.0.0.1:7443", "https://127.0.0.1:7443"},
		{"https://[::1]:7443", "https://[::1]:7443"},
		// host:port keeps the scheme and path, as k0s's NLLB does.
		{"127.0.0.1:7443", "https://127.0.0.1:7443/prefix"},
		{"[::1]:7443", "https://[::1]:7443/prefix"},
		{"localhost:7443", "https://localhost:7443/prefix"},
	} {
		y, err := k.WithServer(tc.in)
		if err != nil {
			t.Errorf("WithServer(%q): %v", tc.in, err)
			continue
		}
		got, err := clientcmd.Load(y)
		if err != nil {
			t.Fatalf("WithServer(%q) wrote an unreadable kubeconfig: %v\n%s", tc.in, err, y)
		}
		// What clientcmd reads from the original, with the new server.
		want, err := clientcmd.LoadFromFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want.Clusters["k0s"].Server = tc.want
		stripOrigins(want)
		stripOrigins(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("WithServer(%q) changed more than the server (-want +got):\n%s", tc.in, diff)
		}
	}
	if s, _ := k.Server(); s != "https://192.0.2.10:6443/prefix" {
		t.Errorf("WithServer changed the Kubeconfig: %q", s)
	}
	for _, bad := range []string{"", "ftp://192.0.2.1:21", "https://", "192.0.2.1", ":7443", "https://%zz"} {
		if _, err := k.WithServer(bad); err == nil || !strings.HasPrefix(err.Error(), "k8s: ") {
			t.Errorf("WithServer(%q): %v", bad, err)
		}
	}
}

// TestWithServerKeepsEverything: fields nlb does not read (extensions, an
// exec plugin of another user, preferences) survive WithServer, and file
// references become absolute as clientcmd resolves them.
func TestWithServerKeepsEverything(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	path := writeFile(t, dir, "kubeconfig", []byte(`apiVersion: v1
kind: Config
current-context: c
preferences:
  colors: true
clusters:
- name: k0s
  cluster:
    server: https://192.0.2.10:6443
    certificate-authority: pki/ca.crt
    extensions:
    - name: client.authentication.k8s.io/exec
      extension: {audience: nlb, count: 3}
contexts:
- name: c
  context: {cluster: k0s, user: u, namespace: kube-system}
users:
- name: u
  user:
    client-certificate-data: `+b64(p.clientPEM)+`
    client-key-data: `+b64(p.clientKeyPEM)+`
- name: plugin
  user:
    tokenFile: tokens/t
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: ./bin/credentials
      args: [--x]
      interactiveMode: Never
`))
	k, err := LoadKubeconfig(path)
	if err != nil {
		t.Fatal(err)
	}
	y, err := k.WithServer("https://127.0.0.1:7443")
	if err != nil {
		t.Fatal(err)
	}
	got, err := clientcmd.Load(y)
	if err != nil {
		t.Fatalf("unreadable copy: %v\n%s", err, y)
	}
	want, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := clientcmd.ResolveLocalPaths(want); err != nil {
		t.Fatal(err)
	}
	want.Clusters["k0s"].Server = "https://127.0.0.1:7443"
	stripOrigins(want)
	stripOrigins(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WithServer changed more than the server (-want +got):\n%s", diff)
	}
	if e := got.AuthInfos["plugin"].Exec; e == nil || e.Command != filepath.Join(dir, "bin/credentials") {
		t.Errorf("exec %+v", e)
	}
	if got.AuthInfos["plugin"].TokenFile != filepath.Join(dir, "tokens/t") || got.Clusters["k0s"].CertificateAuthority != filepath.Join(dir, "pki/ca.crt") {
		t.Errorf("paths not resolved:\n%s", y)
	}
}

// TestKubeconfigAuth covers the credentials RESTConfig takes beyond
// certificates: a token file (read now, named for re-reads),
// impersonation, a proxy; and what it refuses.
func TestKubeconfigAuth(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "secrets/token", []byte("from-file\n"))
	kc := func(cluster, user string) string {
		return `apiVersion: v1
kind: Config
current-context: c
clusters:
- name: k
  cluster:
    server: https://192.0.2.10:6443
` + cluster + `
contexts:
- name: c
  context: {cluster: k, user: u}
users:
- name: u
  user:
` + user
	}
	load := func(name, yaml string) *Kubeconfig {
		t.Helper()
		k, err := LoadKubeconfig(writeFile(t, dir, name, []byte(yaml)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return k
	}
	k := load("tokenfile", kc("    proxy-url: http://198.51.100.1:3128", "    tokenFile: secrets/token\n    as: alice\n    as-groups: [a, b]\n"))
	rc, err := k.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	if rc.BearerToken != "from-file" || rc.BearerTokenFile != filepath.Join(dir, "secrets/token") ||
		rc.Impersonate.UserName != "alice" || len(rc.Impersonate.Groups) != 2 || rc.Proxy == nil {
		t.Errorf("RESTConfig() = %+v", rc)
	}
	// An inline token wins over the file, which stays named.
	rc, err = load("both", kc("", "    token: inline\n    tokenFile: secrets/token\n")).RESTConfig()
	if err != nil || rc.BearerToken != "inline" || rc.BearerTokenFile == "" {
		t.Errorf("RESTConfig() = %+v, %v", rc, err)
	}
	for _, tc := range []struct{ name, cluster, user, want string }{
		{"exec", "", "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: cred\n", "not supported"},
		{"auth-provider", "", "    auth-provider:\n      name: oidc\n", "not supported"},
		{"missing token file", "", "    tokenFile: secrets/missing\n", "no such file"},
		{"token and basic auth", "", "    token: x\n    username: u\n    password: p\n", "more than one"},
		{"groups without user", "", "    as-groups: [a]\n", "without a user"},
		{"insecure with CA", "    insecure-skip-tls-verify: true\n    certificate-authority: /ca.crt", "    token: x\n", "insecure"},
		{"bad proxy", "    proxy-url: ftp://198.51.100.1", "    token: x\n", "proxy-url"},
		{"bad server", "", "    token: x\n", "http"},
	} {
		y := kc(tc.cluster, tc.user)
		if tc.name == "bad server" {
			y = strings.Replace(y, "https://192.0.2.10:6443", "ftp://192.0.2.10", 1)
		}
		k := load(strings.ReplaceAll(tc.name, " ", "_"), y)
		if _, err := k.RESTConfig(); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "k8s: ") {
			t.Errorf("%s: RESTConfig() = %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// TestKubeconfigFormat: what the loader refuses in the file itself, as
// clientcmd does.
func TestKubeconfigFormat(t *testing.T) {
	dir := t.TempDir()
	ok := "current-context: c\ncontexts:\n- name: c\n  context: {cluster: k}\nclusters:\n- name: k\n  cluster: {server: https://192.0.2.1}\n"
	if _, err := LoadKubeconfig(writeFile(t, dir, "ok", []byte(ok))); err != nil {
		t.Errorf("no apiVersion and kind: %v", err)
	}
	for name, y := range map[string]string{
		"empty":             "",
		"list":              "- a\n",
		"apiVersion":        "apiVersion: v2\n" + ok,
		"kind":              "kind: Pod\n" + ok,
		"duplicate cluster": ok + "- name: k\n  cluster: {server: https://192.0.2.2}\n",
		"bad base64":        ok + "users:\n- name: u\n  user: {client-key-data: '!!!'}\n",
	} {
		if _, err := LoadKubeconfig(writeFile(t, dir, strings.ReplaceAll(name, " ", "_"), []byte(y))); err == nil || !strings.HasPrefix(err.Error(), "k8s: ") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestClientCertificateFunc returns the pair, or nil without one.
func TestClientCertificateFunc(t *testing.T) {
	p := newPKI(t)
	path := writeFile(t, t.TempDir(), "kubeconfig", []byte(embeddedKubeconfig(p)))
	k, err := LoadKubeconfig(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := k.ClientCertificateFunc()
	if err != nil || f == nil {
		t.Fatalf("ClientCertificateFunc() = %v, %v", f != nil, err)
	}
	c, err := f(nil)
	if err != nil || c == nil || len(c.Certificate) != 1 {
		t.Errorf("certificate %v, %v", c, err)
	}
	k.AuthInfo = &AuthInfo{Token: "x"}
	if f, err := k.ClientCertificateFunc(); f != nil || err != nil {
		t.Errorf("without a certificate: %v, %v", f != nil, err)
	}
	k.AuthInfo = &AuthInfo{ClientCertificateData: p.clientPEM}
	if _, err := k.ClientCertificateFunc(); err == nil {
		t.Error("a certificate without a key was accepted")
	}
}

// TestKubeconfigFieldErrors: a malformed value is reported with its field
// path in the file (as kubectl users read it) and what the field holds,
// never a Go type or a bare decoder message.
func TestKubeconfigFieldErrors(t *testing.T) {
	dir := t.TempDir()
	ok := "current-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\nclusters:\n- name: k\n  cluster: {server: https://192.0.2.1}\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"key data", ok + "users:\n- name: u\n  user: {client-key-data: '!!!'}\n",
			"users[0].user.client-key-data: illegal base64 data at input byte 0"},
		{"certificate data", ok + "users:\n- name: u\n  user: {client-key-data: " + b64([]byte("key")) + ", client-certificate-data: 'a b'}\n",
			"users[0].user.client-certificate-data: illegal base64 data at input byte 1"},
		{"CA data", ok + "- name: k2\n  cluster: {certificate-authority-data: '%%'}\n",
			"clusters[1].cluster.certificate-authority-data: illegal base64 data at input byte 0"},
		{"CA data type", ok + "- name: k2\n  cluster: {certificate-authority-data: {a: b}}\n",
			"clusters[1].cluster.certificate-authority-data: want base64 data (a string), not a mapping"},
		{"bool", ok + "- name: k2\n  cluster: {insecure-skip-tls-verify: 'yes'}\n",
			"clusters[1].cluster.insecure-skip-tls-verify: want true or false, not a string"},
		{"groups", ok + "users:\n- name: u\n  user: {as-groups: admins}\n",
			"users[0].user.as-groups: want a list, not a string"},
		{"extra", ok + "users:\n- name: u\n  user: {as-user-extra: {scopes: 1}}\n",
			"users[0].user.as-user-extra: want a list, not a number"},
		{"context", "current-context: c\ncontexts:\n- name: c\n  context: [k]\n",
			"contexts[0].context: want a mapping, not a list"},
		{"name", ok + "users:\n- name: {u: 1}\n",
			"users[0].name: want a string, not a mapping"},
		{"entry", ok + "users:\n- u\n",
			"users[0]: want a mapping, not a string"},
		{"list", "current-context: c\nclusters: {k: {server: https://192.0.2.1}}\n",
			"clusters: want a list, not a mapping"},
		{"current context", "current-context: [c]\n",
			"current-context: want a string, not a list"},
		{"top level", "- a\n",
			"top level: want a mapping, not a list"},
		{"duplicate", ok + "- name: k\n  cluster: {server: https://192.0.2.2}\n",
			`clusters[1].name: duplicate cluster name "k"`},
	} {
		_, err := LoadKubeconfig(writeFile(t, dir, strings.ReplaceAll(tc.name, " ", "_"), []byte(tc.yaml)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
			continue
		}
		for _, goism := range []string{"Go ", "interface {}", "uint8", "struct", "json:", "RawMessage", "map["} {
			if strings.Contains(err.Error(), goism) {
				t.Errorf("%s: %q names Go's %q", tc.name, err, goism)
			}
		}
	}
}
