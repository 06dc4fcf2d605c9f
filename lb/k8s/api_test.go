package k8s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// wireSlice is default/kubernetes at resource version rv with ready
// endpoints addrs on port https/6443.
func wireSlice(rv string, addrs ...string) discoveryv1.EndpointSlice {
	name, port := "https", int32(6443)
	return discoveryv1.EndpointSlice{
		TypeMeta:    metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
		ObjectMeta:  metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", ResourceVersion: rv, Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: addrs}},
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
	}
}

// TestNewAPIWire runs Discovery over NewAPI against an HTTP server that
// speaks the API's list and watch wire format: the client asks for the
// right path, label selector and resource versions, decodes the list,
// follows the watch, and the addresses reach OnChange.
func TestNewAPIWire(t *testing.T) {
	var (
		mu      sync.Mutex
		queries []url.Values
		agents  []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/prefix/apis/discovery.k8s.io/v1/namespaces/default/endpointslices" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		queries = append(queries, r.URL.Query())
		agents = append(agents, r.Header.Get("User-Agent"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("watch") != "true" {
			_ = json.NewEncoder(w).Encode(discoveryv1.EndpointSliceList{
				TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSliceList"},
				ListMeta: metav1.ListMeta{ResourceVersion: "1"},
				Items:    []discoveryv1.EndpointSlice{wireSlice("1", "192.0.2.11")},
			})
			return
		}
		// One event, then hold the watch open until the client goes.
		obj, _ := json.Marshal(wireSlice("2", "192.0.2.11", "192.0.2.12"))
		_ = json.NewEncoder(w).Encode(map[string]any{"type": "MODIFIED", "object": json.RawMessage(obj)})
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()

	api, err := NewAPI(&RESTConfig{Host: srv.URL + "/prefix/", UserAgent: "nlb-test"})
	if err != nil {
		t.Fatal(err)
	}
	changes := make(chan []netip.AddrPort, 10)
	d, err := New(Config{Client: api, OnChange: func(b []netip.AddrPort) { changes <- b }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	want := aps("192.0.2.11:6443", "192.0.2.12:6443")
	deadline := time.After(wait)
	for got := []netip.AddrPort(nil); !slices.Equal(got, want); {
		select {
		case got = <-changes:
		case <-deadline:
			t.Fatalf("OnChange never reported %v (last %v)", want, got)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(queries) < 2 {
		t.Fatalf("queries %v", queries)
	}
	for i, q := range queries {
		if sel := q.Get("labelSelector"); sel != "kubernetes.io/service-name=kubernetes" {
			t.Errorf("request %d: labelSelector %q", i, sel)
		}
		if agents[i] != "nlb-test" {
			t.Errorf("request %d: User-Agent %q", i, agents[i])
		}
	}
	// The first list may come from the API server's cache; the watch
	// starts at the list's resource version, with bookmarks and a
	// timeout of 5 to 10 minutes.
	if l := queries[0]; l.Get("watch") != "" || l.Get("resourceVersion") != "0" {
		t.Errorf("list query %v", l)
	}
	w := queries[1]
	timeout, _ := strconv.Atoi(w.Get("timeoutSeconds"))
	if w.Get("watch") != "true" || w.Get("resourceVersion") != "1" || w.Get("allowWatchBookmarks") != "true" ||
		timeout < 300 || timeout > 600 {
		t.Errorf("watch query %v", w)
	}
}

// TestAPIStatusErrors: an error response becomes a *StatusError carrying
// the Status's code, reason and message, or the HTTP status when the body
// is not a Status; 410 Expired is recognised.
func TestAPIStatusErrors(t *testing.T) {
	status := http.StatusGone
	body := `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	defer srv.Close()
	api, err := NewAPI(&RESTConfig{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	es := api.EndpointSlices("default")
	_, err = es.List(context.Background(), ListOptions{})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 410 || se.Reason != "Expired" || !strings.Contains(se.Message, "too old") || !isExpired(err) {
		t.Errorf("List: %v (%#v)", err, se)
	}
	status, body = http.StatusForbidden, "forbidden: no"
	_, err = es.Watch(context.Background(), ListOptions{})
	if !errors.As(err, &se) || se.Code != 403 || se.Message != "forbidden: no" || isExpired(err) {
		t.Errorf("Watch: %v (%#v)", err, se)
	}
}

// TestAPICredentials: the client certificate and the CA of the
// configuration are used in the TLS handshake, the bearer token (re-read
// from its file) and impersonation go in headers.
func TestAPICredentials(t *testing.T) {
	p := newPKI(t)
	serverCert, err := tls.X509KeyPair(p.serverPEM, p.serverKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AppendCertsFromPEM(p.caPEM)
	type seen struct {
		cn    string
		auth  string
		as    string
		group []string
	}
	reqs := make(chan seen, 10)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seen{auth: r.Header.Get("Authorization"), as: r.Header.Get("Impersonate-User"), group: r.Header.Values("Impersonate-Group")}
		if len(r.TLS.PeerCertificates) > 0 {
			s.cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		reqs <- s
		io.WriteString(w, `{"metadata":{"resourceVersion":"3"},"items":[]}`)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: clientCAs, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()

	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "token", []byte("first\n"))
	certFile := writeFile(t, dir, "client.crt", p.clientPEM)
	keyFile := writeFile(t, dir, "client.key", p.clientKeyPEM)
	rc := &RESTConfig{
		Host:            srv.URL,
		TLSClientConfig: TLSClientConfig{CAData: p.caPEM, CertFile: certFile, KeyFile: keyFile},
		BearerToken:     "first",
		BearerTokenFile: tokenFile,
		Impersonate:     ImpersonationConfig{UserName: "alice", Groups: []string{"a", "b"}},
	}
	api, err := NewAPI(rc)
	if err != nil {
		t.Fatal(err)
	}
	// NewAPI copies the configuration.
	rc.Impersonate.Groups[0] = "changed"
	l, err := api.EndpointSlices("default").List(context.Background(), ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.ResourceVersion != "3" || len(l.Items) != 0 {
		t.Errorf("list %+v", l)
	}
	if s := <-reqs; s.cn != "nlb" || s.auth != "Bearer first" || s.as != "alice" || !slices.Equal(s.group, []string{"a", "b"}) {
		t.Errorf("request %+v", s)
	}

	// A server certificate from another CA fails.
	other := newPKI(t)
	bad, err := NewAPI(&RESTConfig{Host: srv.URL, TLSClientConfig: TLSClientConfig{CAData: other.caPEM, CertFile: certFile, KeyFile: keyFile}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.EndpointSlices("default").List(context.Background(), ListOptions{}); err == nil {
		t.Error("a server certificate from another CA was accepted")
	}
	// A missing CA file fails the requests, not NewAPI (which reads
	// nothing).
	missing, err := NewAPI(&RESTConfig{Host: srv.URL, TLSClientConfig: TLSClientConfig{CAFile: filepath.Join(dir, "missing")}})
	if err != nil {
		t.Fatalf("NewAPI read the CA file: %v", err)
	}
	if _, err := missing.EndpointSlices("default").List(context.Background(), ListOptions{}); err == nil || !strings.HasPrefix(err.Error(), "k8s: ") {
		t.Errorf("List with a missing CA file: %v", err)
	}
}

func TestNewAPIErrors(t *testing.T) {
	for _, rc := range []*RESTConfig{
		nil,
		{},
		{Host: "ftp://192.0.2.1"},
		{Host: "https://"},
		{Host: "https://192.0.2.1?x=1"},
		{Host: "https://192.0.2.1", TLSClientConfig: TLSClientConfig{Insecure: true, CAData: []byte("x")}},
		{Host: "https://192.0.2.1", TLSClientConfig: TLSClientConfig{CertData: []byte("x")}},
		{Host: "https://192.0.2.1", TLSClientConfig: TLSClientConfig{KeyFile: "/x"}},
		{Host: "http://192.0.2.1", TLSClientConfig: TLSClientConfig{CertData: []byte("x"), KeyData: []byte("y")}},
	} {
		if _, err := NewAPI(rc); err == nil || !strings.HasPrefix(err.Error(), "k8s: ") {
			t.Errorf("NewAPI(%+v) = %v", rc, err)
		}
	}
	// A host without a scheme is https.
	api, err := NewAPI(&RESTConfig{Host: "192.0.2.1:6443"})
	if err != nil {
		t.Fatal(err)
	}
	if u := api.(*restAPI).base.String(); u != "https://192.0.2.1:6443" {
		t.Errorf("base URL %q", u)
	}
}

// TestTokenFileReload: a bearer token file is read again once reloadCheck
// has passed, and a failed read keeps the last token.
func TestTokenFileReload(t *testing.T) {
	path := writeFile(t, t.TempDir(), "token", []byte(" one\n"))
	f := &fileToken{path: path}
	if tok, err := f.get(); err != nil || tok != "one" {
		t.Fatalf("get() = %q, %v", tok, err)
	}
	writeFile(t, filepath.Dir(path), "token", []byte("two"))
	if tok, _ := f.get(); tok != "one" {
		t.Errorf("re-read before reloadCheck: %q", tok)
	}
	f.read = f.read.Add(-reloadCheck)
	if tok, _ := f.get(); tok != "two" {
		t.Errorf("not re-read after reloadCheck: %q", tok)
	}
	os.Remove(path)
	f.read = f.read.Add(-reloadCheck)
	if tok, err := f.get(); err != nil || tok != "two" {
		t.Errorf("after the file went: %q, %v", tok, err)
	}
	if _, err := (&fileToken{path: path}).get(); err == nil {
		t.Error("a missing token file gave a token")
	}
}

// TestCertSourceReload: client certificate files are read again when they
// change, at most once per reloadCheck; a broken new pair keeps the old.
func TestCertSourceReload(t *testing.T) {
	p1, p2 := newPKI(t), newPKI(t)
	dir := t.TempDir()
	certFile := writeFile(t, dir, "c.crt", p1.clientPEM)
	keyFile := writeFile(t, dir, "c.key", p1.clientKeyPEM)
	now := time.Now()
	s := &certSource{certFile: certFile, keyFile: keyFile, now: func() time.Time { return now }}
	leaf := func() []byte {
		t.Helper()
		c, err := s.get()
		if err != nil {
			t.Fatal(err)
		}
		return c.Certificate[0]
	}
	first := leaf()
	writeFile(t, dir, "c.crt", p2.clientPEM)
	writeFile(t, dir, "c.key", p2.clientKeyPEM)
	// Make the change visible to a coarse file-system clock.
	later := time.Now().Add(time.Second)
	os.Chtimes(certFile, later, later)
	if !slices.Equal(leaf(), first) {
		t.Error("reloaded before reloadCheck")
	}
	now = now.Add(reloadCheck)
	second := leaf()
	if slices.Equal(second, first) {
		t.Error("not reloaded after a change")
	}
	// A certificate that does not match its key: the last good pair stays.
	writeFile(t, dir, "c.crt", p1.clientPEM)
	os.Chtimes(certFile, later.Add(time.Second), later.Add(time.Second))
	now = now.Add(reloadCheck)
	if !slices.Equal(leaf(), second) {
		t.Error("a mismatched pair replaced the good one")
	}
}

// TestHTTPWatcher decodes a stream of events and ends with io.EOF.
func TestHTTPWatcher(t *testing.T) {
	body := `{"type":"ADDED","object":{"metadata":{"name":"a"}}}
{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}`
	w := &httpWatcher{body: io.NopCloser(strings.NewReader(body)), cancel: func() {}}
	w.dec = json.NewDecoder(w.body)
	for _, want := range []string{EventAdded, EventBookmark} {
		e, err := w.Next()
		if err != nil || e.Type != want {
			t.Fatalf("Next() = %+v, %v; want %s", e, err, want)
		}
	}
	if _, err := w.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("Next() at the end = %v", err)
	}
	w = &httpWatcher{body: io.NopCloser(strings.NewReader(`{"object":{}}`)), cancel: func() {}}
	w.dec = json.NewDecoder(w.body)
	if _, err := w.Next(); err == nil {
		t.Error("an event without a type was accepted")
	}
}

// TestAPIDial: RESTConfig.Dial opens the connections.
func TestAPIDial(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `{"items":[]}`)
	}))
	defer srv.Close()
	var dials sync.Map
	api, err := NewAPI(&RESTConfig{Host: srv.URL, Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Store(addr, true)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.EndpointSlices("default").List(context.Background(), ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := dials.Load(strings.TrimPrefix(srv.URL, "http://")); !ok {
		t.Error("Dial not used")
	}
}
