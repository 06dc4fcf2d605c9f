//go:build !linux

package cplb

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"

	"github.com/nlb-dev/nlb/config"
)

// Steer needs Linux (sk_lookup or nftables).
func Steer(config.Controller, []netip.Addr, []*net.TCPListener, *slog.Logger) (Steering, error) {
	return nil, errors.New("steering VIP traffic into the proxy needs Linux (sk_lookup or nftables)")
}
