package main

import (
	"flag"

	"github.com/nlb-dev/nlb/lb/discover"
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
