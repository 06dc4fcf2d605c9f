package k8s

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// RESTConfig says how to reach and authenticate to the API: what
// Kubeconfig.RESTConfig reads from a kubeconfig's current context, with
// the field names of client-go's rest.Config.
type RESTConfig struct {
	// Host is the API server's URL, such as https://192.0.2.10:6443,
	// possibly with a path prefix; without a scheme it is https.
	Host string
	// TLSClientConfig holds the CA, the client certificate and the name
	// the server certificate is verified against.
	TLSClientConfig
	// BearerToken is sent as "Authorization: Bearer". When
	// BearerTokenFile is set too, the file is read again once a minute
	// (a rotated token) and wins once read.
	BearerToken     string
	BearerTokenFile string
	// Username and Password are for HTTP basic authentication, when there
	// is no token.
	Username, Password string
	// Impersonate asks the server to act as another user.
	Impersonate ImpersonationConfig
	// Proxy picks the HTTP proxy of a request; nil: the environment's
	// (HTTPS_PROXY, NO_PROXY...), as client-go.
	Proxy func(*http.Request) (*url.URL, error)
	// UserAgent is sent with every request; empty: the program's name,
	// OS and architecture.
	UserAgent string
	// Dial, if set, opens the connections instead of a net.Dialer.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// TLSClientConfig is the TLS side of a RESTConfig. Inline data wins over
// the file of the same item.
type TLSClientConfig struct {
	// Insecure skips the server certificate's verification; it excludes a
	// CA.
	Insecure bool
	// ServerName, if set, is the name the server certificate must carry
	// (and the SNI); else the host of RESTConfig.Host.
	ServerName string
	// CAFile and CAData are the certificate authorities (PEM); neither:
	// the system's roots.
	CAFile string
	CAData []byte
	// CertFile/CertData and KeyFile/KeyData are the client certificate and
	// its key (PEM). Files are read again when they change, at most once a
	// minute (kubelet client certificates rotate).
	CertFile string
	CertData []byte
	KeyFile  string
	KeyData  []byte
}

// ImpersonationConfig is the user a request acts as (Impersonate-* headers).
type ImpersonationConfig struct {
	UserName string
	UID      string
	Groups   []string
	Extra    map[string][]string
}

// clone returns a deep copy of c.
func (c *RESTConfig) clone() *RESTConfig {
	out := *c
	out.CAData = slices.Clone(c.CAData)
	out.CertData = slices.Clone(c.CertData)
	out.KeyData = slices.Clone(c.KeyData)
	out.Impersonate.Groups = slices.Clone(c.Impersonate.Groups)
	out.Impersonate.Extra = maps.Clone(c.Impersonate.Extra)
	return &out
}

// tlsConfig builds the client TLS configuration: it reads the CA now and
// the client certificate at each handshake (reloaded when its files
// change).
func (c *RESTConfig) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.Insecure, //nolint:gosec // the kubeconfig's explicit choice
	}
	caPEM, err := dataOrFile(c.CAData, c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("certificate authority: %w", err)
	}
	if caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("no PEM certificate in the certificate authority")
		}
		tc.RootCAs = pool
	}
	if len(c.CertData) > 0 || c.CertFile != "" {
		src := &certSource{certData: c.CertData, certFile: c.CertFile, keyData: c.KeyData, keyFile: c.KeyFile}
		if _, err := src.get(); err != nil {
			return nil, err
		}
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return src.get()
		}
	}
	return tc, nil
}

// dataOrFile returns inline data, or else the contents of file, or else
// nil.
func dataOrFile(data []byte, file string) ([]byte, error) {
	if len(data) > 0 {
		return data, nil
	}
	if file == "" {
		return nil, nil
	}
	return os.ReadFile(file)
}

// reloadCheck is how often certificate and token files are checked for a
// new version.
const reloadCheck = time.Minute

// certSource is a client certificate whose files are read again when they
// change.
type certSource struct {
	certData, keyData []byte
	certFile, keyFile string
	now               func() time.Time // nil: time.Now

	mu      sync.Mutex
	cert    *tls.Certificate
	checked time.Time
	stamp   string // the files' sizes and modification times when read
}

// get returns the certificate, reading its files first when they changed
// since the last read and the last check is reloadCheck ago. A failed
// reload keeps the previous certificate.
func (s *certSource) get() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now
	if s.now != nil {
		now = s.now
	}
	t := now()
	if s.cert != nil && (s.certFile == "" && s.keyFile == "" || t.Sub(s.checked) < reloadCheck) {
		return s.cert, nil
	}
	s.checked = t
	stamp := fileStamp(s.certFile) + "|" + fileStamp(s.keyFile)
	if s.cert != nil && stamp == s.stamp {
		return s.cert, nil
	}
	cert, err := loadKeyPair(s.certData, s.certFile, s.keyData, s.keyFile)
	if err != nil {
		if s.cert != nil {
			return s.cert, nil
		}
		return nil, err
	}
	s.cert, s.stamp = cert, stamp
	return cert, nil
}

// fileStamp identifies a version of a file by size and modification time.
func fileStamp(path string) string {
	if path == "" {
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "?"
	}
	return fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
}

// loadKeyPair parses a client certificate and its key from data or files.
func loadKeyPair(certData []byte, certFile string, keyData []byte, keyFile string) (*tls.Certificate, error) {
	certPEM, err := dataOrFile(certData, certFile)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	keyPEM, err := dataOrFile(keyData, keyFile)
	if err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	switch {
	case certPEM == nil && keyPEM == nil:
		return nil, nil
	case certPEM == nil:
		return nil, errors.New("a client key without a certificate")
	case keyPEM == nil:
		return nil, errors.New("a client certificate without a key")
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	return &cert, nil
}

// fileToken is a bearer token file, read again at most once a minute.
type fileToken struct {
	path string

	mu    sync.Mutex
	token string // the last token read, or the initial one
	read  time.Time
}

// get returns the file's token, reading the file when the last read is
// reloadCheck ago. A failed read keeps the previous token, if any.
func (f *fileToken) get() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.read.IsZero() && time.Since(f.read) < reloadCheck {
		return f.token, nil
	}
	b, err := os.ReadFile(f.path)
	if err == nil && len(bytes.TrimSpace(b)) == 0 {
		err = fmt.Errorf("token file %s is empty", f.path)
	}
	if err != nil {
		if f.token != "" {
			return f.token, nil
		}
		return "", fmt.Errorf("token: %w", err)
	}
	f.token, f.read = strings.TrimSpace(string(b)), time.Now()
	return f.token, nil
}

// defaultDialer is the dialer of an API without RESTConfig.Dial.
func defaultDialer() *net.Dialer {
	return &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
}
