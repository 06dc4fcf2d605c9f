//go:build linux

package cplb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/ebpf/xdplb"
	"github.com/nlb-dev/nlb/lb/maglev"
	"github.com/nlb-dev/nlb/vrrp"
)

// The XDP fast path: what a non-empty keepalived.virtualServers runs in
// place of the proxy's steering, as it switches k0s to keepalived's IPVS
// virtual servers (ebpf/xdplb has the data path, lb/maglev the tables,
// lb/dsr the real-server side; README "virtualServers" the k0s mapping).
//
//   - Every controller is a real server: its VIPs sit on dummyvip0 (or lo)
//     where the kernel accepts them without answering ARP for them
//     (FastPath.RealServer), and the XDP program is attached to each VRRP
//     interface that carries a virtual server, pinned, so that it outlives
//     the process (FastPath.Attach).
//   - Only the VRRP Master forwards: the instance's master hook flips one
//     map entry before the VIPs are added (so before the first gratuitous
//     ARP) and after the new Master has taken them over.
//   - The backends are the proxy's: the discovered set (or --backend), its
//     /readyz checks deciding health. The Maglev table is built from the
//     whole set, the same on every node, and health only refills the
//     slots of the backends it takes out (maglev.Table.Entries), so that
//     nodes that disagree about one backend move only its flows. With no
//     healthy backend the table fails open to all, as the proxy does.
//   - Each backend's MAC comes from the neighbour table
//     (FastPath.Resolve); a backend without one (silent, or not on the
//     VIP's link: DR rewrites only the MAC) is left out of the table, named
//     in the log and in /status.

// XDPDatapath is the XDP load balancer attached to one interface, as the
// fast path drives it: *xdplb.Datapath in nlb, a fake in tests.
type XDPDatapath interface {
	XDPStats
	SetMAC(mac net.HardwareAddr) error
	SetMaster(master bool) error
	Master() bool
	SetService(s xdplb.Service) error
	SetGuardMACs(macs []net.HardwareAddr) error
	DeleteService(vip netip.Addr, port uint16) error
	FlowTableMemory() (uint64, error)
	Options() xdplb.Options
	Mode() xdplb.Mode
	Skipped() []error
	Adopted() bool
	Replaced() error
	// Remove detaches the datapath and leaves nothing pinned (a graceful
	// stop); Close leaves a pinned datapath forwarding (a failed start).
	Remove() error
	Close() error
}

var _ XDPDatapath = (*xdplb.Datapath)(nil)

// FastPath are the XDP fast path's OS effects (OSFastPath in nlb, fakes
// in tests). A controller whose configuration has virtual servers needs
// Attach, InterfaceMAC, Resolve and RealServer; Cleanup is used by every
// other mode.
type FastPath struct {
	// Attach attaches the XDP load balancer to the interface, adopting
	// what a previous nlb pinned for it.
	Attach func(iface string) (XDPDatapath, error)
	// InterfaceMAC returns the interface's Ethernet address.
	InterfaceMAC func(iface string) (net.HardwareAddr, error)
	// Resolve returns backend's MAC on iface, or local when it is one of
	// this node's addresses, within ctx; an error says why not (silent,
	// not on iface's link).
	Resolve func(ctx context.Context, iface string, backend netip.Addr) (mac net.HardwareAddr, local bool, err error)
	// RealServer puts the VIPs on the node as a DR real server (dummyvip0
	// or lo, the ARP sysctls of ifaces); down undoes it.
	RealServer func(vips []netip.Addr, ifaces []string) (down func() error, err error)
	// Cleanup removes what a fast path left behind (the datapaths pinned
	// for these interfaces, DR addresses and sysctls) when the controller
	// runs another mode.
	Cleanup func(ifaces []string) error
}

// Fast path timings.
const (
	// resolveTimeout bounds one backend's MAC resolution.
	resolveTimeout = 2 * time.Second
	// macRefresh is how often known MACs are read again from the
	// neighbour table (the kernel re-resolves its managed entries).
	// Failed ones are retried at every reconcile: a backend's health or
	// the set changing (a link back up) wakes it at once.
	macRefresh = 5 * time.Second
	// fastPathTick is how often the loop looks at the VRRP states while
	// an adopted datapath still forwards as the crashed process left it.
	fastPathTick = 250 * time.Millisecond
)

// fastPath is the controller's XDP fast path.
type fastPath struct {
	env    FastPath
	log    *slog.Logger
	vrrp   []VRRP
	vss    []config.VirtualService
	ifaces []*xdpIface
	wake   chan struct{}
	down   func() error // the real server's undo (a failed start)

	mu    sync.Mutex
	proxy proxy
	macs  map[macKey]*macEntry
}

// xdpIface is the datapath of one VRRP interface and what it balances.
type xdpIface struct {
	name  string
	insts []int // indexes into fastPath.vrrp
	vss   []config.VirtualService
	dp    XDPDatapath

	// Guarded by fastPath.mu.
	master []bool // per insts entry: the hook's last word
	// undecided: the datapath was adopted forwarding (a crashed Master's)
	// and no instance has decided yet: it keeps forwarding, so that
	// clients still sending to this node's MAC are not answered with RSTs
	// by its own stack, until an instance becomes Master or sees another.
	undecided bool
	applied   map[netip.AddrPort]string // service → fingerprint of what was written
	guard     string                    // the guard MACs written, joined
	status    []XDPServiceStatus
	err       string // the last error applying the state
}

type macKey struct {
	iface string
	addr  netip.Addr
}

type macEntry struct {
	mac   net.HardwareAddr
	local bool
	err   error
	at    time.Time
}

// newFastPath checks what the fast path needs. It does no I/O.
func newFastPath(env FastPath, vss []config.VirtualService, vs []VRRP, log *slog.Logger) (*fastPath, error) {
	if env.Attach == nil || env.InterfaceMAC == nil || env.Resolve == nil || env.RealServer == nil {
		return nil, errors.New("virtualServers need the XDP fast path, which is not available")
	}
	fp := &fastPath{env: env, log: log, vrrp: vs, wake: make(chan struct{}, 1), macs: map[macKey]*macEntry{}}
	byName := map[string]*xdpIface{}
	for _, s := range vss {
		if s.Instance < 0 || s.Instance >= len(vs) {
			log.Warn("virtual server skipped: no VRRP instance holds its VIP", "field", s.Path+".ipAddress", "vip", s.VIP.String())
			continue
		}
		name := vs[s.Instance].Config().Interface
		x := byName[name]
		if x == nil {
			x = &xdpIface{name: name, applied: map[netip.AddrPort]string{}}
			byName[name] = x
			fp.ifaces = append(fp.ifaces, x)
		}
		if !slices.Contains(x.insts, s.Instance) {
			x.insts = append(x.insts, s.Instance)
			x.master = append(x.master, false)
		}
		x.vss = append(x.vss, s)
		fp.vss = append(fp.vss, s)
	}
	if len(fp.ifaces) == 0 {
		return nil, errors.New("no virtual server has a VIP that a VRRP instance holds")
	}
	for _, x := range fp.ifaces {
		if len(x.insts) > 1 {
			log.Warn("virtual servers of several VRRP instances share an interface: its datapath forwards while the node is Master of any of them",
				"iface", x.name)
		}
	}
	return fp, nil
}

// listen sets the node up as a real server, attaches the datapaths, writes
// the first tables from the proxy's backends and hooks the VRRP instances.
// On failure it undoes what it did.
func (fp *fastPath) listen(ctx context.Context, p proxy) (err error) {
	fp.mu.Lock()
	fp.proxy = p
	fp.mu.Unlock()
	var vips []netip.Addr
	for _, s := range fp.vss {
		if !slices.Contains(vips, s.VIP) {
			vips = append(vips, s.VIP)
		}
	}
	var names []string
	for _, x := range fp.ifaces {
		names = append(names, x.name)
	}
	down, err := fp.env.RealServer(vips, names)
	if err != nil {
		return fmt.Errorf("fast path: real server: %w", err)
	}
	fp.down = down
	defer func() {
		if err != nil {
			fp.close()
		}
	}()
	for _, s := range fp.vss {
		for _, n := range s.Notes {
			fp.log.Info("virtual server setting", "field", n.Field, "value", n.Value, "nlb", n.Note)
		}
	}
	for _, x := range fp.ifaces {
		mac, err := fp.env.InterfaceMAC(x.name)
		if err != nil {
			return fmt.Errorf("fast path on %s: %w", x.name, err)
		}
		dp, err := fp.env.Attach(x.name)
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("fast path on %s: loading and attaching the XDP program needs CAP_BPF and CAP_NET_ADMIN: %w", x.name, err)
		}
		if err != nil {
			return fmt.Errorf("fast path on %s: %w", x.name, err)
		}
		x.dp = dp
		if err := dp.SetMAC(mac); err != nil {
			return fmt.Errorf("fast path on %s: %w", x.name, err)
		}
		var skipped []string
		for _, e := range dp.Skipped() {
			skipped = append(skipped, e.Error())
		}
		x.undecided = dp.Adopted() && dp.Master()
		fp.log.Info("XDP fast path attached", "iface", x.name, "mode", string(dp.Mode()), "adopted", dp.Adopted(),
			"forwarding", dp.Master(), "skipped", skipped)
		if err := dp.Replaced(); err != nil {
			fp.log.Warn("XDP fast path: the tables an earlier nlb pinned have other sizes or another layout and were replaced by fresh ones; established flows are re-hashed by Maglev (to the same backends while they are unchanged)",
				"iface", x.name, "err", err)
		}
		if !x.undecided {
			// A fresh datapath starts in Backup; an adopted one that
			// did not forward stays so until an instance is Master.
			if err := dp.SetMaster(false); err != nil {
				return fmt.Errorf("fast path on %s: %w", x.name, err)
			}
		}
		if dp.Adopted() {
			// Services a previous configuration had and this one not.
			st, err := dp.Stats()
			if err != nil {
				return fmt.Errorf("fast path on %s: %w", x.name, err)
			}
			for _, s := range st.Services {
				if !slices.ContainsFunc(x.vss, func(v config.VirtualService) bool { return v.VIP == s.VIP && v.Port == s.Port }) {
					if err := dp.DeleteService(s.VIP, s.Port); err != nil {
						return fmt.Errorf("fast path on %s: %w", x.name, err)
					}
					fp.log.Info("XDP service removed: no longer configured", "iface", x.name, "vip", s.VIP.String(), "port", s.Port)
				}
			}
		}
	}
	fp.reconcile(ctx)
	for i, v := range fp.vrrp {
		if fp.instanceUsed(i) {
			v.SetMasterHook(func(master bool) { fp.setMaster(i, master) })
		}
	}
	return nil
}

func (fp *fastPath) instanceUsed(i int) bool {
	for _, x := range fp.ifaces {
		if slices.Contains(x.insts, i) {
			return true
		}
	}
	return false
}

// setMaster is instance i's master hook: the datapaths of its interface
// forward while any of their instances is Master. It runs on the
// instance's goroutine, before its VIPs are added or removed.
func (fp *fastPath) setMaster(i int, master bool) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	for _, x := range fp.ifaces {
		k := slices.Index(x.insts, i)
		if k < 0 || x.dp == nil {
			continue
		}
		x.master[k] = master
		if master {
			x.undecided = false
		}
		fp.applyMasterLocked(x)
	}
}

// applyMasterLocked writes x's forwarding state, unless an adopted
// datapath is still undecided.
func (fp *fastPath) applyMasterLocked(x *xdpIface) {
	if x.undecided || x.dp == nil {
		return
	}
	want := slices.Contains(x.master, true)
	if x.dp.Master() == want {
		return
	}
	if err := x.dp.SetMaster(want); err != nil {
		fp.log.Error("XDP fast path: setting the forwarding state", "iface", x.name, "forwarding", want, "err", err)
		return
	}
	fp.log.Info("XDP fast path forwarding", "iface", x.name, "forwarding", want)
}

// changed wakes the loop (lb.Options.Changed).
func (fp *fastPath) changed() {
	select {
	case fp.wake <- struct{}{}:
	default:
	}
}

// run keeps the tables and the forwarding state up to date until ctx ends.
func (fp *fastPath) run(ctx context.Context) {
	tick := time.NewTicker(fastPathTick)
	defer tick.Stop()
	lastRefresh := time.Now()
	seen := backendsKey(fp.backends())
	for {
		select {
		case <-ctx.Done():
			return
		case <-fp.wake:
		case <-tick.C:
			fp.decideAdopted()
			// Changed wakes the loop at once; a backend change
			// without it (a proxy in tests, a missed wake-up) is
			// picked up here.
			if backendsKey(fp.backends()) == seen && time.Since(lastRefresh) < macRefresh {
				continue
			}
		}
		lastRefresh = time.Now()
		seen = fp.reconcile(ctx)
	}
}

// backendsKey identifies the backends and their health.
func backendsKey(bs []fpBackend) string {
	var k string
	for _, b := range bs {
		k += fmt.Sprintf("%s/%v,", b.key, b.healthy)
	}
	return k
}

// decideAdopted ends the undecided state of an adopted datapath once
// every instance of its interface is a Backup that hears another Master
// (or one of them became Master: setMaster).
func (fp *fastPath) decideAdopted() {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	for _, x := range fp.ifaces {
		if !x.undecided {
			continue
		}
		decided := true
		for _, i := range x.insts {
			s := fp.vrrp[i].VRRPStatus()
			if s.State != vrrp.Backup || !s.Master.IsValid() {
				decided = false
			}
		}
		if decided {
			x.undecided = false
			fp.log.Info("XDP fast path: another node is Master; the adopted datapath stops forwarding", "iface", x.name)
			fp.applyMasterLocked(x)
		}
	}
}

// backend is one of the proxy's backends as the fast path sees it.
type fpBackend struct {
	key     string // ip:port, the Maglev key
	addr    netip.AddrPort
	healthy bool
}

// backends returns the proxy's current backends (not the removed ones).
func (fp *fastPath) backends() []fpBackend {
	fp.mu.Lock()
	p := fp.proxy
	fp.mu.Unlock()
	var out []fpBackend
	for _, b := range p.Status().Backends {
		if b.Removed {
			continue
		}
		ap, err := netip.ParseAddrPort(b.Address)
		if err != nil {
			// A host name (--backend): DR needs the address.
			out = append(out, fpBackend{key: b.Address})
			continue
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		out = append(out, fpBackend{key: ap.String(), addr: ap, healthy: b.Healthy})
	}
	return out
}

// resolve returns the MACs of bs on iface, resolving those unknown or due
// for a refresh. It runs outside fp.mu: a silent backend takes up to
// resolveTimeout.
func (fp *fastPath) resolve(ctx context.Context, iface string, bs []fpBackend) map[netip.Addr]*macEntry {
	out := map[netip.Addr]*macEntry{}
	for _, b := range bs {
		if !b.addr.IsValid() {
			continue
		}
		a := b.addr.Addr()
		k := macKey{iface, a}
		fp.mu.Lock()
		e := fp.macs[k]
		fp.mu.Unlock()
		if e == nil || e.err != nil || time.Since(e.at) >= macRefresh {
			rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
			mac, local, err := fp.env.Resolve(rctx, iface, a)
			cancel()
			n := &macEntry{mac: mac, local: local, err: err, at: time.Now()}
			switch {
			case err != nil && (e == nil || e.err == nil || e.err.Error() != err.Error()):
				fp.log.Warn("XDP fast path: backend left out of the table", "iface", iface, "backend", a.String(), "err", err)
			case err == nil && e != nil && e.err != nil:
				fp.log.Info("XDP fast path: backend resolved", "iface", iface, "backend", a.String(), "mac", mac.String(), "local", local)
			case err == nil && e != nil && e.mac.String() != mac.String():
				fp.log.Info("XDP fast path: backend's MAC changed", "iface", iface, "backend", a.String(), "from", e.mac.String(), "to", mac.String())
			}
			fp.mu.Lock()
			fp.macs[k] = n
			fp.mu.Unlock()
			e = n
		}
		out[a] = e
	}
	return out
}

// reconcile writes every interface's services from the proxy's backends,
// and the other Masters' MACs to its guard, and returns the backends'
// backendsKey.
func (fp *fastPath) reconcile(ctx context.Context) string {
	bs := fp.backends()
	defer func() { fp.log.Debug("XDP fast path reconciled", "backends", len(bs)) }()
	for _, x := range fp.ifaces {
		macs := fp.resolve(ctx, x.name, bs)
		guard := fp.masterMACs(ctx, x)
		fp.mu.Lock()
		fp.applyLocked(x, bs, macs)
		fp.applyGuardLocked(x, guard)
		fp.mu.Unlock()
	}
	return backendsKey(bs)
}

// masterMACs returns the MACs of the other nodes that x's instances hear
// as Master. A Backup forwards the VIP traffic a client still sends it
// (xdplb: a stale ARP entry), so what the Master forwards to this node as
// a backend must be told apart: the backends' MACs are guarded anyway,
// and the Master's is added in case its own API server is not among them.
func (fp *fastPath) masterMACs(ctx context.Context, x *xdpIface) []net.HardwareAddr {
	var out []net.HardwareAddr
	for _, i := range x.insts {
		s := fp.vrrp[i].VRRPStatus()
		if s.State != vrrp.Backup || !s.Master.IsValid() {
			continue
		}
		e := fp.resolve(ctx, x.name, []fpBackend{{addr: netip.AddrPortFrom(s.Master, 0)}})[s.Master.Unmap()]
		if e != nil && e.err == nil && !e.local {
			out = append(out, e.mac)
		}
	}
	return out
}

// applyGuardLocked writes x's guard MACs when they changed.
func (fp *fastPath) applyGuardLocked(x *xdpIface, macs []net.HardwareAddr) {
	var key string
	for _, m := range macs {
		key += m.String() + ","
	}
	if key == x.guard || x.dp == nil {
		return
	}
	if err := x.dp.SetGuardMACs(macs); err != nil {
		fp.log.Error("XDP fast path: writing the guard MACs", "iface", x.name, "err", err)
		return
	}
	x.guard = key
}

// applyLocked builds x's services and writes those that changed.
func (fp *fastPath) applyLocked(x *xdpIface, bs []fpBackend, macs map[netip.Addr]*macEntry) {
	if x.dp == nil {
		return // removed (stop) or released (close)
	}
	var errs []string
	var status []XDPServiceStatus
	for _, vs := range x.vss {
		svc, st := buildService(vs, bs, macs)
		status = append(status, st)
		key := netip.AddrPortFrom(vs.VIP, vs.Port)
		fpr := fingerprint(svc)
		if x.applied[key] == fpr {
			continue
		}
		if err := x.dp.SetService(svc); err != nil {
			errs = append(errs, err.Error())
			fp.log.Error("XDP fast path: writing the service", "iface", x.name, "vip", vs.VIP.String(), "port", vs.Port, "err", err)
			continue
		}
		x.applied[key] = fpr
		fp.log.Info("XDP service updated", "iface", x.name, "vip", vs.VIP.String(), "port", vs.Port,
			"backends", st.inTable(), "fail_open", st.FailOpen)
	}
	x.status = status
	x.err = ""
	if len(errs) > 0 {
		x.err = errs[0]
	}
}

// buildService is the xdplb.Service of vs: the Maglev table of every
// backend on vs's port, refilled for those that are unhealthy or have no
// MAC, or failing open to every backend with a MAC when none is healthy.
func buildService(vs config.VirtualService, bs []fpBackend, macs map[netip.Addr]*macEntry) (xdplb.Service, XDPServiceStatus) {
	svc := xdplb.Service{VIP: vs.VIP, Port: vs.Port, Persistent: vs.Persistent}
	st := XDPServiceStatus{VIP: vs.VIP.String(), Port: vs.Port, Persistent: vs.Persistent}
	type cand struct {
		fpBackend
		mac   *macEntry
		issue string
	}
	var cands []cand
	for _, b := range bs {
		c := cand{fpBackend: b}
		switch {
		case !b.addr.IsValid():
			c.issue = "not an IP address: direct server return needs the backend's address"
		case b.addr.Port() != vs.Port:
			c.issue = fmt.Sprintf("port %d: direct server return keeps the VIP's port %d", b.addr.Port(), vs.Port)
		default:
			c.mac = macs[b.addr.Addr()]
			if c.mac == nil || c.mac.err != nil {
				c.issue = "no MAC"
				if c.mac != nil {
					c.issue = c.mac.err.Error()
				}
			}
		}
		cands = append(cands, c)
	}
	usable := func(c cand) bool { return c.issue == "" }
	var keys []string
	byKey := map[string]cand{}
	for _, c := range cands {
		if c.addr.IsValid() && c.addr.Port() == vs.Port {
			keys = append(keys, c.key)
			byKey[c.key] = c
		}
	}
	var (
		entries maglev.Entries
		tbl     *maglev.Table
	)
	if len(keys) > 0 {
		t, err := maglev.New(keys, maglev.DefaultSize)
		if err == nil {
			tbl = t
			healthy := func(k string) bool { c := byKey[k]; return usable(c) && c.healthy }
			if !slices.ContainsFunc(keys, healthy) {
				// No healthy backend: fail open to every usable one,
				// as the proxy does.
				st.FailOpen = slices.ContainsFunc(keys, func(k string) bool { return usable(byKey[k]) })
				healthy = func(k string) bool { return usable(byKey[k]) }
			}
			entries = tbl.Entries(healthy)
		} else {
			st.Problem = err.Error()
		}
	}
	// xdplb.Service.Backends: the usable backends; the table's indices
	// are into maglev's sorted list, renumbered into this one.
	renum := map[int]uint32{}
	var counts []int
	if tbl != nil {
		counts = entries.Count(len(tbl.Backends()))
		for i, k := range tbl.Backends() {
			c := byKey[k]
			if !usable(c) {
				continue
			}
			renum[i] = uint32(len(svc.Backends))
			svc.Backends = append(svc.Backends, xdplb.Backend{Addr: c.addr.Addr(), MAC: c.mac.mac, Local: c.mac.local})
		}
		if len(svc.Backends) > 0 {
			svc.Table = make([]uint32, len(entries))
			for j, e := range entries {
				if n, ok := renum[int(e)]; ok {
					svc.Table[j] = n
				} else {
					svc.Table[j] = xdplb.NoBackend
				}
			}
		}
	}
	for _, c := range cands {
		bst := XDPBackendStatus{Address: c.key, Healthy: c.healthy, Problem: c.issue}
		if c.mac != nil && c.mac.err == nil {
			bst.MAC, bst.Local = c.mac.mac.String(), c.mac.local
		}
		if tbl != nil {
			if i, ok := tbl.Index(c.key); ok && i < len(counts) && usable(c) {
				bst.Slots = counts[i]
			}
		}
		st.Backends = append(st.Backends, bst)
	}
	sort.Slice(st.Backends, func(i, j int) bool { return st.Backends[i].Address < st.Backends[j].Address })
	return svc, st
}

// fingerprint identifies what SetService would write, to skip a rewrite
// of an unchanged service.
func fingerprint(s xdplb.Service) string {
	h := fmt.Sprintf("%v|%v|%d|", s.Persistent, s.Port, len(s.Table))
	for _, b := range s.Backends {
		h += fmt.Sprintf("%s=%s/%v,", b.Addr, b.MAC, b.Local)
	}
	// The table follows from the backends, their health and their
	// MACs; hash it anyway (it is 64 KiB at most).
	var sum uint64
	for i, e := range s.Table {
		sum = sum*1099511628211 + uint64(e) + uint64(i)
	}
	return h + fmt.Sprint(sum)
}

// Draining after a graceful handover.
const (
	// drainQuiet is how long no client may still send VIP traffic to
	// this node's MAC before the datapath goes.
	drainQuiet = 2 * time.Second
	// drainMargin is added to the new Master's second gratuitous ARP
	// burst (garp.masterDelay) to bound the drain.
	drainMargin = 3 * time.Second
	// drainPoll is how often the drain reads the counters.
	drainPoll = 250 * time.Millisecond
)

// drain keeps the datapaths forwarding after the instances have handed
// the VIPs over, until no client has sent VIP traffic here for drainQuiet
// (the program counts it as Backup traffic). A client whose ARP entry
// still names this node (it ignored the new Master's gratuitous ARP, sent
// within its ARP locktime of another one, and its TCP traffic keeps the
// stale entry confirmed) learns the new MAC only from the new Master's
// second burst, garp.masterDelay later (5 s by default): removing the
// datapath before would let this node's stack, which holds the VIP as a
// real server, reset those clients' connections. The drain is bounded by
// that delay plus drainMargin, and skipped when no instance heard another
// Master (nobody took the VIPs over).
func (fp *fastPath) drain(ctx context.Context) {
	var limit time.Duration
	taken := false
	for _, x := range fp.ifaces {
		for _, i := range x.insts {
			limit = max(limit, fp.vrrp[i].Config().GARP.MasterDelay)
			if s := fp.vrrp[i].VRRPStatus(); s.State != vrrp.Master && s.Master.IsValid() {
				taken = true
			}
		}
	}
	if !taken {
		return
	}
	limit += drainMargin
	start := time.Now()
	last, quietSince := fp.misdirected(), start
	for time.Since(start) < limit {
		select {
		case <-ctx.Done():
			return
		case <-time.After(drainPoll):
		}
		if n := fp.misdirected(); n != last {
			last, quietSince = n, time.Now()
			continue
		}
		if time.Since(quietSince) >= drainQuiet {
			fp.log.Info("XDP fast path drained: no client sends VIP traffic here any more",
				"after", time.Since(start).Round(time.Millisecond).String())
			return
		}
	}
	fp.log.Warn("XDP fast path: clients still send VIP traffic here; removing the datapath anyway",
		"after", time.Since(start).Round(time.Millisecond).String(), "forwarded", last)
}

// misdirected is the VIP traffic forwarded while Backup, summed over the
// datapaths.
func (fp *fastPath) misdirected() uint64 {
	st, err := fp.Stats()
	if err != nil {
		return 0
	}
	return st.Backup
}

// stop detaches the datapaths, leaving nothing pinned (a graceful stop):
// the VRRP instances have returned, so no node forwards by this one any
// more. The real-server side stays (see Controller.Run).
func (fp *fastPath) stop() {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	for _, x := range fp.ifaces {
		if x.dp == nil {
			continue
		}
		if err := x.dp.Remove(); err != nil {
			fp.log.Error("XDP fast path: removing the datapath", "iface", x.name, "err", err)
		} else {
			fp.log.Info("XDP fast path removed", "iface", x.name)
		}
		x.dp = nil
	}
}

// close undoes a start that failed: the datapaths are released (pinned
// ones keep forwarding, as after a crash) and the real server undone.
func (fp *fastPath) close() {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	for _, x := range fp.ifaces {
		if x.dp != nil {
			_ = x.dp.Close()
			x.dp = nil
		}
	}
	if fp.down != nil {
		if err := fp.down(); err != nil {
			fp.log.Error("XDP fast path: undoing the real server", "err", err)
		}
		fp.down = nil
	}
}

// Stats sums the counters of every interface's datapath (XDPStats, for
// the nlb_xdp_* metrics).
func (fp *fastPath) Stats() (xdplb.Stats, error) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	var out xdplb.Stats
	for _, x := range fp.ifaces {
		if x.dp == nil {
			continue
		}
		s, err := x.dp.Stats()
		if err != nil {
			return xdplb.Stats{}, err
		}
		out.Services = append(out.Services, s.Services...)
		e := &out.Events
		e.Malformed += s.Malformed
		e.Fragments += s.Fragments
		e.Backup += s.Backup
		e.LoopGuard += s.LoopGuard
		e.Local += s.Local
		e.NoBackend += s.NoBackend
		e.ICMPForwarded += s.ICMPForwarded
	}
	return out, nil
}

// status returns the fast path's /status.
func (fp *fastPath) status() *FastPathStatus {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	st := &FastPathStatus{Mode: "xdp"}
	for _, x := range fp.ifaces {
		is := XDPInterfaceStatus{Interface: x.name, Error: x.err, Undecided: x.undecided}
		is.Services = slices.Clone(x.status)
		for i := range is.Services {
			is.Services[i].Backends = slices.Clone(is.Services[i].Backends)
		}
		if x.dp != nil {
			is.Attach = string(x.dp.Mode())
			is.Adopted = x.dp.Adopted()
			is.Forwarding = x.dp.Master()
			for _, e := range x.dp.Skipped() {
				is.Skipped = append(is.Skipped, e.Error())
			}
			is.FlowTable.Entries = x.dp.Options().FlowTableSize
			if m, err := x.dp.FlowTableMemory(); err == nil {
				is.FlowTable.MemoryBytes = m
			}
			if s, err := x.dp.Stats(); err == nil {
				is.Events = map[string]uint64{}
				for _, e := range xdpEvents(s.Events) {
					is.Events[e.name] = e.v
				}
				for i := range is.Services {
					addCounters(&is.Services[i], s)
				}
			}
		}
		st.Interfaces = append(st.Interfaces, is)
	}
	return st
}

// addCounters copies the datapath's counters of st's service and backends.
func addCounters(st *XDPServiceStatus, s xdplb.Stats) {
	for _, ss := range s.Services {
		if ss.VIP.String() != st.VIP || ss.Port != st.Port {
			continue
		}
		st.XDPCounters = xdpCounters(ss.Counters)
		for _, bs := range ss.Backends {
			for i := range st.Backends {
				if ap, err := netip.ParseAddrPort(st.Backends[i].Address); err == nil && ap.Addr() == bs.Addr {
					st.Backends[i].XDPCounters = xdpCounters(bs.Counters)
				}
			}
		}
	}
}

func xdpCounters(c xdplb.Counters) XDPCounters {
	return XDPCounters{Packets: c.Packets, Bytes: c.Bytes, NewFlows: c.NewFlows, Rehashed: c.Rehashed}
}

// registerFastPathMetrics registers the nlb_xdp_* metrics of every
// interface's datapath.
func registerFastPathMetrics(reg prometheus.Registerer, fp *fastPath) error {
	return RegisterXDPMetrics(reg, fp)
}
