package k8s

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/nlb-dev/nlb/input"
)

// Kubeconfig is a parsed kubeconfig file and its current context.
type Kubeconfig struct {
	// Path is the file it was read from.
	Path string
	// Config is the whole file. File references in it (certificate-authority,
	// client-certificate, client-key, tokenFile, a relative exec command) are
	// absolute: relative ones are resolved against the file's directory, as
	// kubectl does.
	Config *ConfigFile
	// Context is the name of the current context.
	Context string
	// ClusterName is the name of the current context's cluster.
	ClusterName string
	// Cluster is the current context's cluster.
	Cluster *Cluster
	// AuthInfo is the current context's user; an empty one when the
	// context names none.
	AuthInfo *AuthInfo

	// doc is the file as a JSON object, for WithServer, with the file
	// references resolved.
	doc map[string]any
}

// ConfigFile is a kubeconfig file (clientcmd's v1 Config): the fields nlb
// reads, named as in client-go's clientcmd/api, with the named lists as
// maps. Fields nlb does not read are kept by WithServer but not here.
type ConfigFile struct {
	CurrentContext string
	Clusters       map[string]*Cluster
	Contexts       map[string]*Context
	AuthInfos      map[string]*AuthInfo
}

// Cluster is a kubeconfig cluster.
type Cluster struct {
	Server                   string `json:"server"`
	TLSServerName            string `json:"tls-server-name"`
	InsecureSkipTLSVerify    bool   `json:"insecure-skip-tls-verify"`
	CertificateAuthority     string `json:"certificate-authority"`
	CertificateAuthorityData []byte `json:"certificate-authority-data"`
	ProxyURL                 string `json:"proxy-url"`
}

// Context is a kubeconfig context.
type Context struct {
	Cluster   string `json:"cluster"`
	AuthInfo  string `json:"user"`
	Namespace string `json:"namespace"`
}

// AuthInfo is a kubeconfig user. Exec and AuthProvider (credential
// plugins) are recorded but not supported: RESTConfig refuses them.
type AuthInfo struct {
	ClientCertificate     string              `json:"client-certificate"`
	ClientCertificateData []byte              `json:"client-certificate-data"`
	ClientKey             string              `json:"client-key"`
	ClientKeyData         []byte              `json:"client-key-data"`
	Token                 string              `json:"token"`
	TokenFile             string              `json:"tokenFile"`
	Impersonate           string              `json:"as"`
	ImpersonateUID        string              `json:"as-uid"`
	ImpersonateGroups     []string            `json:"as-groups"`
	ImpersonateUserExtra  map[string][]string `json:"as-user-extra"`
	Username              string              `json:"username"`
	Password              string              `json:"password"`
	Exec                  json.RawMessage     `json:"exec"`
	AuthProvider          json.RawMessage     `json:"auth-provider"`
}

// v1Config is the file format: named lists, their entries decoded one by
// one (decodeNamed) so that errors name the entry.
type v1Config struct {
	APIVersion     string            `json:"apiVersion"`
	Kind           string            `json:"kind"`
	CurrentContext string            `json:"current-context"`
	Clusters       []json.RawMessage `json:"clusters"`
	Contexts       []json.RawMessage `json:"contexts"`
	AuthInfos      []json.RawMessage `json:"users"`
}

// LoadKubeconfig reads the kubeconfig at path. It fails when the file cannot
// be read or parsed, or has no current context, or the context's cluster is
// missing. A missing user is not an error (the cluster may not need one).
func LoadKubeconfig(path string) (*Kubeconfig, error) {
	b, err := input.ReadFile(path, input.MaxKubeconfigSize)
	if err != nil {
		return nil, fmt.Errorf("k8s: kubeconfig: %w", err)
	}
	k, err := parseKubeconfig(path, b)
	if err != nil {
		return nil, fmt.Errorf("k8s: kubeconfig %s: %w", path, err)
	}
	return k, nil
}

// parseKubeconfig parses the contents of the kubeconfig at path.
func parseKubeconfig(path string, data []byte) (*Kubeconfig, error) {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if len(bytes.TrimSpace(data)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.UseNumber() // WithServer writes numbers back as they were
		if err := dec.Decode(&doc); err != nil {
			return nil, fmt.Errorf("not a kubeconfig: %w", fieldError("", err))
		}
	}
	if doc == nil {
		doc = map[string]any{}
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	// As kubectl does: relative file references are relative to the file.
	resolvePaths(doc, dir)
	if j, err = json.Marshal(doc); err != nil {
		return nil, err
	}
	var v1 v1Config
	if err := decodeAt("", j, &v1); err != nil {
		return nil, err
	}
	if v1.APIVersion != "" && v1.APIVersion != "v1" {
		return nil, fmt.Errorf("apiVersion %q, want v1", v1.APIVersion)
	}
	if v1.Kind != "" && v1.Kind != "Config" {
		return nil, fmt.Errorf("kind %q, want Config", v1.Kind)
	}
	cfg := &ConfigFile{
		CurrentContext: v1.CurrentContext,
		Clusters:       map[string]*Cluster{},
		Contexts:       map[string]*Context{},
		AuthInfos:      map[string]*AuthInfo{},
	}
	if err := decodeNamed(cfg.Clusters, "clusters", "cluster", v1.Clusters); err != nil {
		return nil, err
	}
	if err := decodeNamed(cfg.Contexts, "contexts", "context", v1.Contexts); err != nil {
		return nil, err
	}
	if err := decodeNamed(cfg.AuthInfos, "users", "user", v1.AuthInfos); err != nil {
		return nil, err
	}

	k := &Kubeconfig{Path: path, Config: cfg, Context: cfg.CurrentContext, doc: doc}
	if k.Context == "" {
		return nil, errors.New("no current-context")
	}
	ctx := cfg.Contexts[k.Context]
	if ctx == nil {
		return nil, fmt.Errorf("current-context %q not found", k.Context)
	}
	k.ClusterName = ctx.Cluster
	if k.Cluster = cfg.Clusters[ctx.Cluster]; k.Cluster == nil {
		return nil, fmt.Errorf("cluster %q of context %q not found", ctx.Cluster, k.Context)
	}
	if k.AuthInfo = cfg.AuthInfos[ctx.AuthInfo]; k.AuthInfo == nil {
		k.AuthInfo = &AuthInfo{}
	}
	return k, nil
}

// decodeNamed decodes the entries of the named list key ({name, <body>})
// into m; a missing body is an empty one. Errors name the entry's field,
// as in users[0].user.client-key-data.
func decodeNamed[T any](m map[string]*T, key, body string, entries []json.RawMessage) error {
	for i, raw := range entries {
		path := fmt.Sprintf("%s[%d]", key, i)
		var e map[string]json.RawMessage
		if err := decodeAt(path, raw, &e); err != nil {
			return err
		}
		var name string
		if n, ok := e["name"]; ok {
			if err := decodeAt(path+".name", n, &name); err != nil {
				return err
			}
		}
		v := new(T)
		if b, ok := e[body]; ok {
			if err := decodeAt(path+"."+body, b, v); err != nil {
				return err
			}
		}
		if _, dup := m[name]; dup {
			return fmt.Errorf("%s.name: duplicate %s name %q", path, body, name)
		}
		m[name] = v
	}
	return nil
}

// decodeAt decodes the JSON raw, found at path in the file, into v. Its
// errors name the field by its path and the expected value in the file's
// terms, never a Go type.
func decodeAt(path string, raw json.RawMessage, v any) error {
	err := json.Unmarshal(raw, v)
	if err == nil {
		return nil
	}
	var ce base64.CorruptInputError
	if errors.As(err, &ce) {
		// encoding/json does not say which field held the bad data.
		var m map[string]json.RawMessage
		_ = json.Unmarshal(raw, &m)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			var s string
			if !strings.HasSuffix(k, "-data") || json.Unmarshal(m[k], &s) != nil {
				continue
			}
			if _, err := base64.StdEncoding.DecodeString(s); err != nil {
				return fmt.Errorf("%s: %w", joinPath(path, k), err)
			}
		}
	}
	return fieldError(path, err)
}

// fieldError rewrites an encoding/json error at path without Go types.
func fieldError(path string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		got := te.Value
		switch got {
		case "object":
			got = "a mapping"
		case "array":
			got = "a list"
		case "string", "bool", "number":
			got = "a " + got
		}
		return fmt.Errorf("%s: want %s, not %s", joinPath(path, te.Field), jsonKind(te.Type), got)
	}
	if path == "" {
		return err
	}
	return fmt.Errorf("%s: %w", path, err)
}

// joinPath joins a field path and a field ("" at the top level).
func joinPath(path, field string) string {
	switch {
	case path == "" && field == "":
		return "top level"
	case path == "":
		return field
	case field == "":
		return path
	}
	return path + "." + field
}

// jsonKind says what a kubeconfig holds for a value of Go type t.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "base64 data (a string)"
		}
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return "a value"
}

// resolvePaths makes the file references of every cluster and user in doc
// absolute against dir, as clientcmd.ResolveLocalPaths does.
func resolvePaths(doc map[string]any, dir string) {
	abs := func(m map[string]any, key string) {
		if p, ok := m[key].(string); ok && p != "" && !filepath.IsAbs(p) {
			m[key] = filepath.Join(dir, p)
		}
	}
	for _, c := range namedBodies(doc, "clusters", "cluster") {
		abs(c, "certificate-authority")
	}
	for _, u := range namedBodies(doc, "users", "user") {
		abs(u, "client-certificate")
		abs(u, "client-key")
		abs(u, "tokenFile")
		// An exec command is resolved only when it is a path, not a
		// name looked up in PATH.
		if exec, ok := u["exec"].(map[string]any); ok {
			if cmd, ok := exec["command"].(string); ok && strings.ContainsRune(cmd, filepath.Separator) {
				abs(exec, "command")
			}
		}
	}
}

// namedBodies returns the bodies (under key body) of the named list key of
// doc, in order.
func namedBodies(doc map[string]any, key, body string) []map[string]any {
	list, _ := doc[key].([]any)
	var out []map[string]any
	for _, e := range list {
		if e, ok := e.(map[string]any); ok {
			if b, ok := e[body].(map[string]any); ok {
				out = append(out, b)
			}
		}
	}
	return out
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
// NewAPI. It reads a token file if the user names one and no token, as
// clientcmd does, and refuses what clientcmd would refuse (a client
// certificate without its key, both a token and basic authentication...)
// and credential plugins (exec, auth-provider), which nlb does not run.
func (k *Kubeconfig) RESTConfig() (*RESTConfig, error) {
	rc, err := k.restConfig()
	if err != nil {
		return nil, fmt.Errorf("k8s: kubeconfig %s: %w", k.Path, err)
	}
	return rc, nil
}

func (k *Kubeconfig) restConfig() (*RESTConfig, error) {
	c, a := k.Cluster, k.AuthInfo
	if c.Server == "" {
		return nil, fmt.Errorf("no server found for cluster %q", k.ClusterName)
	}
	if _, err := parseHost(c.Server); err != nil {
		return nil, err
	}
	if c.InsecureSkipTLSVerify && (c.CertificateAuthority != "" || len(c.CertificateAuthorityData) > 0) {
		return nil, fmt.Errorf("cluster %q: a certificate authority together with insecure-skip-tls-verify", k.ClusterName)
	}
	user := k.Config.Contexts[k.Context].AuthInfo
	if present(a.Exec) || present(a.AuthProvider) {
		return nil, fmt.Errorf("user %q: credential plugins (exec, auth-provider) are not supported; use a client certificate or a token", user)
	}
	hasCert := a.ClientCertificate != "" || len(a.ClientCertificateData) > 0
	hasKey := a.ClientKey != "" || len(a.ClientKeyData) > 0
	if hasCert && !hasKey {
		return nil, fmt.Errorf("user %q: client-key-data or client-key must be specified to use the client certificate", user)
	}
	if a.Token != "" && (a.Username != "" || a.Password != "") {
		return nil, fmt.Errorf("user %q: more than one authentication method (token, basic auth)", user)
	}
	if a.Impersonate == "" && (a.ImpersonateUID != "" || len(a.ImpersonateGroups) > 0 || len(a.ImpersonateUserExtra) > 0) {
		return nil, fmt.Errorf("user %q: impersonating a uid, groups or extra without a user", user)
	}
	rc := &RESTConfig{
		Host: c.Server,
		TLSClientConfig: TLSClientConfig{
			Insecure:   c.InsecureSkipTLSVerify,
			ServerName: c.TLSServerName,
			CAFile:     c.CertificateAuthority,
			CAData:     c.CertificateAuthorityData,
		},
		BearerToken: a.Token,
		Username:    a.Username,
		Password:    a.Password,
		Impersonate: ImpersonationConfig{
			UserName: a.Impersonate,
			UID:      a.ImpersonateUID,
			Groups:   a.ImpersonateGroups,
			Extra:    a.ImpersonateUserExtra,
		},
	}
	if hasCert {
		rc.CertFile, rc.CertData = a.ClientCertificate, a.ClientCertificateData
		rc.KeyFile, rc.KeyData = a.ClientKey, a.ClientKeyData
	}
	if a.TokenFile != "" {
		rc.BearerTokenFile = a.TokenFile
		if rc.BearerToken == "" {
			b, err := input.ReadFile(a.TokenFile, input.MaxTokenSize)
			if err != nil {
				return nil, err
			}
			rc.BearerToken = strings.TrimSpace(string(b))
		}
	}
	if c.ProxyURL != "" {
		u, err := url.Parse(c.ProxyURL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("cluster %q: invalid proxy-url %q", k.ClusterName, c.ProxyURL)
		}
		switch u.Scheme {
		case "http", "https", "socks5":
		default:
			return nil, fmt.Errorf("cluster %q: proxy-url %q: scheme %q is not http, https or socks5", k.ClusterName, c.ProxyURL, u.Scheme)
		}
		rc.Proxy = http.ProxyURL(u)
	}
	return rc, nil
}

// present reports whether a JSON field was given a value.
func present(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

// CAPool returns the current cluster's certificate authorities, from
// certificate-authority-data or else the certificate-authority file. It
// returns nil, nil when the cluster names neither (the system roots apply).
func (k *Kubeconfig) CAPool() (*x509.CertPool, error) {
	pem, err := dataOrFile(k.Cluster.CertificateAuthorityData, k.Cluster.CertificateAuthority)
	if err != nil {
		return nil, fmt.Errorf("k8s: kubeconfig %s: %w", k.Path, err)
	}
	if pem == nil {
		return nil, nil
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
	cert, err := loadKeyPair(a.ClientCertificateData, a.ClientCertificate, a.ClientKeyData, a.ClientKey)
	if err != nil {
		return nil, fmt.Errorf("k8s: kubeconfig %s: %w", k.Path, err)
	}
	return cert, nil
}

// ClientCertificateFunc returns the current user's client certificate as a
// tls.Config.GetClientCertificate function that reads the certificate and
// key files again when they change (checked at most once a minute; a
// failed read keeps the previous pair), or nil, nil when the user has no
// certificate. It reads the certificate once now and fails as
// ClientCertificate does.
func (k *Kubeconfig) ClientCertificateFunc() (func(*tls.CertificateRequestInfo) (*tls.Certificate, error), error) {
	a := k.AuthInfo
	src := &certSource{certData: a.ClientCertificateData, certFile: a.ClientCertificate, keyData: a.ClientKeyData, keyFile: a.ClientKey}
	cert, err := src.get()
	if err != nil {
		return nil, fmt.Errorf("k8s: kubeconfig %s: %w", k.Path, err)
	}
	if cert == nil {
		return nil, nil
	}
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return src.get() }, nil
}

// WithServer returns a copy of the whole kubeconfig, as YAML, in which only
// the current cluster's server is replaced; every other cluster, context,
// user and setting stays, including fields nlb does not read. server is
// either a URL (https://127.0.0.1:7443), which replaces the old one, or
// host:port (127.0.0.1:7443, [::1]:7443), which replaces only the old URL's
// host and port, as k0s's NLLB does. File references in the copy are
// absolute, so it may be written to any directory. The Kubeconfig itself is
// not changed.
func (k *Kubeconfig) WithServer(server string) ([]byte, error) {
	u, err := k.newServer(server)
	if err != nil {
		return nil, err
	}
	// A deep copy of the document through JSON.
	j, err := json.Marshal(k.doc)
	if err != nil {
		return nil, fmt.Errorf("k8s: kubeconfig %s: %w", k.Path, err)
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("k8s: kubeconfig %s: %w", k.Path, err)
	}
	found := false
	list, _ := doc["clusters"].([]any)
	for _, e := range list {
		e, ok := e.(map[string]any)
		if !ok || e["name"] != k.ClusterName {
			continue
		}
		c, ok := e["cluster"].(map[string]any)
		if !ok {
			c = map[string]any{}
			e["cluster"] = c
		}
		c["server"] = u
		found = true
	}
	if !found {
		return nil, fmt.Errorf("k8s: kubeconfig %s: cluster %q not found", k.Path, k.ClusterName)
	}
	if j, err = json.Marshal(doc); err != nil {
		return nil, fmt.Errorf("k8s: kubeconfig %s: %w", k.Path, err)
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		return nil, fmt.Errorf("k8s: kubeconfig %s: %w", k.Path, err)
	}
	return y, nil
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
