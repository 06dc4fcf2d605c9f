//go:build !linux

package main

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nlb-dev/nlb/config"
)

// steering hands VIP:apiPort connections to the proxy.
type steering interface {
	Mode() string
	Close() error
}

// newSteeringCollector has nothing to export off Linux.
func newSteeringCollector(steering) prometheus.Collector { return nil }

// attachSteering needs Linux (sk_lookup or nftables).
func attachSteering(config.Controller, []netip.Addr, []*net.TCPListener, *slog.Logger) (steering, error) {
	return nil, errors.New("steering VIP traffic into the proxy needs Linux (sk_lookup or nftables)")
}
