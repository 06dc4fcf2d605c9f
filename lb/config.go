package lb

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/nlb-dev/nlb/input"
)

// Duration is input.Duration, the one duration type of nlb's files: a Go
// duration string such as "250ms" or "2m10s".
type Duration = input.Duration

// Health check kinds.
const (
	CheckNone  = "none"  // no active checks; only passive (dial failure) marking
	CheckTCP   = "tcp"   // TCP connect
	CheckTLS   = "tls"   // TCP connect and TLS handshake
	CheckHTTPS = "https" // TLS and GET Path, healthy on 200
)

// Config is the complete proxy configuration. The zero value of a field
// means "use the default"; [Config.SetDefaults] fills them in and
// [Config.Validate] reports every problem at once.
type Config struct {
	// Listen are the addresses to accept on, host:port, IPv4 or IPv6.
	// ":6444" listens on every address of both families.
	Listen []string `json:"listen,omitempty"`
	// Backends are the upstream addresses, host:port.
	Backends []string `json:"backends,omitempty"`
	// Balance is "roundRobin" (default) or "leastConnections".
	Balance Policy `json:"balance,omitempty"`
	// ConnectTimeout bounds one dial to a backend before the next is
	// tried, in a client's first round over the backends: short, so that
	// a dead host costs little.
	ConnectTimeout Duration `json:"connectTimeout,omitempty"`
	// DialBudget is how long a new client may wait for a backend in all,
	// counted from its accept. When every backend failed its attempt, the
	// client does not fail at once: after a short random pause (half to
	// one ConnectTimeout) every backend is tried again, each attempt still
	// bounded by ConnectTimeout, until one answers or the budget is spent
	// (the first round always runs whole, whatever the budget). A backend
	// whose accept queue is full drops SYNs, which Linux resends only
	// after 1 s, so without the budget a burst of clients to a busy
	// backend is refused as if the backend were dead; HAProxy's retries
	// and seconds-long "timeout connect" make such a burst wait too.
	DialBudget Duration `json:"dialBudget,omitempty"`
	// IdleTimeout closes a proxied connection after no bytes moved in
	// either direction for this long; 0 disables it.
	IdleTimeout Duration `json:"idleTimeout,omitempty"`
	// MaxConnections caps concurrent proxied connections; further clients
	// are closed at once and counted.
	MaxConnections int `json:"maxConnections,omitempty"`
	// DrainPeriod is how long connections to a removed or unhealthy backend
	// are kept before they are closed.
	DrainPeriod Duration `json:"drainPeriod,omitempty"`
	// DrainStagger spreads the closes at the end of a drain over this
	// window, so that clients do not all reconnect at the same moment.
	DrainStagger Duration `json:"drainStagger,omitempty"`
	// ShutdownTimeout is how long a graceful shutdown waits for
	// connections to finish before closing them.
	ShutdownTimeout Duration `json:"shutdownTimeout,omitempty"`
	// KeepAlive configures TCP keepalive probes on both sides.
	KeepAlive KeepAlive `json:"keepAlive,omitempty"`
	// UserTimeout is TCP_USER_TIMEOUT on both sides: how long sent data
	// may stay unacknowledged before the kernel drops the connection.
	UserTimeout Duration `json:"userTimeout,omitempty"`
	// LoopbackCongestionControl is the TCP congestion control algorithm
	// (TCP_CONGESTION) of the proxy's loopback legs: connections to a
	// backend on a loopback address, and connections accepted on a
	// loopback listener (client mode on workers). A loopback leg has no
	// queue to protect, and a pacing algorithm such as BBR, without an fq
	// qdisc, paces every burst with a kernel timer there: up to a fifth of
	// the CPU of a bulk transfer on loopback. Default "reno", which every
	// Linux lets any process choose and which does not pace; "system"
	// keeps the system's default (net.ipv4.tcp_congestion_control). Legs
	// to other addresses always keep the system's default.
	LoopbackCongestionControl string `json:"loopbackCongestionControl,omitempty"`
	// HealthCheck configures active health checks.
	HealthCheck HealthCheck `json:"healthCheck,omitempty"`
	// Admin is the address of the admin HTTP server (metrics, health,
	// status); empty disables it. It is used by the command, not by Proxy.
	Admin string `json:"admin,omitempty"`
}

// KeepAlive mirrors net.KeepAliveConfig.
type KeepAlive struct {
	// Idle is the time before the first probe.
	Idle Duration `json:"idle,omitempty"`
	// Interval is the time between probes.
	Interval Duration `json:"interval,omitempty"`
	// Count is the number of unanswered probes before the peer is dead.
	Count int `json:"count,omitempty"`
}

// HealthCheck configures the active checks run against every backend.
type HealthCheck struct {
	// Type is "tcp" (default), "tls", "https" or "none".
	Type string `json:"type,omitempty"`
	// Interval between checks of one backend.
	Interval Duration `json:"interval,omitempty"`
	// Timeout of one check.
	Timeout Duration `json:"timeout,omitempty"`
	// Rise is the number of consecutive successes that make an unhealthy
	// backend healthy.
	Rise int `json:"rise,omitempty"`
	// Fall is the number of consecutive failures that make a healthy
	// backend unhealthy.
	Fall int `json:"fall,omitempty"`
	// Path is requested by "https" checks (default /readyz).
	Path string `json:"path,omitempty"`
	// CAFile verifies the backend certificate (PEM); empty uses the system
	// roots.
	CAFile string `json:"caFile,omitempty"`
	// CertFile and KeyFile are a client certificate (PEM), for example
	// one that kube-apiserver accepts with anonymous auth disabled.
	CertFile string `json:"certFile,omitempty"`
	KeyFile  string `json:"keyFile,omitempty"`
	// ServerName overrides the TLS server name (default: the backend
	// host).
	ServerName string `json:"serverName,omitempty"`
	// InsecureSkipVerify disables certificate verification.
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// Defaults. They suit kube-apiserver behind k0s's CPLB port 6444.
const (
	DefaultListen          = ":6444"
	DefaultConnectTimeout  = 250 * time.Millisecond // Envoy's connect_timeout in k0s NLLB
	DefaultDialBudget      = 3 * time.Second        // a connect burst waits, as with HAProxy's timeout connect
	DefaultMaxConnections  = 10000
	DefaultDrainPeriod     = 130 * time.Second // ≥ apiserver shutdown-delay + 60 s (OpenShift's arithmetic)
	DefaultDrainStagger    = 10 * time.Second
	DefaultShutdownTimeout = 30 * time.Second
	DefaultKeepAliveIdle   = 15 * time.Second
	DefaultKeepAliveIntvl  = 5 * time.Second
	DefaultKeepAliveCount  = 3
	DefaultUserTimeout     = 30 * time.Second
	// A dead backend is found within Fall*Interval + Timeout =
	// 3*500ms + 250ms = 1.75 s, inside the 2 s goal.
	DefaultCheckInterval = 500 * time.Millisecond
	DefaultCheckTimeout  = 250 * time.Millisecond
	DefaultRise          = 2
	DefaultFall          = 3
	DefaultCheckPath     = "/readyz"
	// DefaultLoopbackCongestionControl: see Config.LoopbackCongestionControl.
	DefaultLoopbackCongestionControl = "reno"
	// SystemCongestionControl as Config.LoopbackCongestionControl leaves
	// loopback legs with the system's default algorithm.
	SystemCongestionControl = "system"
)

// SetDefaults fills every unset field with its default.
func (c *Config) SetDefaults() {
	if len(c.Listen) == 0 {
		c.Listen = []string{DefaultListen}
	}
	if c.Balance == "" {
		c.Balance = RoundRobin
	}
	setDur(&c.ConnectTimeout, DefaultConnectTimeout)
	setDur(&c.DialBudget, DefaultDialBudget)
	setDur(&c.DrainPeriod, DefaultDrainPeriod)
	setDur(&c.DrainStagger, DefaultDrainStagger)
	setDur(&c.ShutdownTimeout, DefaultShutdownTimeout)
	setDur(&c.UserTimeout, DefaultUserTimeout)
	setDur(&c.KeepAlive.Idle, DefaultKeepAliveIdle)
	setDur(&c.KeepAlive.Interval, DefaultKeepAliveIntvl)
	if c.KeepAlive.Count == 0 {
		c.KeepAlive.Count = DefaultKeepAliveCount
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.LoopbackCongestionControl == "" {
		c.LoopbackCongestionControl = DefaultLoopbackCongestionControl
	}
	h := &c.HealthCheck
	if h.Type == "" {
		h.Type = CheckTCP
	}
	setDur(&h.Interval, DefaultCheckInterval)
	setDur(&h.Timeout, DefaultCheckTimeout)
	if h.Rise == 0 {
		h.Rise = DefaultRise
	}
	if h.Fall == 0 {
		h.Fall = DefaultFall
	}
	if h.Path == "" {
		h.Path = DefaultCheckPath
	}
}

func setDur(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}

// MinCheckInterval is the shortest healthCheck.interval. HAProxy ("inter")
// and Envoy ("interval") only want a positive one, but every proxy checks
// every backend, and `nlb client` runs on every worker: at 100 ms a
// cluster of 1,000 workers already sends each API server 10,000 checks a
// second (TLS handshakes for tls and https checks). Nothing needs faster
// ones: a failed dial marks a backend down at once, and the default 500 ms
// finds a dead backend within the 2 s goal.
const MinCheckInterval = 100 * time.Millisecond

// Validate reports every problem in c, each naming its field. Call it after
// SetDefaults.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	if len(c.Listen) == 0 {
		bad("listen", "at least one address is required")
	}
	for i, a := range c.Listen {
		if err := checkHostPort(a, true); err != nil {
			bad(fmt.Sprintf("listen[%d]", i), "%v", err)
		}
	}
	if len(c.Backends) == 0 {
		bad("backends", "at least one backend is required")
	}
	seen := map[string]bool{}
	for i, a := range c.Backends {
		if err := checkHostPort(a, false); err != nil {
			bad(fmt.Sprintf("backends[%d]", i), "%v", err)
		} else if seen[a] {
			bad(fmt.Sprintf("backends[%d]", i), "duplicate %q", a)
		}
		seen[a] = true
	}
	if !c.Balance.valid() {
		bad("balance", "must be one of %s, %s; got %q", RoundRobin, LeastConnections, c.Balance)
	}
	positive := func(field string, d Duration) {
		if d <= 0 {
			bad(field, "must be positive, got %s", time.Duration(d))
		}
	}
	positive("connectTimeout", c.ConnectTimeout)
	positive("dialBudget", c.DialBudget)
	if c.IdleTimeout < 0 {
		bad("idleTimeout", "must not be negative")
	}
	if c.MaxConnections < 0 {
		bad("maxConnections", "must be positive, got %d", c.MaxConnections)
	}
	if c.DrainPeriod < 0 {
		bad("drainPeriod", "must not be negative")
	}
	if c.DrainStagger < 0 {
		bad("drainStagger", "must not be negative")
	}
	if c.ShutdownTimeout < 0 {
		bad("shutdownTimeout", "must not be negative")
	}
	positive("keepAlive.idle", c.KeepAlive.Idle)
	positive("keepAlive.interval", c.KeepAlive.Interval)
	if c.KeepAlive.Count <= 0 {
		bad("keepAlive.count", "must be positive, got %d", c.KeepAlive.Count)
	}
	if c.UserTimeout < 0 {
		bad("userTimeout", "must not be negative")
	}
	if cc := c.LoopbackCongestionControl; !validCongestionName(cc) {
		bad("loopbackCongestionControl", "must be %q or an algorithm name such as reno or cubic (lower-case letters, digits and _, at most 15), got %q", SystemCongestionControl, cc)
	}
	h := c.HealthCheck
	switch h.Type {
	case CheckNone, CheckTCP, CheckTLS, CheckHTTPS:
	default:
		bad("healthCheck.type", "must be one of none, tcp, tls, https; got %q", h.Type)
	}
	if time.Duration(h.Interval) < MinCheckInterval {
		bad("healthCheck.interval", "must be at least %s, got %s", MinCheckInterval, time.Duration(h.Interval))
	}
	positive("healthCheck.timeout", h.Timeout)
	if h.Rise <= 0 {
		bad("healthCheck.rise", "must be positive, got %d", h.Rise)
	}
	if h.Fall <= 0 {
		bad("healthCheck.fall", "must be positive, got %d", h.Fall)
	}
	if !strings.HasPrefix(h.Path, "/") {
		bad("healthCheck.path", "must start with /, got %q", h.Path)
	}
	if (h.CertFile == "") != (h.KeyFile == "") {
		bad("healthCheck.certFile", "certFile and keyFile must be given together")
	}
	if h.Type != CheckTLS && h.Type != CheckHTTPS {
		for field, v := range map[string]string{"caFile": h.CAFile, "certFile": h.CertFile, "serverName": h.ServerName} {
			if v != "" {
				bad("healthCheck."+field, "only applies to tls and https checks")
			}
		}
	}
	if c.Admin != "" {
		if err := checkHostPort(c.Admin, false); err != nil {
			bad("admin", "%v", err)
		}
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("lb: invalid config: %w", errors.Join(errs...))
}

func checkHostPort(a string, emptyHostOK bool) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not host:port", a)
	}
	if host == "" && !emptyHostOK {
		return fmt.Errorf("%q has no host", a)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 || (p == 0 && !emptyHostOK) {
		return fmt.Errorf("%q has a bad port", a)
	}
	return nil
}

// Load decodes a YAML (or JSON) configuration strictly: unknown fields,
// duplicate keys and wrong types are errors, and all unknown fields are
// reported together. It does not apply defaults or validate.
func Load(r io.Reader) (Config, error) {
	b, err := input.ReadAll(r, "the configuration", input.MaxConfigSize)
	if err != nil {
		return Config{}, fmt.Errorf("lb: read config: %w", err)
	}
	return load(b)
}

// load is Load on the bytes of one file of at most input.MaxConfigSize,
// which must hold one YAML document.
func load(b []byte) (Config, error) {
	var c Config
	if err := input.OneYAMLDocument(b); err != nil {
		return c, fmt.Errorf("lb: config: %w", err)
	}
	j, err := yaml.YAMLToJSON(b)
	if err != nil {
		return c, fmt.Errorf("lb: config: %w", err)
	}
	var generic any
	if err := json.Unmarshal(j, &generic); err != nil {
		return c, fmt.Errorf("lb: config: %w", err)
	}
	if generic == nil {
		return c, nil // empty file
	}
	if _, ok := generic.(map[string]any); !ok {
		return c, errors.New("lb: config: top level must be a mapping")
	}
	if unknown := unknownFields("", generic, reflect.TypeOf(c)); len(unknown) > 0 {
		errs := make([]error, len(unknown))
		for i, f := range unknown {
			errs[i] = fmt.Errorf("%s: unknown field", f)
		}
		return c, fmt.Errorf("lb: config: %w", errors.Join(errs...))
	}
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return c, fmt.Errorf("lb: config: %w", err)
	}
	return c, nil
}

// LoadFile is Load on the named file, of at most input.MaxConfigSize (1 MiB).
func LoadFile(name string) (Config, error) {
	b, err := input.ReadFile(name, input.MaxConfigSize)
	if err != nil {
		return Config{}, fmt.Errorf("lb: %w", err)
	}
	c, err := load(b)
	if err != nil {
		return c, fmt.Errorf("%w (in %s)", err, name)
	}
	return c, nil
}

// unknownFields lists the keys of v (decoded JSON) that t's json tags do not
// name, recursing into nested structs.
func unknownFields(prefix string, v any, t reflect.Type) []string {
	m, ok := v.(map[string]any)
	if !ok || t.Kind() != reflect.Struct {
		return nil
	}
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = f.Type
		}
	}
	var out []string
	for k, sub := range m {
		ft, ok := fields[k]
		if !ok {
			out = append(out, prefix+k)
			continue
		}
		out = append(out, unknownFields(prefix+k+".", sub, ft)...)
	}
	sort.Strings(out)
	return out
}

// validCongestionName reports whether s can name a Linux TCP congestion
// control algorithm (TCP_CA_NAME_MAX is 16 with the terminating NUL).
func validCongestionName(s string) bool {
	if s == "" || len(s) > 15 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}
