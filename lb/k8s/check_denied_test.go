package k8s

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAPICheckDenied: a verified API server that answers GET /readyz with
// 401 or 403 gives a *DeniedError (still an error: backend checks fail on
// it), any other non-200 answer a plain error, and an impostor's 403 no
// DeniedError at all (the handshake fails first).
func TestAPICheckDenied(t *testing.T) {
	ca, other := newCA(t, "kubernetes-ca"), newCA(t, "impostor-ca")
	good := serving(t, ca, "kube-apiserver", "127.0.0.1")
	impostor := serving(t, other, "kube-apiserver", "127.0.0.1", APIServerName)
	client := workerClient(t, ca)
	chk, err := NewAPICheck(checkKubeconfig(t, ca.CertPEM, client.CertPEM, client.KeyPEM, "", ""), true)
	if err != nil {
		t.Fatal(err)
	}
	answering := func(cert tls.Certificate, code int) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{
			TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          log.New(io.Discard, "", 0),
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(code)
				_, _ = io.WriteString(w, `{"kind":"Status","reason":"Forbidden"}`)
			}),
		}
		go func() { _ = srv.ServeTLS(ln, "", "") }()
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().String()
	}
	for _, tc := range []struct {
		name   string
		cert   tls.Certificate
		code   int
		denied bool
		ok     bool
	}{
		{"200", good, http.StatusOK, false, true},
		{"401", good, http.StatusUnauthorized, true, false},
		{"403", good, http.StatusForbidden, true, false},
		{"500", good, http.StatusInternalServerError, false, false},
		{"503", good, http.StatusServiceUnavailable, false, false},
		{"404", good, http.StatusNotFound, false, false},
		{"an impostor's 403", impostor, http.StatusForbidden, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := answering(tc.cert, tc.code)
			ctx, cancel := context.WithTimeout(context.Background(), checkWait)
			defer cancel()
			err := chk.Check(ctx, addr)
			var de *DeniedError
			if got := errors.As(err, &de); got != tc.denied {
				t.Fatalf("check error %v: DeniedError %v, want %v", err, got, tc.denied)
			}
			if (err == nil) != tc.ok {
				t.Fatalf("check error %v, want ok=%v", err, tc.ok)
			}
			if tc.denied && (!strings.HasPrefix(de.Status, strings.Fields(tc.name)[0]) || !strings.Contains(err.Error(), "GET /readyz: "+de.Status)) {
				t.Errorf("DeniedError %q (status %q), want the status line", err, de.Status)
			}
		})
	}
}
