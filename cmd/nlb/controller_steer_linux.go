package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/lb/steer"
)

// steering hands VIP:apiPort connections to the proxy (*steer.Steering).
type steering interface {
	// Mode names the mechanism: "sklookup" or "nftables".
	Mode() string
	// Close removes the steering.
	Close() error
}

// attachSteering installs the steering of ctl.Steering for vips into the
// proxy's listeners, in this process's network namespace. It stays
// installed on every controller; it only matters where the VIP is local.
func attachSteering(ctl config.Controller, vips []netip.Addr, lns []*net.TCPListener, log *slog.Logger) (steering, error) {
	s, err := steer.Attach(steer.Config{
		Mode:      ctl.Steering,
		VIPs:      vips,
		Port:      uint16(ctl.APIPort),
		ProxyPort: uint16(ctl.ProxyPort),
		Listeners: lns,
		Logger:    log,
	})
	if err != nil {
		return nil, fmt.Errorf("steering: %w", err)
	}
	log.Info("steering VIP traffic into the proxy", "mode", s.Mode(), "vips", fmt.Sprint(vips), "port", ctl.APIPort, "proxy_port", ctl.ProxyPort)
	return s, nil
}
