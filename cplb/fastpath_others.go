//go:build !linux

package cplb

import (
	"context"
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nlb-dev/nlb/config"
)

// FastPath are the XDP fast path's OS effects: there is none outside
// Linux, and virtual servers are refused.
type FastPath struct {
	// Cleanup, when set, runs in the modes without a fast path.
	Cleanup func(ifaces []string) error
}

// OSFastPath returns no fast path outside Linux.
func OSFastPath(OSFastPathOptions) FastPath { return FastPath{} }

type fastPath struct{}

func newFastPath(FastPath, []config.VirtualService, []VRRP, *slog.Logger) (*fastPath, error) {
	return nil, errors.New("virtualServers need the XDP fast path, which needs Linux")
}

func (*fastPath) listen(context.Context, proxy) error { return errors.New("no XDP fast path") }
func (*fastPath) run(context.Context)                 {}
func (*fastPath) changed()                            {}
func (*fastPath) stop()                               {}
func (*fastPath) drain(context.Context)               {}
func (*fastPath) close()                              {}
func (*fastPath) status() *FastPathStatus             { return nil }

func registerFastPathMetrics(prometheus.Registerer, *fastPath) error { return nil }
