//go:build linux

package steer

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"github.com/nlb-dev/nlb/ebpf/sklookup"
	"github.com/nlb-dev/nlb/lb/steer/nft"
)

// The values of [Config.Mode] and [Steering.Mode].
const (
	// ModeAuto tries ModeSKLookup, then ModeNFTables.
	ModeAuto = "auto"
	// ModeSKLookup steers with a BPF sk_lookup program (Linux 5.9).
	ModeSKLookup = "sklookup"
	// ModeNFTables steers with nftables NAT (REDIRECT) rules.
	ModeNFTables = "nftables"
)

// MaxVIPs is the largest number of VIPs one Steering handles.
const MaxVIPs = sklookup.MaxVIPs

// Config says what to steer, where to, and how.
type Config struct {
	// Mode is ModeAuto (also when empty), ModeSKLookup or ModeNFTables.
	Mode string
	// VIPs are the virtual addresses, IPv4 and/or IPv6, at most MaxVIPs.
	VIPs []netip.Addr
	// Port is the API port on the VIPs (spec.api.port, 6443).
	Port uint16
	// ProxyPort is the port the proxy listens on (userSpaceProxyBindPort,
	// 6444); every listener must be bound to it.
	ProxyPort uint16
	// Listeners are the proxy's listening sockets, plain TCP (not MPTCP).
	// ModeSKLookup needs at least one that accepts each VIP family: an
	// AF_INET6 listener without IPV6_V6ONLY, such as Go's ":6444", takes
	// both. ModeNFTables ignores them; ModeAuto without listeners uses
	// nftables. They must stay open while the Steering is installed: the
	// kernel drops a closed socket from the SOCKMAP, and connections to
	// the VIP then reach the API server directly (a proxy that re-listens
	// must Attach again).
	Listeners []*net.TCPListener
	// NetNS is the path of the network namespace to steer in (for example
	// /run/netns/NAME); empty means the namespace of the process.
	NetNS string
	// Logger receives the choice of method and fallbacks; nil discards.
	Logger *slog.Logger
}

// Validate checks the configuration without touching the system. It
// returns every problem found, joined.
func (c Config) Validate() error {
	var errs []error
	switch c.Mode {
	case "", ModeAuto, ModeSKLookup, ModeNFTables:
	default:
		errs = append(errs, fmt.Errorf("mode %q: want %q, %q or %q", c.Mode, ModeAuto, ModeSKLookup, ModeNFTables))
	}
	if len(c.VIPs) == 0 {
		errs = append(errs, errors.New("no VIPs"))
	}
	if len(c.VIPs) > MaxVIPs {
		errs = append(errs, fmt.Errorf("%d VIPs: at most %d", len(c.VIPs), MaxVIPs))
	}
	for i, a := range c.VIPs {
		u := a.Unmap()
		if !u.IsValid() || u.IsUnspecified() || u.IsMulticast() || u.IsLoopback() || u.Zone() != "" {
			errs = append(errs, fmt.Errorf("VIPs[%d] %q: not a unicast address", i, a))
		}
	}
	if c.Port == 0 {
		errs = append(errs, errors.New("port: must be 1-65535"))
	}
	if c.ProxyPort == 0 {
		errs = append(errs, errors.New("proxy port: must be 1-65535"))
	}
	if c.Port != 0 && c.Port == c.ProxyPort {
		errs = append(errs, fmt.Errorf("port and proxy port are both %d", c.Port))
	}
	if c.Mode == ModeSKLookup && len(c.Listeners) == 0 {
		errs = append(errs, errors.New("mode sklookup: no listeners"))
	}
	for i, l := range c.Listeners {
		if l == nil {
			errs = append(errs, fmt.Errorf("listeners[%d]: nil", i))
			continue
		}
		if a, ok := l.Addr().(*net.TCPAddr); !ok || a.Port != int(c.ProxyPort) {
			errs = append(errs, fmt.Errorf("listeners[%d] %v: not on proxy port %d", i, l.Addr(), c.ProxyPort))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("steer: config: %w", err)
	}
	return nil
}

// Steering is installed steering. Close removes it.
type Steering struct {
	mode   string
	netns  string
	log    *slog.Logger
	mu     sync.Mutex
	closed bool
	sk     *sklookup.Link
	nft    *nft.Rules
}

// Attach validates cfg and installs the steering in the namespace,
// replacing any that an earlier Attach (of this or a dead process, by
// either method) left there.
func Attach(cfg Config) (*Steering, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Steering{netns: cfg.NetNS, log: log}
	var err error
	switch cfg.Mode {
	case ModeSKLookup:
		err = s.attachSKLookup(cfg)
	case ModeNFTables:
		err = s.attachNFTables(cfg)
	default:
		if len(cfg.Listeners) == 0 {
			log.Info("steer: no proxy listeners given for sk_lookup; using nftables")
			err = s.attachNFTables(cfg)
			break
		}
		if skErr := s.attachSKLookup(cfg); skErr != nil {
			log.Warn("steer: sk_lookup unavailable; falling back to nftables",
				"err", skErr, "kernel_unsupported", errors.Is(skErr, sklookup.ErrNotSupported))
			if err = s.attachNFTables(cfg); err != nil {
				err = errors.Join(skErr, err)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("steer: attach: %w", err)
	}
	log.Info("steer: attached", "mode", s.mode, "vips", cfg.VIPs, "port", cfg.Port, "proxy_port", cfg.ProxyPort)
	return s, nil
}

func (s *Steering) attachSKLookup(cfg Config) error {
	conns := make([]syscall.Conn, len(cfg.Listeners))
	for i, l := range cfg.Listeners {
		conns[i] = l
	}
	link, err := sklookup.Attach(sklookup.Config{NetNS: cfg.NetNS, VIPs: cfg.VIPs, Port: cfg.Port, Listeners: conns})
	if err != nil {
		return err
	}
	s.sk, s.mode = link, ModeSKLookup
	// Tables of an earlier nftables run would NAT the VIP before the
	// socket lookup; the proxy would still get the connections, but
	// through two mechanisms. Where nftables is unusable there are none.
	if n, err := nft.Remove(cfg.NetNS); err != nil {
		s.log.Debug("steer: could not look for nftables leftovers", "err", err)
	} else if n > 0 {
		s.log.Info("steer: removed nftables tables of an earlier run", "tables", n)
	}
	return nil
}

func (s *Steering) attachNFTables(cfg Config) error {
	rules, err := nft.Attach(nft.Config{NetNS: cfg.NetNS, VIPs: cfg.VIPs, Port: cfg.Port, ProxyPort: cfg.ProxyPort})
	if err != nil {
		return err
	}
	s.nft, s.mode = rules, ModeNFTables
	if n, err := sklookup.DetachAll(cfg.NetNS); err != nil {
		s.log.Debug("steer: could not look for sk_lookup leftovers", "err", err)
	} else if n > 0 {
		s.log.Info("steer: detached sk_lookup links of an earlier run", "links", n)
	}
	return nil
}

// Mode returns the method in use: ModeSKLookup or ModeNFTables.
func (s *Steering) Mode() string { return s.mode }

// Stats returns the sk_lookup program's counters (connections steered,
// left to the regular lookup for want of a listener, refused by
// bpf_sk_assign). ok is false with nftables, which keeps no counters of
// ours, and after Close.
func (s *Steering) Stats() (st sklookup.Stats, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.sk == nil {
		return sklookup.Stats{}, false, nil
	}
	st, err = s.sk.Stats()
	if err != nil {
		return sklookup.Stats{}, false, fmt.Errorf("steer: %w", err)
	}
	return st, true, nil
}

// Close removes the steering. It may be called more than once.
func (s *Steering) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.sk != nil {
		err = s.sk.Close()
	}
	if s.nft != nil {
		err = errors.Join(err, s.nft.Close())
	}
	if err != nil {
		return fmt.Errorf("steer: close: %w", err)
	}
	s.log.Info("steer: removed", "mode", s.mode)
	return nil
}
