package config

import (
	"fmt"
	"time"
)

// Steering modes of `nlb controller` (keepalived.steering).
const (
	SteeringAuto     = "auto"
	SteeringSKLookup = "sklookup"
	SteeringNFTables = "nftables"
)

// Defaults of keepalived.apiServerHealth. Three failed checks 500ms apart
// give up the VIP about 1.5 s after the API server stops answering; five
// good ones (2.5 s) bring the node back, more while it flaps.
const (
	DefaultHealthInterval = 500 * time.Millisecond
	DefaultHealthTimeout  = 400 * time.Millisecond
	DefaultHealthFall     = 3
	DefaultHealthRise     = 5
	// DefaultHealthStartupGrace is apiServerHealth.startupGrace's default:
	// longer than kubeadm init's wait for the control plane (4m) and a
	// k0s controller's first start, short enough that a node whose API
	// server never comes up stops competing for the VIP.
	DefaultHealthStartupGrace = 10 * time.Minute
	// MaxHealthStartupGrace bounds apiServerHealth.startupGrace.
	MaxHealthStartupGrace = 24 * time.Hour
)

// Controller is what `nlb controller` runs besides the VRRP instances,
// with every default applied.
type Controller struct {
	// APIPort is spec.api.port: the port clients use on the VIP.
	APIPort int
	// ProxyPort is keepalived.userSpaceProxyBindPort.
	ProxyPort int
	// DisableLoadBalancer runs the VIPs only: no proxy, no steering.
	DisableLoadBalancer bool
	// Steering is SteeringAuto, SteeringSKLookup or SteeringNFTables.
	Steering string
	// Health ties VRRP priority to the local API server and proxy.
	Health Health
	// VirtualServers are keepalived.virtualServers resolved
	// (Config.VirtualServers): when there are any, the XDP fast path
	// balances their VIPs instead of the proxy's steering, as k0s's
	// non-empty list switches it to IPVS. Nil with DisableLoadBalancer.
	VirtualServers []VirtualService
}

// Health is keepalived.apiServerHealth resolved.
type Health struct {
	// Enabled turns tracking on.
	Enabled bool
	// Interval and Timeout of each check.
	Interval, Timeout time.Duration
	// Fall and Rise are the hysteresis thresholds.
	Fall, Rise int
	// Weight is keepalived's track_script weight (0: give up mastership).
	Weight int
	// StartupGrace is how long after start failures are not counted while
	// the check has never passed (the bootstrap rule); 0: none.
	StartupGrace time.Duration
}

// Controller returns the controller settings. Valid after Load/Validate.
func (c *Config) Controller() Controller {
	out := Controller{
		APIPort:   c.APIPort(),
		ProxyPort: DefaultUserSpaceProxyPort,
		Steering:  SteeringAuto,
		Health: Health{
			Enabled:  true,
			Interval: DefaultHealthInterval,
			Timeout:  DefaultHealthTimeout,
			Fall:     DefaultHealthFall,
			Rise:     DefaultHealthRise,

			StartupGrace: DefaultHealthStartupGrace,
		},
	}
	ka := c.ControlPlaneLoadBalancing.Keepalived
	if ka == nil {
		return out
	}
	if ka.UserSpaceProxyPort != 0 {
		out.ProxyPort = ka.UserSpaceProxyPort
	}
	out.DisableLoadBalancer = ka.DisableLoadBalancer
	if !out.DisableLoadBalancer {
		out.VirtualServers = c.VirtualServers()
	}
	if ka.Steering != "" {
		out.Steering = ka.Steering
	}
	if h := ka.APIServerHealth; h != nil {
		if h.Enabled != nil {
			out.Health.Enabled = *h.Enabled
		}
		if h.Interval.Std() > 0 {
			out.Health.Interval = h.Interval.Std()
		}
		if h.Timeout.Std() > 0 {
			out.Health.Timeout = h.Timeout.Std()
		} else if out.Health.Timeout > out.Health.Interval {
			out.Health.Timeout = out.Health.Interval
		}
		if h.Fall > 0 {
			out.Health.Fall = int(h.Fall)
		}
		if h.Rise > 0 {
			out.Health.Rise = int(h.Rise)
		}
		if h.Weight != nil {
			out.Health.Weight = int(*h.Weight)
		}
		if h.StartupGrace != nil {
			out.Health.StartupGrace = h.StartupGrace.Std()
		}
	}
	return out
}

// checkController validates the nlb additions used by `nlb controller`.
func (c *Config) checkController(p *problems) {
	ka := c.ControlPlaneLoadBalancing.Keepalived
	if ka == nil {
		return
	}
	kpath := child(c.Form.cplbPath(), "keepalived")
	switch ka.Steering {
	case "", SteeringAuto, SteeringSKLookup, SteeringNFTables:
	default:
		p.add(child(kpath, "steering"), fmt.Sprintf("must be one of %s, %s or %s, got %q",
			SteeringAuto, SteeringSKLookup, SteeringNFTables, ka.Steering))
	}
	if ka.DisableLoadBalancer && ka.Steering != "" {
		c.warn(child(kpath, "steering"), "ignored: disableLoadBalancer is true")
	} else if len(ka.VirtualServers) > 0 && ka.Steering != "" {
		c.warn(child(kpath, "steering"), "ignored: virtualServers run the XDP fast path, which needs no steering")
	}
	h := ka.APIServerHealth
	if h == nil {
		return
	}
	hpath := child(kpath, "apiServerHealth")
	if h.Interval.Std() < 0 || (h.Interval.Std() > 0 && h.Interval.Std() < 10*time.Millisecond) || h.Interval.Std() > time.Hour {
		p.add(child(hpath, "interval"), fmt.Sprintf("must be between 10ms and 1h, got %s", h.Interval.Std()))
	}
	interval := h.Interval.Std()
	if interval == 0 {
		interval = DefaultHealthInterval
	}
	if h.Timeout.Std() < 0 || (h.Timeout.Std() > 0 && h.Timeout.Std() > interval) {
		p.add(child(hpath, "timeout"), fmt.Sprintf("must be positive and at most the interval (%s), got %s", interval, h.Timeout.Std()))
	}
	if h.Fall < 0 || h.Fall > 100 {
		p.add(child(hpath, "fall"), fmt.Sprintf("must be between 1 and 100, got %d", h.Fall))
	}
	if h.Rise < 0 || h.Rise > 100 {
		p.add(child(hpath, "rise"), fmt.Sprintf("must be between 1 and 100, got %d", h.Rise))
	}
	if h.Weight != nil && (*h.Weight < -253 || *h.Weight > 253) {
		p.add(child(hpath, "weight"), fmt.Sprintf("must be between -253 and 253, got %d", *h.Weight))
	}
	if g := h.StartupGrace; g != nil && (g.Std() < 0 || g.Std() > MaxHealthStartupGrace) {
		p.add(child(hpath, "startupGrace"), fmt.Sprintf("must be between 0s and %s, got %s", MaxHealthStartupGrace, g.Std()))
	}
}
