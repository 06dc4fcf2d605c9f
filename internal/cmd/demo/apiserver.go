package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/nlb-dev/nlb/internal/k8slab"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
)

// apiServer is the API server of one controller host: a real
// kube-apiserver or a stand-in.
type apiServer interface {
	// Kill stops serving at once, as a crash would: the listener and
	// every connection close.
	Kill() error
	// Start serves again and returns once the server is ready.
	Start(ctx context.Context) error
}

// apiServers is the API server of every controller host and what a client
// needs to talk to them.
type apiServers struct {
	// kind says what they are, for the story.
	kind string
	// servers[i] runs on controller host i.
	servers []apiServer
	// tls is the client's TLS configuration: the cluster CA, server name
	// "kubernetes" (in every serving certificate; the VIP is not), and for
	// real API servers the admin identity.
	tls *tls.Config
	// path is what the client reads.
	path string
	// check says how nlb checks its local API server.
	check string
	// names maps a serving certificate's common name to a controller index.
	names map[string]int
	// args are the extra `nlb controller` flags for controller host i.
	args func(i int) []string
}

// who returns the index of the controller whose certificate cs presents, or -1.
func (a *apiServers) who(cs tls.ConnectionState) int {
	if len(cs.PeerCertificates) == 0 {
		return -1
	}
	if i, ok := a.names[cs.PeerCertificates[0].Subject.CommonName]; ok {
		return i
	}
	return -1
}

// apiServerName is the common name of controller i's serving certificate
// (k8slab's naming, which the stand-ins share).
func apiServerName(i int) string { return "apiserver-" + strconv.Itoa(i+1) }

// realAPIServers wraps the API servers of a k8slab cluster. Every
// `nlb controller` gets the admin kubeconfig of its own host's API server:
// discovery of the three from the `kubernetes` EndpointSlices and
// /readyz checks with that identity are real.
func realAPIServers(c *k8slab.Cluster) (*apiServers, error) {
	caPEM, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("cluster CA %s: no certificate", c.CAFile)
	}
	cert, err := adminCertificate(c.AdminKubeconfig)
	if err != nil {
		return nil, err
	}
	a := &apiServers{
		kind:  "kube-apiserver",
		tls:   &tls.Config{RootCAs: pool, ServerName: "kubernetes", Certificates: []tls.Certificate{cert}},
		path:  "/api/v1/namespaces/default/services/kubernetes",
		check: "GET /readyz with the admin identity",
		names: map[string]int{},
		args:  func(i int) []string { return []string{"--kubeconfig", c.Controllers[i].Kubeconfig} },
	}
	for i, ctl := range c.Controllers {
		a.servers = append(a.servers, realAPIServer{ctl})
		a.names[ctl.Name] = i
	}
	return a, nil
}

// adminCertificate loads the client certificate a kubeconfig names.
func adminCertificate(kubeconfig string) (tls.Certificate, error) {
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("admin kubeconfig: %w", err)
	}
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		return tls.Certificate{}, fmt.Errorf("admin kubeconfig %s: no current context", kubeconfig)
	}
	ai, ok := cfg.AuthInfos[ctx.AuthInfo]
	if !ok {
		return tls.Certificate{}, fmt.Errorf("admin kubeconfig %s: no user %q", kubeconfig, ctx.AuthInfo)
	}
	cert, err := tls.LoadX509KeyPair(ai.ClientCertificate, ai.ClientKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("admin kubeconfig %s: %w", kubeconfig, err)
	}
	return cert, nil
}

type realAPIServer struct{ ctl *k8slab.Controller }

func (r realAPIServer) Kill() error { return r.ctl.Kill() }

func (r realAPIServer) Start(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	return r.ctl.Restart(rctx)
}

// standInAPIServers starts a small TLS server on 0.0.0.0:6443 in each
// controller host's namespace, as kube-apiserver binds, answering /readyz,
// /livez and /version (which says which controller answered). The
// controllers get the three as --backend and their own as
// --local-api-server, so without a kubeconfig their health check is a TCP
// connect.
func standInAPIServers(ctx context.Context, hosts []*netlab.Host, vip netip.Addr) (*apiServers, func(), error) {
	ca, err := nlbtest.NewCA("nlb-demo-ca")
	if err != nil {
		return nil, nil, err
	}
	pool := ca.Pool()
	a := &apiServers{
		kind:  "stand-in",
		tls:   &tls.Config{RootCAs: pool, ServerName: "kubernetes"},
		path:  "/version",
		check: "a TCP connect: no kubeconfig",
		names: map[string]int{},
	}
	var backends []string
	for _, h := range hosts {
		backends = append(backends, "--backend", netip.AddrPortFrom(h.Addr4, k8slab.APIServerPort).String())
	}
	a.args = func(i int) []string {
		return append(append([]string(nil), backends...),
			"--local-api-server", netip.AddrPortFrom(hosts[i].Addr4, k8slab.APIServerPort).String())
	}
	var all []*standIn
	closeAll := func() {
		for _, s := range all {
			_ = s.Kill()
		}
	}
	for i, h := range hosts {
		name := apiServerName(i)
		cert, err := serving(ca, name, h.Addr4, vip)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		s := &standIn{host: h, name: fmt.Sprintf("controller%d", i+1), cert: cert}
		if err := s.Start(ctx); err != nil {
			closeAll()
			return nil, nil, err
		}
		all = append(all, s)
		a.servers = append(a.servers, s)
		a.names[name] = i
	}
	return a, closeAll, nil
}

// standIn is a stand-in API server in one host's namespace.
type standIn struct {
	host *netlab.Host
	name string
	cert tls.Certificate

	mu  sync.Mutex
	srv *http.Server
}

func (s *standIn) Start(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	ln, err := s.host.Listen("tcp4", ":"+strconv.Itoa(k8slab.APIServerPort))
	if err != nil {
		return fmt.Errorf("stand-in API server on %s: %w", s.host.Name, err)
	}
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }
	mux.HandleFunc("/readyz", ok)
	mux.HandleFunc("/livez", ok)
	mux.HandleFunc("/version", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"major": "1", "minor": "0", "gitVersion": "v0.0.0-nlb-demo-stand-in", "answeredBy": s.name,
		})
	})
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{s.cert}},
		ReadHeaderTimeout: 5 * time.Second,
		// Health checks that only connect end in handshake errors: quiet.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	s.srv = srv
	return nil
}

func (s *standIn) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return nil
	}
	err := s.srv.Close()
	s.srv = nil
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("stand-in API server on %s: %w", s.host.Name, err)
	}
	return nil
}

// serving issues a serving certificate named cn for the names and
// addresses clients use: "kubernetes", the host's address and the VIP.
func serving(ca *nlbtest.CA, cn string, addrs ...netip.Addr) (tls.Certificate, error) {
	var ips []net.IP
	for _, a := range addrs {
		ips = append(ips, net.IP(a.AsSlice()))
	}
	leaf, err := ca.Server(cn, []string{"kubernetes", "kubernetes.default", "localhost"}, ips...)
	if err != nil {
		return tls.Certificate{}, err
	}
	return leaf.TLS, nil
}

// describe says in a line what the controllers' API servers are.
func (a *apiServers) describe() string {
	if a.kind == "stand-in" {
		return "small TLS stand-ins (HTTPS /readyz and /version) on 0.0.0.0:6443 in each namespace"
	}
	return "real kube-apiservers (etcd on its own host) on 0.0.0.0:6443"
}

// joinNames is "a, b and c".
func joinNames(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
