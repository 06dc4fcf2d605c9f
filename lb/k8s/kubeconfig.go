package k8s

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Kubeconfig is a parsed kubeconfig file and its current context.
type Kubeconfig struct {
	// Path is the file it was read from.
	Path string
	// Config is the whole file. File references in it (certificate-authority,
	// client-certificate, client-key, tokenFile...) are absolute: relative
	// ones are resolved against the file's directory, as kubectl does.
	Config *clientcmdapi.Config
	// Context is the name of the current context.
	Context string
	// ClusterName is the name of the current context's cluster.
	ClusterName string
	// Cluster is the current context's cluster.
	Cluster *clientcmdapi.Cluster
	// AuthInfo is the current context's user; an empty one when the
	// context names none.
	AuthInfo *clientcmdapi.AuthInfo
}

// LoadKubeconfig reads the kubeconfig at path. It fails when the file cannot
// be read or parsed, or has no current context, or the context's cluster is
// missing. A missing user is not an error (the cluster may not need one).
func LoadKubeconfig(path string) (*Kubeconfig, error) {
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("k8s: kubeconfig: %w", err)
	}
	// As kubectl does: relative file references are relative to the file.
	if err := clientcmd.ResolveLocalPaths(cfg); err != nil {
		return nil, fmt.Errorf("k8s: kubeconfig %s: %w", path, err)
	}
	k := &Kubeconfig{Path: path, Config: cfg, Context: cfg.CurrentContext}
	if k.Context == "" {
		return nil, fmt.Errorf("k8s: kubeconfig %s: no current-context", path)
	}
	ctx, ok := cfg.Contexts[k.Context]
	if !ok || ctx == nil {
		return nil, fmt.Errorf("k8s: kubeconfig %s: current-context %q not found", path, k.Context)
	}
	k.ClusterName = ctx.Cluster
	if k.Cluster, ok = cfg.Clusters[ctx.Cluster]; !ok || k.Cluster == nil {
		return nil, fmt.Errorf("k8s: kubeconfig %s: cluster %q of context %q not found", path, ctx.Cluster, k.Context)
	}
	if k.AuthInfo = cfg.AuthInfos[ctx.AuthInfo]; k.AuthInfo == nil {
		k.AuthInfo = clientcmdapi.NewAuthInfo()
	}
	return k, nil
}

// Server returns the current cluster's server URL, such as
// https://192.0.2.10:6443.
func (k *Kubeconfig) Server() (string, error) {
	if k.Cluster.Server == "" {
		return "", fmt.Errorf("k8s: kubeconfig %s: cluster %q has no server", k.Path, k.ClusterName)
	}
	return k.Cluster.Server, nil
}

// RESTConfig returns a client configuration for the current context, for
// NewAPI.
func (k *Kubeconfig) RESTConfig() (*rest.Config, error) {
	rc, err := clientcmd.NewNonInteractiveClientConfig(*k.Config, k.Context, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("k8s: kubeconfig %s: %w", k.Path, err)
	}
	return rc, nil
}

// CAPool returns the current cluster's certificate authorities, from
// certificate-authority-data or else the certificate-authority file. It
// returns nil, nil when the cluster names neither (the system roots apply).
func (k *Kubeconfig) CAPool() (*x509.CertPool, error) {
	pem, err := k.data(k.Cluster.CertificateAuthorityData, k.Cluster.CertificateAuthority)
	if err != nil || pem == nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("k8s: kubeconfig %s: no PEM certificate in the certificate authority of cluster %q", k.Path, k.ClusterName)
	}
	return pool, nil
}

// ClientCertificate returns the current user's client certificate and key,
// from client-certificate-data and client-key-data or else the files they
// name. It returns nil, nil when the user has no certificate (token or no
// authentication), and an error when only one of certificate and key is
// given or they do not match.
func (k *Kubeconfig) ClientCertificate() (*tls.Certificate, error) {
	a := k.AuthInfo
	certPEM, err := k.data(a.ClientCertificateData, a.ClientCertificate)
	if err != nil {
		return nil, err
	}
	keyPEM, err := k.data(a.ClientKeyData, a.ClientKey)
	if err != nil {
		return nil, err
	}
	switch {
	case certPEM == nil && keyPEM == nil:
		return nil, nil
	case certPEM == nil:
		return nil, fmt.Errorf("k8s: kubeconfig %s: a client key without a certificate", k.Path)
	case keyPEM == nil:
		return nil, fmt.Errorf("k8s: kubeconfig %s: a client certificate without a key", k.Path)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("k8s: kubeconfig %s: client certificate: %w", k.Path, err)
	}
	return &cert, nil
}

// data returns inline data, or else the contents of file, or else nil.
func (k *Kubeconfig) data(inline []byte, file string) ([]byte, error) {
	if len(inline) > 0 {
		return inline, nil
	}
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("k8s: kubeconfig %s: %w", k.Path, err)
	}
	return b, nil
}

// WithServer returns a copy of the whole kubeconfig, as YAML, in which only
// the current cluster's server is replaced; every other cluster, context,
// user and setting stays. server is either a URL (https://127.0.0.1:7443),
// which replaces the old one, or host:port (127.0.0.1:7443, [::1]:7443),
// which replaces only the old URL's host and port, as k0s's NLLB does.
// File references in the copy are absolute, so it may be written to any
// directory. The Kubeconfig itself is not changed.
func (k *Kubeconfig) WithServer(server string) ([]byte, error) {
	u, err := k.newServer(server)
	if err != nil {
		return nil, err
	}
	cfg := k.Config.DeepCopy()
	cfg.Clusters[k.ClusterName].Server = u
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("k8s: kubeconfig %s: %w", k.Path, err)
	}
	return b, nil
}

// newServer checks server and returns the URL WithServer writes.
func (k *Kubeconfig) newServer(server string) (string, error) {
	if strings.Contains(server, "://") {
		u, err := url.Parse(server)
		if err != nil {
			return "", fmt.Errorf("k8s: kubeconfig: server %q: %w", server, err)
		}
		if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return "", fmt.Errorf("k8s: kubeconfig: server %q: not an http(s) URL with a host", server)
		}
		return server, nil
	}
	host, port, err := net.SplitHostPort(server)
	if err != nil || host == "" || port == "" {
		return "", fmt.Errorf("k8s: kubeconfig: server %q: neither a URL nor host:port", server)
	}
	old, err := k.Server()
	if err != nil {
		return "", err
	}
	u, err := url.Parse(old)
	if err != nil {
		return "", fmt.Errorf("k8s: kubeconfig %s: server %q: %w", k.Path, old, err)
	}
	if u.Host == "" {
		return "", fmt.Errorf("k8s: kubeconfig %s: server %q has no host to replace", k.Path, old)
	}
	u.Host = net.JoinHostPort(host, port)
	return u.String(), nil
}
