// Package discover feeds an lb.Proxy's backends from the API servers'
// EndpointSlices (lb/k8s discovery): `nlb proxy --discover` and the proxy
// of `nlb controller` (controller side, k0s's CPLB). lb/k8s does not
// import lb; this package joins the two.
//
// The backends are the EndpointSlices of default/kubernetes, read from the
// local API server with an admin kubeconfig, on Config.APIPort (k0s's CPLB
// ignores the endpoint ports and dials spec.api.port). With a kubeconfig,
// the proxy's health checks are GET /readyz verified against the
// kubeconfig's CA and made with its client identity (k8s.APICheck).
//
// A command calls it at four points: its configuration (Fill sets the
// backends), lb.Options (Options adds the health check), serving (Start
// runs discovery into the proxy) and reloads (Exclusive).
package discover

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"

	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/lb/k8s"
)

// Config says whether and how to discover the backends.
type Config struct {
	// Enabled takes the backends from the EndpointSlices; it needs
	// Kubeconfig.
	Enabled bool
	// Kubeconfig is the admin kubeconfig file. Set without Enabled, it
	// only makes the health checks GET /readyz with its CA and identity.
	Kubeconfig string
	// APIPort is the API server port dialled on every discovered host
	// (k0s's spec.api.port).
	APIPort int
	// CacheFile keeps the discovered backends for the next start (empty:
	// none).
	CacheFile string
}

// Discoverer is one proxy's discovery. Its methods are safe for concurrent
// use.
type Discoverer struct {
	cfg Config

	kc    *k8s.Kubeconfig
	check *k8s.APICheck

	mu         sync.Mutex
	discovered []netip.AddrPort

	// applyMu orders the two writers of the proxy's backends: discovery
	// (update) and a reload (Exclusive), which reads the discovered list
	// through Fill. Without it a reload could read the list, lose the race
	// to a discovery change, then put the older list back until the next
	// change.
	applyMu sync.Mutex
}

// New returns the discovery that cfg describes. It reads nothing: the
// kubeconfig is loaded by Prepare, or by the first Fill.
func New(cfg Config) *Discoverer {
	return &Discoverer{cfg: cfg}
}

// Enabled reports whether the backends come from discovery.
func (d *Discoverer) Enabled() bool { return d.cfg.Enabled }

// Kubeconfig returns the kubeconfig Prepare loaded, nil without one.
func (d *Discoverer) Kubeconfig() *k8s.Kubeconfig { return d.kc }

// APICheck returns the /readyz health check built from the kubeconfig
// after Prepare, nil without one.
func (d *Discoverer) APICheck() *k8s.APICheck { return d.check }

// Prepare checks the configuration and loads the kubeconfig, once.
func (d *Discoverer) Prepare() error {
	if d.cfg.Enabled && d.cfg.Kubeconfig == "" {
		return errors.New("proxy: --discover needs --kubeconfig")
	}
	if d.kc != nil || d.cfg.Kubeconfig == "" {
		return nil
	}
	if d.cfg.APIPort <= 0 || d.cfg.APIPort > 65535 {
		return fmt.Errorf("proxy: --api-port %d: not a port", d.cfg.APIPort)
	}
	kc, err := k8s.LoadKubeconfig(d.cfg.Kubeconfig)
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	chk, err := k8s.NewAPICheck(kc, true)
	if err != nil {
		return fmt.Errorf("proxy: --kubeconfig: %w", err)
	}
	d.kc, d.check = kc, chk
	return nil
}

// Exclusive runs fn (a reload: read the configuration with Fill, then
// lb.Proxy.Reload) with no discovery update in between.
func (d *Discoverer) Exclusive(fn func()) {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	fn()
}

// update records a discovered backend list and gives it to p.
func (d *Discoverer) update(p *lb.Proxy, list []netip.AddrPort) {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	d.mu.Lock()
	d.discovered = slices.Clone(list)
	d.mu.Unlock()
	p.SetBackends(k8s.Addrs(list, 0))
}

// Fill sets cfg's backends when discovering: the last discovered list, or
// before there is one the configured backends plus the cache file's list,
// or if both are empty the kubeconfig's server host on APIPort. A
// command calls it whenever it reads its configuration, so that a reload
// keeps the discovered backends. It calls Prepare first.
func (d *Discoverer) Fill(cfg *lb.Config) error {
	if err := d.Prepare(); err != nil {
		return err
	}
	if !d.cfg.Enabled {
		return nil
	}
	d.mu.Lock()
	disc := slices.Clone(d.discovered)
	d.mu.Unlock()
	if len(disc) > 0 {
		cfg.Backends = k8s.Addrs(disc, 0)
		return nil
	}
	list := slices.Clone(cfg.Backends)
	if d.cfg.CacheFile != "" {
		cached, err := k8s.LoadCache(d.cfg.CacheFile)
		if err == nil {
			list = append(list, k8s.Addrs(cached, uint16(d.cfg.APIPort))...)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("proxy: %w", err)
		}
	}
	if len(list) == 0 {
		server, err := d.kc.Server()
		if err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
		hp, err := k8s.ServerHostPort(server)
		if err != nil {
			return fmt.Errorf("proxy: kubeconfig %s: %w", d.cfg.Kubeconfig, err)
		}
		host, _, _ := net.SplitHostPort(hp)
		list = append(list, net.JoinHostPort(host, strconv.Itoa(d.cfg.APIPort)))
	}
	cfg.Backends = dedupe(list)
	return nil
}

// dedupe drops repeated entries, keeping the first.
func dedupe(s []string) []string {
	seen := make(map[string]bool, len(s))
	out := s[:0]
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// Options returns o with the /readyz health check when there is a
// kubeconfig (after Prepare).
func (d *Discoverer) Options(o lb.Options) lb.Options {
	if d.check != nil {
		o.Check = d.check.Check
	}
	return o
}

// Start runs discovery into p until ctx ends or the returned stop is
// called; stop waits for discovery to finish. When not enabled (or before
// Prepare) it does nothing. Discovery's errors are logged to log.
func (d *Discoverer) Start(ctx context.Context, p *lb.Proxy, log *slog.Logger) (stop func()) {
	if !d.cfg.Enabled || d.kc == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.Run(ctx, p, log); err != nil {
			log.Error("API server discovery stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}

// Run discovers the API servers into p's backends until ctx ends, as
// Start does but in the caller's goroutine. It needs Prepare first, and
// the configuration to be Enabled.
func (d *Discoverer) Run(ctx context.Context, p *lb.Proxy, log *slog.Logger) error {
	if !d.cfg.Enabled || d.kc == nil {
		return errors.New("proxy: discovery is not enabled or not prepared")
	}
	rc, err := d.kc.RESTConfig()
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	api, err := k8s.NewAPI(rc)
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	disc, err := k8s.New(k8s.Config{
		Client:    api,
		Port:      uint16(d.cfg.APIPort),
		CacheFile: d.cfg.CacheFile,
		Logger:    log.With("component", "discovery"),
		OnChange:  func(list []netip.AddrPort) { d.update(p, list) },
	})
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	log.Info("discovering API servers", "server", rc.Host, "port", d.cfg.APIPort)
	return disc.Run(ctx)
}
