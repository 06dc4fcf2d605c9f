package nlbtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestCA: a server certificate verifies against the CA's pool, and the
// server verifies a client certificate; a certificate of another CA is
// refused.
func TestCA(t *testing.T) {
	ca, err := NewCA("nlbtest-ca")
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := ca.Server("server", []string{"localhost"}, net.IPv4(127, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Client("user", "group")
	if err != nil {
		t.Fatal(err)
	}
	if client.Cert.SerialNumber.Cmp(srvCert.Cert.SerialNumber) == 0 {
		t.Error("two certificates share a serial number")
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert.TLS}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()
	get := func(certs ...tls.Certificate) (string, error) {
		c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: certs}}}
		resp, err := c.Get(srv.URL)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if got, err := get(client.TLS); err != nil || got != "user" {
		t.Errorf("with the client certificate: %q, %v", got, err)
	}
	other, _ := NewCA("other")
	stranger, _ := other.Client("stranger")
	if _, err := get(stranger.TLS); err == nil {
		t.Error("a certificate of another CA was accepted")
	}
	if !strings.Contains(string(srvCert.KeyPEM), "EC PRIVATE KEY") || !strings.Contains(string(ca.CertPEM), "CERTIFICATE") {
		t.Error("PEM encodings missing")
	}
}

// TestServerNames: IP literals (v4 and v6) become IP SANs, the rest DNS
// SANs, in order, and the certificate verifies for each of them.
func TestServerNames(t *testing.T) {
	ca, err := NewCA("nlbtest-ca")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.ServerNames("kube-apiserver", "127.0.0.1", "kubernetes", "2001:db8::1", "api.example")
	if err != nil {
		t.Fatal(err)
	}
	c := leaf.Cert
	if got := fmt.Sprint(c.IPAddresses); got != "[127.0.0.1 2001:db8::1]" {
		t.Errorf("IP SANs %s", got)
	}
	if got := fmt.Sprint(c.DNSNames); got != "[kubernetes api.example]" {
		t.Errorf("DNS SANs %s", got)
	}
	if c.Subject.CommonName != "kube-apiserver" || len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("subject %v, extended key usage %v: want Server's", c.Subject, c.ExtKeyUsage)
	}
	for _, name := range []string{"127.0.0.1", "kubernetes", "2001:db8::1", "api.example"} {
		if _, err := c.Verify(x509.VerifyOptions{DNSName: name, Roots: ca.Pool()}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := c.Verify(x509.VerifyOptions{DNSName: "192.0.2.7", Roots: ca.Pool()}); err == nil {
		t.Error("verified for a name it was not issued for")
	}
}

func TestPoll(t *testing.T) {
	n := 0
	err := Poll(context.Background(), time.Millisecond, "count", func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Errorf("Poll: %v after %d calls, want nil after 3", err, n)
	}
	boom := errors.New("boom")
	if err := Poll(context.Background(), time.Millisecond, "stop", func() error { return Stop(boom) }); !errors.Is(err, boom) {
		t.Errorf("Poll with Stop: %v", err)
	}
	if Holds(func() bool { return false })() == nil || Holds(func() bool { return true })() != nil {
		t.Error("Holds does not follow its condition")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Poll(ctx, time.Millisecond, "never", func() error { return errors.New("no") }); err == nil || !strings.Contains(err.Error(), "never") {
		t.Errorf("Poll past its context: %v", err)
	}
}

// TestGet: Get returns a 200 answer's body, and an error naming the
// status and the body otherwise; GetJSON decodes, and refuses what is not
// JSON.
func TestGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			io.WriteString(w, `{"state":"Master"}`)
		case "/text":
			io.WriteString(w, "not json")
		default:
			http.Error(w, "no such thing", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	ctx, c := context.Background(), srv.Client()
	if b, err := Get(ctx, c, srv.URL+"/ok"); err != nil || string(b) != `{"state":"Master"}` {
		t.Errorf("Get /ok: %q, %v", b, err)
	}
	if _, err := Get(ctx, c, srv.URL+"/missing"); err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "no such thing") {
		t.Errorf("Get /missing: %v", err)
	}
	var st struct{ State string }
	if err := GetJSON(ctx, c, srv.URL+"/ok", &st); err != nil || st.State != "Master" {
		t.Errorf("GetJSON /ok: %+v, %v", st, err)
	}
	if err := GetJSON(ctx, c, srv.URL+"/text", &st); err == nil {
		t.Error("GetJSON accepted a body that is not JSON")
	}
}
