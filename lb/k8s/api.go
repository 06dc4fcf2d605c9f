package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// API is what Discovery needs from the cluster: the EndpointSlices of a
// namespace. NewAPI builds the production one.
type API interface {
	EndpointSlices(namespace string) EndpointSlices
}

// EndpointSlices lists and watches the EndpointSlices of one namespace,
// handing their JSON to Discovery, which decodes what it needs.
type EndpointSlices interface {
	// List returns the slices matching opts.LabelSelector, at
	// opts.ResourceVersion or later ("" is the latest, "0" any).
	List(ctx context.Context, opts ListOptions) (*SliceList, error)
	// Watch streams the changes after opts.ResourceVersion until ctx
	// ends, the Watcher is closed, or the server ends the watch (after
	// opts.TimeoutSeconds).
	Watch(ctx context.Context, opts ListOptions) (Watcher, error)
}

// ListOptions are the query parameters of a list or watch.
type ListOptions struct {
	LabelSelector   string
	ResourceVersion string
	// TimeoutSeconds bounds a watch on the server's side; 0: the server's
	// default.
	TimeoutSeconds int
}

// SliceList is a list response: the objects as JSON and the resource
// version to watch from.
type SliceList struct {
	ResourceVersion string
	Items           []json.RawMessage
}

// Watch event types (metav1.WatchEvent).
const (
	EventAdded    = "ADDED"
	EventModified = "MODIFIED"
	EventDeleted  = "DELETED"
	EventBookmark = "BOOKMARK"
	EventError    = "ERROR"
)

// Event is one watch event: its type and the object as JSON (a Status for
// EventError).
type Event struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// Watcher is an open watch.
type Watcher interface {
	// Next blocks for the next event. It returns io.EOF when the server
	// ended the watch, and an error when the watch broke or was closed.
	Next() (Event, error)
	// Close ends the watch; a blocked Next returns.
	Close() error
}

// StatusError is an error response of the API (a metav1.Status).
type StatusError struct {
	// Code is the HTTP status code.
	Code int `json:"code"`
	// Reason is the Status reason, such as "Expired" or "Forbidden".
	Reason string `json:"reason"`
	// Message is the server's explanation.
	Message string `json:"message"`
}

func (e *StatusError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Code)
	}
	if e.Reason != "" {
		return fmt.Sprintf("%s (%d %s)", msg, e.Code, e.Reason)
	}
	return fmt.Sprintf("%s (%d)", msg, e.Code)
}

// isExpired reports whether err says that the resource version asked for
// is too old (410 Gone, reason Expired): the list must start over from the
// latest state.
func isExpired(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && (se.Code == http.StatusGone || se.Reason == "Expired" || se.Reason == "Gone")
}

// Timings of the API client, as client-go's defaults.
const (
	// dialTimeout bounds a TCP connect when the RESTConfig has no Dial.
	dialTimeout = 30 * time.Second
	// tlsHandshakeTimeout bounds a TLS handshake.
	tlsHandshakeTimeout = 10 * time.Second
	// pingAfter is how long an HTTP/2 connection may stay silent before a
	// PING checks it, and pingTimeout how long the answer may take: a
	// watch on a dead API server is abandoned after at most 45 s (client-go:
	// HTTP2_READ_IDLE_TIMEOUT_SECONDS 30, HTTP2_PING_TIMEOUT_SECONDS 15).
	pingAfter   = 30 * time.Second
	pingTimeout = 15 * time.Second
	// maxListBytes bounds a list response: the API servers' own slices take
	// a few kilobytes.
	maxListBytes = 16 << 20
	// listTimeout bounds a list request.
	listTimeout = time.Minute
)

// NewAPI returns an API for the cluster described by rc: plain HTTPS GETs
// of /apis/discovery.k8s.io/v1 over Go's HTTP/2 client (HTTP/1.1 for http
// URLs), with JSON responses. It reads no file and contacts nothing: the
// CA, client certificate and token files are read when the first request
// is made, and again when they change (a rotated kubelet certificate).
func NewAPI(rc *RESTConfig) (API, error) {
	if rc == nil {
		return nil, errors.New("k8s: api: no rest config")
	}
	base, err := parseHost(rc.Host)
	if err != nil {
		return nil, fmt.Errorf("k8s: api: %w", err)
	}
	if base.Scheme == "http" && (len(rc.CertData) > 0 || rc.CertFile != "") {
		return nil, errors.New("k8s: api: a client certificate needs an https server")
	}
	if rc.Insecure && (len(rc.CAData) > 0 || rc.CAFile != "") {
		return nil, errors.New("k8s: api: a certificate authority together with insecure-skip-tls-verify")
	}
	if (len(rc.CertData) > 0 || rc.CertFile != "") != (len(rc.KeyData) > 0 || rc.KeyFile != "") {
		return nil, errors.New("k8s: api: a client certificate needs both the certificate and the key")
	}
	c := rc.clone()
	ua := c.UserAgent
	if ua == "" {
		ua = fmt.Sprintf("%s (%s/%s)", filepath.Base(os.Args[0]), runtime.GOOS, runtime.GOARCH)
	}
	a := &restAPI{cfg: c, base: base, userAgent: ua}
	if c.BearerTokenFile != "" {
		a.token = &fileToken{path: c.BearerTokenFile, token: c.BearerToken}
	}
	return a, nil
}

// parseHost parses a server URL; one without a scheme is https.
func parseHost(host string) (*url.URL, error) {
	if host == "" {
		return nil, errors.New("no server")
	}
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("server %q: %w", host, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("server %q is not an http(s) URL with a host", host)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server %q has a query or fragment", host)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// restAPI is the production API.
type restAPI struct {
	cfg       *RESTConfig
	base      *url.URL
	userAgent string
	token     *fileToken // nil: cfg.BearerToken as is

	once   sync.Once
	client *http.Client
	err    error
}

// httpClient builds the HTTP client on first use: that is when the CA file
// is read.
func (a *restAPI) httpClient() (*http.Client, error) {
	a.once.Do(func() {
		tr := &http.Transport{
			Proxy:               a.cfg.Proxy,
			DialContext:         a.cfg.Dial,
			TLSHandshakeTimeout: tlsHandshakeTimeout,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
			HTTP2:               &http.HTTP2Config{SendPingTimeout: pingAfter, PingTimeout: pingTimeout},
		}
		if tr.Proxy == nil {
			tr.Proxy = http.ProxyFromEnvironment
		}
		if tr.DialContext == nil {
			tr.DialContext = defaultDialer().DialContext
		}
		if a.base.Scheme == "https" {
			if tr.TLSClientConfig, a.err = a.cfg.tlsConfig(); a.err != nil {
				a.err = fmt.Errorf("k8s: api: %w", a.err)
				return
			}
		}
		a.client = &http.Client{Transport: tr}
	})
	return a.client, a.err
}

func (a *restAPI) EndpointSlices(namespace string) EndpointSlices {
	return &slicesClient{api: a, path: endpointSlicesPath(url.PathEscape(namespace))}
}

// get sends a GET for path?q and returns the response when its status is
// 200; any other status becomes a *StatusError.
func (a *restAPI) get(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	client, err := a.httpClient()
	if err != nil {
		return nil, err
	}
	u := *a.base
	u.Path += path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", a.userAgent)
	if err := a.authorize(req); err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, statusError(resp)
	}
	return resp, nil
}

// authorize adds the credentials and impersonation headers (the client
// certificate is the TLS layer's).
func (a *restAPI) authorize(req *http.Request) error {
	c := a.cfg
	token := c.BearerToken
	if a.token != nil {
		t, err := a.token.get()
		if err != nil {
			return fmt.Errorf("k8s: api: %w", err)
		}
		token = t
	}
	switch {
	case token != "":
		req.Header.Set("Authorization", "Bearer "+token)
	case c.Username != "" || c.Password != "":
		req.SetBasicAuth(c.Username, c.Password)
	}
	if im := c.Impersonate; im.UserName != "" {
		req.Header.Set("Impersonate-User", im.UserName)
		if im.UID != "" {
			req.Header.Set("Impersonate-Uid", im.UID)
		}
		for _, g := range im.Groups {
			req.Header.Add("Impersonate-Group", g)
		}
		for k, vs := range im.Extra {
			for _, v := range vs {
				req.Header.Add("Impersonate-Extra-"+url.PathEscape(k), v)
			}
		}
	}
	return nil
}

// statusError reads an error response: a Status object if the server sent
// one, else the HTTP status.
func statusError(resp *http.Response) error {
	se := &StatusError{}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, se) != nil || se.Code == 0 {
		se = &StatusError{Message: strings.TrimSpace(string(b))}
		if len(se.Message) > 200 {
			se.Message = se.Message[:200] + "..."
		}
	}
	se.Code = resp.StatusCode
	return se
}

// slicesClient is the EndpointSlices of one namespace.
type slicesClient struct {
	api  *restAPI
	path string
}

func (s *slicesClient) query(opts ListOptions) url.Values {
	q := url.Values{}
	if opts.LabelSelector != "" {
		q.Set("labelSelector", opts.LabelSelector)
	}
	if opts.ResourceVersion != "" {
		q.Set("resourceVersion", opts.ResourceVersion)
	}
	return q
}

func (s *slicesClient) List(ctx context.Context, opts ListOptions) (*SliceList, error) {
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	resp, err := s.api.get(ctx, s.path, s.query(opts))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var l struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxListBytes)).Decode(&l); err != nil {
		return nil, fmt.Errorf("k8s: api: list: %w", err)
	}
	return &SliceList{ResourceVersion: l.Metadata.ResourceVersion, Items: l.Items}, nil
}

func (s *slicesClient) Watch(ctx context.Context, opts ListOptions) (Watcher, error) {
	q := s.query(opts)
	q.Set("watch", "true")
	q.Set("allowWatchBookmarks", "true")
	if opts.TimeoutSeconds > 0 {
		q.Set("timeoutSeconds", strconv.Itoa(opts.TimeoutSeconds))
	}
	ctx, cancel := context.WithCancel(ctx)
	resp, err := s.api.get(ctx, s.path, q)
	if err != nil {
		cancel()
		return nil, err
	}
	return &httpWatcher{body: resp.Body, dec: json.NewDecoder(resp.Body), cancel: cancel}, nil
}

// httpWatcher decodes a watch response: one JSON event after another.
type httpWatcher struct {
	body   io.ReadCloser
	dec    *json.Decoder
	cancel context.CancelFunc
}

func (w *httpWatcher) Next() (Event, error) {
	var e Event
	if err := w.dec.Decode(&e); err != nil {
		return Event{}, err
	}
	if e.Type == "" {
		return Event{}, errors.New("k8s: api: watch event without a type")
	}
	return e, nil
}

func (w *httpWatcher) Close() error {
	w.cancel()
	return w.body.Close()
}
