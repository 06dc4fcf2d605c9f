package main

import (
	"context"
	"flag"
	"log/slog"

	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/lb/discover"
	"github.com/nlb-dev/nlb/lb/k8s"
)

// addProxyDiscoverFlags registers `nlb proxy`'s API server discovery flags
// (lb/discover) on fs; after parsing, discover.New takes what they set.
func addProxyDiscoverFlags(fs *flag.FlagSet) *discover.Config {
	c := &discover.Config{}
	fs.BoolVar(&c.Enabled, "discover", false, "take the backends from the API servers' EndpointSlices (default/kubernetes), read with --kubeconfig")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "admin kubeconfig `file` for --discover; also makes health checks GET /readyz with its CA and identity")
	fs.IntVar(&c.APIPort, "api-port", 6443, "with --discover, the API server `port` to dial on every discovered host (k0s spec.api.port)")
	fs.StringVar(&c.CacheFile, "cache-file", "", "with --discover, `file` caching the discovered backends for the next start (empty: none)")
	return c
}

// proxyDiscover adapts a discover.Discoverer to nlb controller's calls
// (controller.go, controller_health.go) while the controller moves to
// cplb; it goes once they use lb/discover directly (issue 11).
type proxyDiscover struct {
	enabled    bool
	kubeconfig string
	apiPort    int
	cacheFile  string

	kc    *k8s.Kubeconfig
	check *k8s.APICheck
	d     *discover.Discoverer
}

func (p *proxyDiscover) get() *discover.Discoverer {
	if p.d == nil {
		p.d = discover.New(discover.Config{Enabled: p.enabled, Kubeconfig: p.kubeconfig, APIPort: p.apiPort, CacheFile: p.cacheFile})
	}
	return p.d
}

func (p *proxyDiscover) prepare() error {
	err := p.get().Prepare()
	p.kc, p.check = p.d.Kubeconfig(), p.d.APICheck()
	return err
}

func (p *proxyDiscover) fill(cfg *lb.Config) error {
	if err := p.prepare(); err != nil {
		return err
	}
	return p.d.Fill(cfg)
}

func (p *proxyDiscover) options(o lb.Options) lb.Options { return p.get().Options(o) }

func (p *proxyDiscover) start(ctx context.Context, proxy *lb.Proxy, log *slog.Logger) func() {
	return p.get().Start(ctx, proxy, log)
}

func (p *proxyDiscover) run(ctx context.Context, proxy *lb.Proxy, log *slog.Logger) error {
	return p.get().Run(ctx, proxy, log)
}
