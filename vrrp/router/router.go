// Package router runs VRRP instances on real links: for each configured
// instance (config.Instance) a raw VRRP socket (vrrp/socket), an ARP/NDP
// announcer (vrrp/announce), a VIP manager (vrrp/vip) and a carrier watch
// (vrrp/link) around a vrrp.Instance, which holds the protocol (RFC 9568,
// RFC 3768). It is what `nlb vrrp` and `nlb controller` share.
//
// Listen and ListenGroup open the sockets and remove VIPs left behind by a
// crashed predecessor; nothing else here does I/O before Run. The JSON of
// an instance's status (Status) is declared here once, for every /status
// that shows VRRP instances.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/vrrp"
	"github.com/nlb-dev/nlb/vrrp/announce"
	"github.com/nlb-dev/nlb/vrrp/clock"
	"github.com/nlb-dev/nlb/vrrp/link"
	"github.com/nlb-dev/nlb/vrrp/socket"
	"github.com/nlb-dev/nlb/vrrp/vip"
)

// Options are what a Router needs besides its configuration.
type Options struct {
	// Logger receives the node's messages; nil discards them.
	Logger *slog.Logger
	// Metrics counts the instance's protocol events; nil counts nothing.
	// ListenGroup creates them on its registry.
	Metrics *vrrp.Metrics
	// HandoverOnShutdown sets vrrp.InstanceConfig.HandoverOnShutdown:
	// when Run's ctx ends, a Master sends a priority-0 advert and keeps
	// the VIPs until a new Master speaks (nlb controller, whose proxy
	// serves them meanwhile). False is keepalived's order: the VIPs go
	// with the priority-0 advert (nlb vrrp).
	HandoverOnShutdown bool
}

// Router is one VRRP instance on a real link with its OS resources.
type Router struct {
	cfg  config.Instance
	log  *slog.Logger
	inst *vrrp.Instance
	conn *socket.Conn
	ann  *announce.Announcer
	vips *vip.Manager

	mu           sync.Mutex
	beforeRemove func()
	masterHook   func(master bool)
}

// Listen opens the sockets of the instance in (its interface resolved:
// config.Config.ResolveInterfaces): the raw VRRP socket from the unicast
// source or the interface's primary address, the announcer, and the VIP
// manager, after removing any of the VIPs still on the interface (a
// crashed predecessor's, which would answer ARP beside the new Master's).
// A VIP that is one of the node's own addresses is refused. Errors name
// the instance and the interface.
func Listen(in config.Instance, opts Options) (*Router, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fail := func(err error) (*Router, error) {
		return nil, fmt.Errorf("vrrp: instance %s on %s: %w", in.Name, in.Interface, err)
	}
	r := &Router{cfg: in, log: log.With("iface", in.Interface)}
	src := in.UnicastSource
	if !src.IsValid() {
		var err error
		if src, err = link.PrimaryAddress(in.Interface, in.IPv6, in.VIPs); err != nil {
			return fail(err)
		}
	}
	unicast := len(in.UnicastPeers) > 0
	sc := socket.Config{Source: src, Unicast: unicast, Peers: in.UnicastPeers}
	var err error
	if in.IPv6 {
		r.conn, err = socket.ListenIPv6(in.Interface, sc)
	} else {
		r.conn, err = socket.ListenIPv4(in.Interface, sc)
	}
	if err != nil {
		return fail(err)
	}
	if r.ann, err = announce.Dial(in.Interface); err != nil {
		_ = r.Close()
		return fail(err)
	}
	addrs := vipAddrs(in.VIPs)
	ilog := r.log // the instance adds its name and VRID
	// Check before the instance starts: at start it removes stale VIPs,
	// and a VIP that is a node address is never one.
	// Not ilog: the manager names the interface of each message itself.
	r.vips = vip.New(in.Interface, in.VIPs, vip.Options{AddressLabel: in.AddressLabel, Logger: log.With("instance", in.Name)})
	// Without CAP_NET_ADMIN, Check and Remove (reads only, when no VIP
	// is left over) would pass and the instance would become Master
	// with VIPs it cannot add: fail now, naming the capability.
	if err := vip.CheckPermission(); err != nil {
		_ = r.Close()
		return fail(err)
	}
	if err := r.vips.Check(); err != nil {
		_ = r.Close()
		return fail(err)
	}
	// A VIP left by a crashed predecessor answers ARP beside the new
	// Master's until removed: remove it now, before the slower start-up
	// of a proxy and steering (the instance removes it again at Run).
	if err := r.vips.Remove(); err != nil {
		_ = r.Close()
		return fail(err)
	}
	icfg := in.VRRPConfig(src)
	icfg.FineSleep = clock.FineSleeper()
	icfg.HandoverOnShutdown = opts.HandoverOnShutdown
	mgr := r.vips
	fx := vrrp.Effects{
		// The VIPs expire unless the Master's adverts keep refreshing
		// them: a killed or stopped nlb does not keep them.
		AddVIPs: func(_ context.Context, lifetime time.Duration) error {
			r.runMasterHook(true)
			return mgr.AddFor(lifetime)
		},
		RefreshVIPs: func(_ context.Context, lifetime time.Duration) error { return mgr.Refresh(lifetime) },
		RemoveVIPs: func(context.Context) error {
			r.runBeforeRemove()
			r.runMasterHook(false)
			return mgr.Remove()
		},
		Announce: func(context.Context) error { return r.ann.Announce(addrs) },
	}
	if r.inst, err = vrrp.NewInstance(icfg, r.conn, fx, ilog, opts.Metrics); err != nil {
		_ = r.Close()
		return fail(err)
	}
	ilog.Info("configured", "instance", in.Name, "vrid", in.VRID, "version", int(in.Version), "priority", in.Priority, "interval", in.Interval.String(),
		"source", src.String(), "unicast", unicast, "vips", fmt.Sprint(in.VIPs))
	return r, nil
}

// vipAddrs returns the addresses of prefixes.
func vipAddrs(prefixes []netip.Prefix) []netip.Addr {
	addrs := make([]netip.Addr, len(prefixes))
	for i, p := range prefixes {
		addrs[i] = p.Addr()
	}
	return addrs
}

// Config returns the instance's configuration.
func (r *Router) Config() config.Instance { return r.cfg }

// SetBeforeRemove sets fn to run just before the VIPs are removed (a
// release, a preemption, a fault, the end of Run). nlb controller closes
// its proxied connections to them there, while the VIPs can still carry
// the FIN, so that clients reconnect (to the new holder) at once instead
// of finding out by timeout. nil removes it.
func (r *Router) SetBeforeRemove(fn func()) {
	r.mu.Lock()
	r.beforeRemove = fn
	r.mu.Unlock()
}

func (r *Router) runBeforeRemove() {
	r.mu.Lock()
	fn := r.beforeRemove
	r.mu.Unlock()
	if fn != nil {
		fn()
	}
}

// SetMasterHook sets fn to be told when the instance takes up the Master
// role (true: just before its VIPs are added, so before its first
// gratuitous ARP) and when it leaves it (false: just before its VIPs are
// removed, after the function of SetBeforeRemove). nlb controller flips
// its XDP fast path's forwarding there (only the Master forwards). fn runs
// on the instance's goroutine and must return quickly. nil removes it.
func (r *Router) SetMasterHook(fn func(master bool)) {
	r.mu.Lock()
	r.masterHook = fn
	r.mu.Unlock()
}

func (r *Router) runMasterHook(master bool) {
	r.mu.Lock()
	fn := r.masterHook
	r.mu.Unlock()
	if fn != nil {
		fn(master)
	}
}

// Run runs the instance until ctx ends, in fault while its interface is
// down or without carrier (keepalived's interface tracking). A carrier
// watch that cannot start is logged, and the instance runs untracked.
func (r *Router) Run(ctx context.Context) error {
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := link.WatchCarrier(wctx, r.cfg.Interface, r.log, func(up bool) {
			if !up {
				r.log.Warn("interface down or without carrier: fault", "instance", r.cfg.Name)
			}
			r.inst.SetFault(!up)
		})
		if err != nil {
			r.log.Warn("not tracking the interface's link state", "instance", r.cfg.Name, "err", err)
		}
	}()
	defer func() { cancel(); <-done }()
	return r.inst.Run(ctx)
}

// SetPriority sets the instance's priority (health tracking): see
// vrrp.Instance.SetPriority.
func (r *Router) SetPriority(p uint8) { r.inst.SetPriority(p) }

// VRRPStatus returns the instance's protocol status.
func (r *Router) VRRPStatus() vrrp.InstanceStatus { return r.inst.Status() }

// Status returns the instance's status as /status shows it.
func (r *Router) Status() Status { return StatusOf(r.cfg, r.inst.Status()) }

// Close releases the sockets and the VIP manager, after Run has returned.
// It does not remove the VIPs (Run does when it ends).
func (r *Router) Close() error {
	var errs []error
	if r.conn != nil {
		errs = append(errs, r.conn.Close())
	}
	if r.ann != nil {
		errs = append(errs, r.ann.Close())
	}
	if r.vips != nil {
		errs = append(errs, r.vips.Close())
	}
	return errors.Join(errs...)
}
