package main

import (
	"log/slog"
	"net"
	"net/netip"

	"github.com/nlb-dev/nlb/config"
)

// steering hands VIP:apiPort connections to the proxy (lb/steer).
type steering interface {
	// Mode names the mechanism: "sklookup" or "nftables".
	Mode() string
	// Close removes the steering.
	Close() error
}

// attachSteering installs the steering of ctl.Steering for vips.
// TODO(steer): wire lb/steer once it lands; until then nothing is steered.
func attachSteering(ctl config.Controller, vips []netip.Addr, lns []*net.TCPListener, log *slog.Logger) (steering, error) {
	log.Warn("steering not available in this build: VIP:api-port is not redirected to the proxy")
	return nil, nil
}
