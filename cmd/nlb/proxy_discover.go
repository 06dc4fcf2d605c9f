package main

import (
	"context"
	"errors"
	"flag"
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

// proxyDiscover is `nlb proxy`'s API server discovery (controller side):
// with --discover the backends are the EndpointSlices of default/kubernetes,
// read from the local API server with an admin kubeconfig, on --api-port
// (k0s's CPLB ignores the endpoint ports and dials spec.api.port). With
// --kubeconfig, health checks are GET /readyz verified against the
// kubeconfig's CA and made with its client identity.
//
// runProxy calls it at four points: flags, load (backends), lb.Options
// (health check) and serve (discovery).
type proxyDiscover struct {
	enabled    bool
	kubeconfig string
	apiPort    int
	cacheFile  string

	kc    *k8s.Kubeconfig
	check *k8s.APICheck

	mu         sync.Mutex
	discovered []netip.AddrPort

	// applyMu orders the two writers of the proxy's backends: discovery
	// (update) and a SIGHUP reload (exclusive), which reads the
	// discovered list through fill. Without it a reload could read the
	// list, lose the race to a discovery change, then put the older list
	// back until the next change.
	applyMu sync.Mutex
}

// exclusive runs fn (a reload: load, then lb.Proxy.Reload) with no
// discovery update in between.
func (d *proxyDiscover) exclusive(fn func()) {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	fn()
}

// update records a discovered backend list and gives it to p.
func (d *proxyDiscover) update(p *lb.Proxy, list []netip.AddrPort) {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	d.mu.Lock()
	d.discovered = slices.Clone(list)
	d.mu.Unlock()
	p.SetBackends(k8s.Addrs(list, 0))
}

// addProxyDiscoverFlags registers the discovery flags on fs.
func addProxyDiscoverFlags(fs *flag.FlagSet) *proxyDiscover {
	d := &proxyDiscover{}
	fs.BoolVar(&d.enabled, "discover", false, "take the backends from the API servers' EndpointSlices (default/kubernetes), read with --kubeconfig")
	fs.StringVar(&d.kubeconfig, "kubeconfig", "", "admin kubeconfig `file` for --discover; also makes health checks GET /readyz with its CA and identity")
	fs.IntVar(&d.apiPort, "api-port", 6443, "with --discover, the API server `port` to dial on every discovered host (k0s spec.api.port)")
	fs.StringVar(&d.cacheFile, "cache-file", "", "with --discover, `file` caching the discovered backends for the next start (empty: none)")
	return d
}

// prepare loads the kubeconfig once.
func (d *proxyDiscover) prepare() error {
	if d.enabled && d.kubeconfig == "" {
		return errors.New("proxy: --discover needs --kubeconfig")
	}
	if d.kc != nil || d.kubeconfig == "" {
		return nil
	}
	if d.apiPort <= 0 || d.apiPort > 65535 {
		return fmt.Errorf("proxy: --api-port %d: not a port", d.apiPort)
	}
	kc, err := k8s.LoadKubeconfig(d.kubeconfig)
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

// fill sets cfg's backends when discovering: the last discovered list, or
// before there is one the configured backends plus the cache file's list,
// or if both are empty the kubeconfig's server host on --api-port. Called
// by load, so a SIGHUP reload keeps the discovered backends.
func (d *proxyDiscover) fill(cfg *lb.Config) error {
	if err := d.prepare(); err != nil {
		return err
	}
	if !d.enabled {
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
	if d.cacheFile != "" {
		cached, err := k8s.LoadCache(d.cacheFile)
		if err == nil {
			list = append(list, k8s.Addrs(cached, uint16(d.apiPort))...)
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
			return fmt.Errorf("proxy: kubeconfig %s: %w", d.kubeconfig, err)
		}
		host, _, _ := net.SplitHostPort(hp)
		list = append(list, net.JoinHostPort(host, strconv.Itoa(d.apiPort)))
	}
	cfg.Backends = dedupe(list)
	return nil
}

// options returns o with the /readyz health check when a kubeconfig is
// given.
func (d *proxyDiscover) options(o lb.Options) lb.Options {
	if d.check != nil {
		o.Check = d.check.Check
	}
	return o
}

// start runs discovery into p until ctx ends or the returned stop is
// called; stop waits for discovery to finish. Without --discover it does
// nothing.
func (d *proxyDiscover) start(ctx context.Context, p *lb.Proxy, log *slog.Logger) (stop func()) {
	if !d.enabled || d.kc == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.run(ctx, p, log); err != nil {
			log.Error("API server discovery stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}

func (d *proxyDiscover) run(ctx context.Context, p *lb.Proxy, log *slog.Logger) error {
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
		Port:      uint16(d.apiPort),
		CacheFile: d.cacheFile,
		Logger:    log.With("component", "discovery"),
		OnChange:  func(list []netip.AddrPort) { d.update(p, list) },
	})
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	log.Info("discovering API servers", "server", rc.Host, "port", d.apiPort)
	return disc.Run(ctx)
}
