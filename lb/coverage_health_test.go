package lb

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/nlbtest"
)

// covCA is nlbtest's CA for the health check tests, its certificate
// written as a PEM file in the test's temp dir.
type covCA struct {
	*nlbtest.CA
	pemFile string
}

func newCovCA(t *testing.T, name string) *covCA {
	t.Helper()
	ca, err := nlbtest.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	c := &covCA{CA: ca, pemFile: filepath.Join(t.TempDir(), name+"-ca.crt")}
	if err := ca.WriteFile(c.pemFile); err != nil {
		t.Fatal(err)
	}
	return c
}

// issue signs a server (127.0.0.1, ::1, localhost) or client certificate
// and writes it and its key as PEM files.
func (ca *covCA) issue(t *testing.T, cn string, client bool) (cert tls.Certificate, certFile, keyFile string) {
	t.Helper()
	leaf, err := ca.Server(cn, []string{"localhost", "backend.test"}, net.ParseIP("127.0.0.1"), net.ParseIP("::1"))
	if client {
		leaf, err = ca.Client(cn)
	}
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, cn+".crt"), filepath.Join(dir, cn+".key")
	if err := leaf.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	return leaf.TLS, certFile, keyFile
}

// mtlsServer is an HTTPS server with a certificate from ca that requires a
// client certificate signed by clientCA, and answers 200 on /readyz only.
// It records the common name of the last verified client.
type mtlsServer struct {
	addr     string
	clientCN atomic.Value
}

func startMTLSServer(t *testing.T, ca, clientCA *covCA) *mtlsServer {
	t.Helper()
	serverCert, _, _ := ca.issue(t, "server", false)
	s := &mtlsServer{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			s.clientCN.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
		}
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("ok"))
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clientCA.Pool(),
	}
	// The failed handshakes this test provokes are expected: keep them
	// out of the test's output.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.addr = srv.Listener.Addr().String()
	return s
}

// checkOnce builds a checker from hc as the proxy does and returns a
// function that runs it once, bounded as the proxy's runChecks bounds it
// (hc.Timeout, or 5 s when unset).
func checkOnce(t *testing.T, hc HealthCheck) func(addr string) error {
	t.Helper()
	check, err := newChecker(hc)
	if err != nil {
		t.Fatalf("newChecker(%+v): %v", hc, err)
	}
	timeout := time.Duration(hc.Timeout)
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	return func(addr string) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return check(ctx, addr)
	}
}

// runCheck runs a checker built from hc once against addr.
func runCheck(t *testing.T, hc HealthCheck, addr string) error {
	t.Helper()
	return checkOnce(t, hc)(addr)
}

// TestHTTPSCheckPrivateCAAndClientCert: an https check verifies the backend
// against healthCheck.caFile and presents certFile/keyFile, as a
// kube-apiserver without anonymous auth requires; each missing or wrong
// piece makes the check fail.
func TestHTTPSCheckPrivateCAAndClientCert(t *testing.T) {
	ca := newCovCA(t, "cluster")
	other := newCovCA(t, "other")
	srv := startMTLSServer(t, ca, ca)
	_, certFile, keyFile := ca.issue(t, "nlb-health", true)
	_, otherCert, otherKey := other.issue(t, "intruder", true)

	good := HealthCheck{Type: CheckHTTPS, Path: "/readyz", CAFile: ca.pemFile, CertFile: certFile, KeyFile: keyFile}
	if err := runCheck(t, good, srv.addr); err != nil {
		t.Fatalf("check with the right CA and client certificate: %v", err)
	}
	if cn, _ := srv.clientCN.Load().(string); cn != "nlb-health" {
		t.Errorf("server saw client %q, want nlb-health", cn)
	}

	for _, tc := range []struct {
		name string
		edit func(*HealthCheck)
	}{
		{"no client certificate", func(h *HealthCheck) { h.CertFile, h.KeyFile = "", "" }},
		{"client certificate from another CA", func(h *HealthCheck) { h.CertFile, h.KeyFile = otherCert, otherKey }},
		{"wrong CA", func(h *HealthCheck) { h.CAFile = other.pemFile }},
		{"system roots", func(h *HealthCheck) { h.CAFile = "" }},
		{"server name not in the certificate", func(h *HealthCheck) { h.ServerName = "elsewhere.test" }},
		{"path not 200", func(h *HealthCheck) { h.Path = "/livez" }},
	} {
		hc := good
		tc.edit(&hc)
		if err := runCheck(t, hc, srv.addr); err == nil {
			t.Errorf("%s: check passed", tc.name)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}

	// The server name can be overridden to one the certificate holds.
	hc := good
	hc.ServerName = "backend.test"
	if err := runCheck(t, hc, srv.addr); err != nil {
		t.Errorf("serverName backend.test: %v", err)
	}
	// Unreadable files are errors when the checker is built.
	for _, hc := range []HealthCheck{
		{Type: CheckHTTPS, CAFile: filepath.Join(t.TempDir(), "missing.crt")},
		{Type: CheckHTTPS, CAFile: keyFile}, // no certificate in it
		{Type: CheckTLS, CertFile: certFile, KeyFile: otherKey},
	} {
		if _, err := newChecker(hc); err == nil {
			t.Errorf("newChecker(%+v) accepted bad files", hc)
		}
	}
}

// TestHTTPSCheckThroughProxy: a proxy configured with the private CA and the
// client certificate keeps the backend healthy; configured with a wrong CA
// it marks the backend unhealthy.
func TestHTTPSCheckThroughProxy(t *testing.T) {
	ca := newCovCA(t, "cluster")
	other := newCovCA(t, "other")
	srv := startMTLSServer(t, ca, ca)
	_, certFile, keyFile := ca.issue(t, "nlb-health", true)
	hc := HealthCheck{Type: CheckHTTPS, Interval: Duration(MinCheckInterval), Timeout: Duration(5 * time.Second),
		Rise: 1, Fall: 1, CAFile: ca.pemFile, CertFile: certFile, KeyFile: keyFile}

	p := startProxy(t, Config{Backends: []string{srv.addr}, HealthCheck: hc}, Options{})
	waitFor(t, "passing checks", func() bool { return p.backends.Load().list[0].checksOK.Load() >= 3 })
	if st := backendStatus(p.Proxy, srv.addr); !st.Healthy {
		t.Errorf("backend with passing mTLS checks: %+v", st)
	}

	hc.CAFile = other.pemFile
	p2 := startProxy(t, Config{Backends: []string{srv.addr}, HealthCheck: hc}, Options{})
	waitFor(t, "backend unhealthy with the wrong CA", func() bool { return !backendStatus(p2.Proxy, srv.addr).Healthy })
}

// TestTLSCheckPrivateCA: a tls check verifies the handshake against
// healthCheck.caFile.
func TestTLSCheckPrivateCA(t *testing.T) {
	ca := newCovCA(t, "cluster")
	other := newCovCA(t, "other")
	serverCert, _, _ := ca.issue(t, "server", false)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{serverCert}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				c.(*tls.Conn).Handshake()
				c.Read(make([]byte, 1)) // until the client closes
			})
		}
	})
	addr := ln.Addr().String()

	if err := runCheck(t, HealthCheck{Type: CheckTLS, CAFile: ca.pemFile}, addr); err != nil {
		t.Fatalf("tls check with the right CA: %v", err)
	}
	if err := runCheck(t, HealthCheck{Type: CheckTLS, CAFile: ca.pemFile, ServerName: "backend.test"}, addr); err != nil {
		t.Errorf("tls check with serverName backend.test: %v", err)
	}
	for name, hc := range map[string]HealthCheck{
		"wrong CA":     {Type: CheckTLS, CAFile: other.pemFile},
		"system roots": {Type: CheckTLS},
		"server name":  {Type: CheckTLS, CAFile: ca.pemFile, ServerName: "elsewhere.test"},
	} {
		if err := runCheck(t, hc, addr); err == nil {
			t.Errorf("%s: tls check passed", name)
		}
	}
	if err := runCheck(t, HealthCheck{Type: CheckTLS, CAFile: ca.pemFile}, closedAddr(t)); err == nil {
		t.Error("tls check of a closed port passed")
	}
}

// silentServer accepts connections and never sends a byte; it holds them
// until the test ends.
func silentServer(t *testing.T) string {
	t.Helper()
	release := make(chan struct{})
	addr := serve(t, "127.0.0.1:0", func(c *net.TCPConn) {
		<-release
	})
	// Runs before serve's cleanup (LIFO), which waits for the handlers.
	t.Cleanup(func() { close(release) })
	return addr
}

// TestCheckTimeoutHonoured: a tls or https check of a backend that accepts
// but never answers the handshake ends with an error at the check's
// timeout instead of hanging; and through the proxy such a backend turns
// unhealthy (with the timeout not honoured the first check would never
// return, and the backend would stay healthy).
func TestCheckTimeoutHonoured(t *testing.T) {
	addr := silentServer(t)
	for _, typ := range []string{CheckTLS, CheckHTTPS} {
		t.Run(typ, func(t *testing.T) {
			hc := HealthCheck{Type: typ, Path: "/readyz", InsecureSkipVerify: true, Timeout: Duration(200 * time.Millisecond)}
			check := checkOnce(t, hc)
			res := make(chan error, 1)
			go func() { res <- check(addr) }()
			select {
			case err := <-res:
				if err == nil {
					t.Fatal("check of a silent backend passed")
				}
				t.Logf("check error: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("check of a silent backend still running after 10 s with a 200ms timeout")
			}

			p := startProxy(t, Config{Backends: []string{addr}, HealthCheck: HealthCheck{
				Type: typ, InsecureSkipVerify: true, Interval: Duration(MinCheckInterval),
				Timeout: Duration(200 * time.Millisecond), Rise: 1, Fall: 2,
			}}, Options{})
			waitFor(t, "silent backend unhealthy", func() bool { return !backendStatus(p.Proxy, addr).Healthy })
		})
	}
}
