package k8s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/nlbtest"
)

// newCA returns nlbtest's CA named name, failing the test on error.
func newCA(t *testing.T, name string) *nlbtest.CA {
	t.Helper()
	ca, err := nlbtest.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// serving returns ca's serving certificate for cn and the names
// ([nlbtest.CA.ServerNames]: IP literals become IP SANs, the rest DNS SANs).
func serving(t *testing.T, ca *nlbtest.CA, cn string, names ...string) tls.Certificate {
	t.Helper()
	leaf, err := ca.ServerNames(cn, names...)
	if err != nil {
		t.Fatal(err)
	}
	return leaf.TLS
}

// workerClient returns ca's client certificate for system:node:worker.
func workerClient(t *testing.T, ca *nlbtest.CA) *nlbtest.Leaf {
	t.Helper()
	leaf, err := ca.Client("system:node:worker")
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// readyzServer is a TLS server standing in for kube-apiserver's /readyz.
// Frozen, it accepts connections and never answers (a blackholed host).
type readyzServer struct {
	addr     string
	ready    atomic.Bool
	clientCN atomic.Value // last client certificate CN seen on /readyz
	auth     atomic.Value // last Authorization header seen on /readyz
	readyzs  atomic.Int64 // /readyz requests answered

	mu   sync.Mutex
	held []net.Conn
}

// How a readyzServer answers.
const (
	serve     = iota
	blackhole // accepts connections, never answers
	silent    // completes the TLS handshake, never answers the request
)

// startReadyz serves cert on a loopback port, asking for client
// certificates from clientCA, as mode says.
func startReadyz(t *testing.T, cert tls.Certificate, clientCA *x509.CertPool, mode int) *readyzServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &readyzServer{addr: ln.Addr().String()}
	s.ready.Store(true)
	if mode != serve {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				if mode == silent {
					tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
					go func() { _ = tc.Handshake() }()
				}
				s.mu.Lock()
				s.held = append(s.held, c)
				s.mu.Unlock()
			}
		}()
		t.Cleanup(func() {
			ln.Close()
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, c := range s.held {
				c.Close()
			}
		})
		return s
	}
	srv := &http.Server{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
			ClientCAs: clientCA, ClientAuth: tls.VerifyClientCertIfGiven},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/readyz" {
				http.NotFound(w, r)
				return
			}
			if len(r.TLS.PeerCertificates) > 0 {
				s.clientCN.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
			}
			s.auth.Store(r.Header.Get("Authorization"))
			s.readyzs.Add(1)
			if !s.ready.Load() {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ok")
		}),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })
	return s
}

// checkKubeconfig writes and loads a kubeconfig with the CA and either a
// client certificate or, when certPEM is nil, a bearer token; serverName
// is its tls-server-name, if not empty.
func checkKubeconfig(t *testing.T, caPEM, certPEM, keyPEM []byte, token, serverName string) *Kubeconfig {
	t.Helper()
	cluster := "    server: https://127.0.0.1:6443\n"
	if caPEM != nil {
		cluster += "    certificate-authority-data: " + b64(caPEM) + "\n"
	}
	if serverName != "" {
		cluster += "    tls-server-name: " + serverName + "\n"
	}
	user := "    token: " + token + "\n"
	if certPEM != nil {
		user = "    client-certificate-data: " + b64(certPEM) + "\n    client-key-data: " + b64(keyPEM) + "\n"
	}
	doc := "apiVersion: v1\nkind: Config\ncurrent-context: k0s\nclusters:\n- name: k0s\n  cluster:\n" + cluster +
		"contexts:\n- name: k0s\n  context:\n    cluster: k0s\n    user: worker\nusers:\n- name: worker\n  user:\n" + user
	kc, err := LoadKubeconfig(writeFile(t, t.TempDir(), "kubeconfig", []byte(doc)))
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

// checkWait bounds the checks' contexts: a safety limit only, since what
// is asserted is what the check accepts, not how fast.
const checkWait = 30 * time.Second

// TestAPICheckProvesAPIServer: the check passes only for a certificate
// from the kubeconfig's CA that names the upstream, "kubernetes" or the
// kubeconfig's tls-server-name; it presents the kubeconfig's client
// certificate (or its bearer token, when it has no certificate), and with
// readyz needs GET /readyz = 200.
func TestAPICheckProvesAPIServer(t *testing.T) {
	ca, other := newCA(t, "kubernetes-ca"), newCA(t, "impostor-ca")
	pool := ca.Pool()
	client := workerClient(t, ca)
	good := serving(t, ca, "kube-apiserver", "127.0.0.1", "localhost")
	onlyService := serving(t, ca, "kube-apiserver", APIServerName)
	onlySNI := serving(t, ca, "kube-apiserver", "api.example")
	wrongName := serving(t, ca, "kubelet", "worker-1", "192.0.2.7")
	impostor := serving(t, other, "kube-apiserver", "127.0.0.1", APIServerName)

	withCert := checkKubeconfig(t, ca.CertPEM, client.CertPEM, client.KeyPEM, "", "")
	withSNI := checkKubeconfig(t, ca.CertPEM, client.CertPEM, client.KeyPEM, "", "api.example")
	for _, readyz := range []bool{false, true} {
		for _, tc := range []struct {
			name string
			kc   *Kubeconfig
			cert tls.Certificate
			ok   bool
		}{
			{"same CA, upstream IP", withCert, good, true},
			{"same CA, only the kubernetes name", withCert, onlyService, true},
			{"same CA, only the kubeconfig's tls-server-name", withSNI, onlySNI, true},
			{"same CA, a name the kubeconfig does not give", withCert, onlySNI, false},
			{"same CA, another component's names", withCert, wrongName, false},
			{"another CA", withCert, impostor, false},
		} {
			chk, err := NewAPICheck(tc.kc, readyz)
			if err != nil {
				t.Fatal(err)
			}
			s := startReadyz(t, tc.cert, pool, serve)
			run := func() error {
				ctx, cancel := context.WithTimeout(context.Background(), checkWait)
				defer cancel()
				return chk.Check(ctx, s.addr)
			}
			err = run()
			if (err == nil) != tc.ok {
				t.Errorf("readyz=%v %s: check error %v, want ok=%v", readyz, tc.name, err, tc.ok)
			}
			if got := s.readyzs.Load(); tc.ok && readyz != (got == 1) {
				t.Errorf("readyz=%v %s: %d GET /readyz", readyz, tc.name, got)
			}
			if tc.ok && readyz {
				if cn, _ := s.clientCN.Load().(string); cn != "system:node:worker" {
					t.Errorf("readyz: client certificate CN %q, want the kubeconfig's system:node:worker", cn)
				}
				if a, _ := s.auth.Load().(string); a != "" {
					t.Errorf("readyz with a client certificate: Authorization %q sent", a)
				}
				s.ready.Store(false)
				if err := run(); err == nil || !strings.Contains(err.Error(), "503") {
					t.Errorf("readyz: unready API server: check error %v, want 503", err)
				}
			}
		}
	}

	// A token kubeconfig: the token goes with /readyz.
	chk, err := NewAPICheck(checkKubeconfig(t, ca.CertPEM, nil, nil, "s3cret", ""), true)
	if err != nil {
		t.Fatal(err)
	}
	s := startReadyz(t, good, pool, serve)
	ctx, cancel := context.WithTimeout(context.Background(), checkWait)
	defer cancel()
	if err := chk.Check(ctx, s.addr); err != nil {
		t.Errorf("token kubeconfig: %v", err)
	}
	if a, _ := s.auth.Load().(string); a != "Bearer s3cret" {
		t.Errorf("token kubeconfig: Authorization %q, want the bearer token", a)
	}
}

// TestAPICheckBlackholed: the TCP connection is accepted, the handshake
// (or the /readyz answer) never comes: the check ends at its context's
// deadline, with the deadline's error, instead of hanging. (How long after
// the deadline it returns depends on the machine: not asserted.)
func TestAPICheckBlackholed(t *testing.T) {
	ca := newCA(t, "kubernetes-ca")
	client := workerClient(t, ca)
	good := serving(t, ca, "kube-apiserver", "127.0.0.1")
	kc := checkKubeconfig(t, ca.CertPEM, client.CertPEM, client.KeyPEM, "", "")
	for _, tc := range []struct {
		readyz bool
		mode   int
	}{{false, blackhole}, {true, blackhole}, {true, silent}} {
		readyz := tc.readyz
		s := startReadyz(t, good, nil, tc.mode)
		chk, err := NewAPICheck(kc, readyz)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
		done := make(chan error, 1)
		go func() { done <- chk.Check(ctx, s.addr) }()
		select {
		case err := <-done:
			// Past the handshake the read deadline (the context's) and
			// the context's end race: either error says "deadline".
			deadline := errors.Is(err, context.DeadlineExceeded) ||
				tc.mode == silent && errors.Is(err, os.ErrDeadlineExceeded)
			if !deadline {
				t.Errorf("readyz=%v mode %d: blackholed upstream: check error %v (context: %v), want the deadline's", readyz, tc.mode, err, ctx.Err())
			}
		case <-time.After(checkWait):
			t.Errorf("readyz=%v: blackholed upstream: the check still runs %v after its deadline", readyz, checkWait)
		}
		cancel()
	}
}

// TestNewAPICheckNeedsCA: without a CA nothing proves an upstream is the
// API server: refused.
func TestNewAPICheckNeedsCA(t *testing.T) {
	_, err := NewAPICheck(checkKubeconfig(t, nil, nil, nil, "s3cret", ""), false)
	if err == nil || !strings.Contains(err.Error(), "no CA") {
		t.Errorf("NewAPICheck without a CA: %v", err)
	}
}

func TestServerHostPort(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://192.0.2.10:6443", "192.0.2.10:6443"},
		{"https://192.0.2.10", "192.0.2.10:443"},
		{"https://[2001:db8::1]:6443/prefix", "[2001:db8::1]:6443"},
		{"https://api.example", "api.example:443"},
		{"http://192.0.2.10:6443", ""},
		{"192.0.2.10:6443", ""},
		{"https://:6443", ""},
		{"https://%zz", ""},
	} {
		got, err := ServerHostPort(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("ServerHostPort(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
