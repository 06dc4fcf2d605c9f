package cplb

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/lb/steer"
)

// Steer installs the steering of ctl.Steering (sk_lookup, nftables, or
// auto) for vips on ctl.APIPort into the proxy's listeners lns, in this
// process's network namespace (lb/steer). It stays installed on every
// controller; it only matters where the VIP is local. It is the
// AttachFunc of nlb controller.
func Steer(ctl config.Controller, vips []netip.Addr, lns []*net.TCPListener, log *slog.Logger) (Steering, error) {
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
	return linuxSteering{s}, nil
}

// linuxSteering is a *steer.Steering as a Steering.
type linuxSteering struct{ s *steer.Steering }

func (l linuxSteering) Mode() string { return l.s.Mode() }
func (l linuxSteering) Close() error { return l.s.Close() }

func (l linuxSteering) Stats() (SteeringStats, bool, error) {
	st, ok, err := l.s.Stats()
	return SteeringStats{Steered: st.Steered, NoListener: st.NoListener, AssignFailed: st.AssignFailed}, ok, err
}
