package k8s

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
)

// APIServerName is the name every kube-apiserver serving certificate
// carries: kube-apiserver's own Service, kubernetes.default. kubeadm and k0s
// both put it among the SANs, and no other component's certificate has it.
const APIServerName = "kubernetes"

// APICheck is the health check that proves an upstream is a kube-apiserver
// of this cluster: a TLS handshake whose certificate chains to the
// kubeconfig's CA, with the client certificate presented if the kubeconfig
// has one, and optionally an HTTPS GET /readyz answered 200. `nlb client`
// checks its API server upstreams with it, `nlb proxy --discover` and
// `nlb controller` their backends and the local API server.
//
// Name check: the certificate must be valid for the upstream's host (the
// address dialed, usually the API server's advertise address, always in its
// SANs), for the kubeconfig's tls-server-name if it sets one, or for
// "kubernetes" (APIServerName). The last one keeps upstreams reached
// through an address the certificate does not name (NAT, a hostname join
// address) working, while a certificate from another CA, or a same-CA
// certificate of another component (kubelet, etcd peer), still fails.
type APICheck struct {
	roots *x509.CertPool
	// cert returns the client identity; nil when the kubeconfig has none.
	cert       func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
	token      string // bearer token for /readyz when there is no certificate
	serverName string // the kubeconfig's tls-server-name, if any
	readyz     bool   // also GET /readyz
}

// NewAPICheck builds the API server health check from a kubeconfig: its CA
// (required: without it nothing proves an upstream is the API server), its
// client certificate (read again when its files change: kubelet
// certificates rotate) or bearer token, and its tls-server-name. With
// readyz the check also sends GET /readyz and wants 200. It reads the
// files the kubeconfig names (CA, certificate, token) and dials nothing.
func NewAPICheck(kc *Kubeconfig, readyz bool) (*APICheck, error) {
	roots, err := kc.CAPool()
	if err != nil {
		return nil, err
	}
	if roots == nil {
		return nil, errors.New("the kubeconfig has no CA: upstreams cannot be verified")
	}
	cert, err := kc.ClientCertificateFunc()
	if err != nil {
		return nil, err
	}
	rc, err := kc.RESTConfig()
	if err != nil {
		return nil, err
	}
	return &APICheck{
		roots:      roots,
		cert:       cert,
		token:      rc.BearerToken,
		serverName: rc.TLSClientConfig.ServerName,
		readyz:     readyz,
	}, nil
}

// tlsConfig returns the client TLS configuration for dialing addr.
func (a *APICheck) tlsConfig(addr string) *tls.Config {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	sni := a.serverName
	if sni == "" {
		sni = host // not sent for IP literals
	}
	c := &tls.Config{
		ServerName: sni,
		MinVersion: tls.VersionTLS12,
		// The chain and names are verified in VerifyConnection, which
		// accepts any of several names; Go's built-in check takes one.
		InsecureSkipVerify: true, //nolint:gosec // verified below
		VerifyConnection: func(cs tls.ConnectionState) error {
			return a.verify(cs, host)
		},
		GetClientCertificate: a.cert,
	}
	if a.token == "" || a.cert != nil {
		// No secret crosses this connection (a client certificate signs,
		// /readyz answers "ok"): classical X25519 key exchange only. The
		// post-quantum hybrid share Go offers by default (ML-KEM-768) makes
		// most of the CPU and garbage of a check run twice a second per
		// upstream, and protects nothing here. A bearer token keeps it.
		c.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
	}
	return c
}

// verify checks the peer's chain against the CA and its names.
func (a *APICheck) verify(cs tls.ConnectionState, host string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no server certificate")
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         a.roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return fmt.Errorf("server certificate not signed by the kubeconfig's CA: %w", err)
	}
	names := []string{host, APIServerName}
	if a.serverName != "" {
		names = append(names, a.serverName)
	}
	for _, n := range names {
		if leaf.VerifyHostname(n) == nil {
			return nil
		}
	}
	return fmt.Errorf("server certificate is valid for none of %q", names)
}

// Check runs one check against addr (host:port) within ctx's deadline: a
// fresh connection every time (no pooled one can hide an upstream that
// stopped accepting), and for /readyz one HTTP/1.1 request written on it
// directly, without an http.Transport and its per-connection goroutines
// and buffers. It has the signature of lb.Options.Check. When ctx ends
// first, the error wraps ctx's.
func (a *APICheck) Check(ctx context.Context, addr string) error {
	d := tls.Dialer{Config: a.tlsConfig(addr)}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if !a.readyz {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok {
		if err := c.SetDeadline(dl); err != nil {
			return err
		}
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	req := "GET /readyz HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: nlb-health-check\r\nConnection: close\r\n"
	if a.cert == nil && a.token != "" {
		req += "Authorization: Bearer " + a.token + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		return checkErr(ctx, err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 1024), nil)
	if err != nil {
		return checkErr(ctx, fmt.Errorf("GET /readyz: %w", err))
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return &DeniedError{Status: resp.Status}
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /readyz: %s", resp.Status)
	}
	return nil
}

// DeniedError is Check's error when the API server answered GET /readyz
// with 401 Unauthorized or 403 Forbidden: the TLS handshake proved it an
// API server of this cluster and it serves HTTP, but it refused the
// kubeconfig's identity (kubeadm's admin.conf before `kubeadm init` has
// created its RBAC, from Kubernetes 1.29 on; a hardened cluster without
// the system:public-info-viewer binding). A backend check counts it as a
// failure, like any other error; `nlb controller`'s VRRP health counts it
// as up (errors.As).
type DeniedError struct {
	// Status is the response's status line, e.g. "403 Forbidden".
	Status string
}

// Error returns "GET /readyz: STATUS (the API server refuses this identity)".
func (e *DeniedError) Error() string {
	return "GET /readyz: " + e.Status + " (the API server refuses this identity)"
}

// checkErr prefers ctx's error to the one closing the connection caused.
func checkErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return err
}

// ServerHostPort returns the host:port of a kubeconfig server URL (port 443
// when it has none). It refuses anything but an https URL with a host.
func ServerHostPort(server string) (string, error) {
	u, err := url.Parse(server)
	if err != nil {
		return "", fmt.Errorf("server %q: %w", server, err)
	}
	if u.Scheme != "https" || u.Hostname() == "" {
		return "", fmt.Errorf("server %q is not an https URL", server)
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}
