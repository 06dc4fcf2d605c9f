//go:build linux

package xdplb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
)

// ProgramName is the kernel's name of the XDP program (the C function in
// xdplb.c).
const ProgramName = "nlb_xdp_lb"

// Flags of the maps' values (BE_F_*, SVC_F_* in xdplb.c) and the families
// of the keys (FAMILY_*).
const (
	beActive      = 1
	beLocal       = 2
	svcPersistent = 1
	familyIPv4    = 4
	familyIPv6    = 6
)

// Indices of nlb_events (EV_* in xdplb.c).
const (
	evMalformed uint32 = iota
	evFragment
	evBackup
	evLoopGuard
	evLocal
	evNoBackend
	evICMPForwarded
	evCount
)

// Counters count a service's or a backend's traffic, summed over CPUs.
type Counters struct {
	// Packets and Bytes (Ethernet header plus the IP packet, by its length
	// field) the program handled: forwarded, or passed to the local
	// backend; ICMP errors included.
	Packets, Bytes uint64
	// NewFlows counts SYNs that missed the flow table.
	NewFlows uint64
	// Rehashed counts other TCP packets that missed the flow table (it
	// evicted the flow, another node was Master when it began, or its
	// backend was removed) and were sent by the Maglev table.
	Rehashed uint64
}

// Events count what the program passed to the local stack instead of
// forwarding, and the ICMP errors it forwarded, summed over CPUs.
type Events struct {
	// Malformed: truncated or inconsistent IPv4, IPv6, TCP or ICMP
	// headers (of any destination).
	Malformed uint64
	// Fragments of TCP or ICMP (of any destination).
	Fragments uint64
	// Backup: VIP traffic forwarded while not the Master (a client's
	// stale ARP entry after a VIP move).
	Backup uint64
	// LoopGuard: VIP traffic from a backend's (or another guarded) MAC.
	LoopGuard uint64
	// Local: VIP traffic whose backend is this node.
	Local uint64
	// NoBackend: VIP traffic of a service with an empty table.
	NoBackend uint64
	// ICMPForwarded: ICMP errors about a VIP flow sent to its backend.
	ICMPForwarded uint64
}

// ServiceStats are one service's counters and its backends'.
type ServiceStats struct {
	// VIP and Port name the service.
	VIP  netip.Addr
	Port uint16
	// Counters are the service's totals.
	Counters
	// Backends are its backends' counters, in the order last given to
	// SetService. A backend's counters start at zero when it gets a slot
	// and continue while it keeps its Addr.
	Backends []BackendStats
}

// BackendStats are one backend's counters.
type BackendStats struct {
	// Addr is the backend's [Backend.Addr].
	Addr netip.Addr
	Counters
}

// Stats are the program's counters.
type Stats struct {
	// Services are sorted by VIP and port.
	Services []ServiceStats
	// Events are the program's, for every service together.
	Events
}

// Objects are the loaded program and its maps, and the state that the
// methods keep in them. Its methods may be called concurrently.
type Objects struct {
	mu       sync.Mutex
	opts     Options
	objs     xdplbObjects
	cfg      xdplbConfig
	macSet   bool
	services map[netip.AddrPort]*serviceState
	ids      []bool // service ids in use
	extra    map[[6]byte]bool
	guard    map[[6]byte]bool // what nlb_guard holds
	addrs    *ebpf.Map        // nlb_be_addrs: global slot → backend Addr (adoption)
	replaced error            // why the pinned maps were replaced, not adopted
	closed   bool
}

// serviceState is what the maps hold for one service.
type serviceState struct {
	id       uint32
	half     uint32
	slots    map[netip.Addr]uint32 // backend → slot in [0, MaxBackends)
	backends map[uint32]Backend    // slot → backend
	order    []netip.Addr          // the Addrs in the order given
}

// Load loads the program and its maps into the kernel, sized by opts, in
// the Backup state with no service and no MAC (VIP traffic passes). Attaching the
// program to an interface is the caller's ([Objects.Program]). On kernels
// before 5.11, which charge BPF memory to RLIMIT_MEMLOCK, it raises that
// limit of the process.
func Load(opts Options) (*Objects, error) {
	o, _, err := load(opts, "")
	return o, err
}

// load loads the program and its maps. With pinDir (a directory on a
// bpffs), the maps are pinned there by name; maps already pinned there are
// reused, and then the state (VRRP state, MAC, services, backends, guard)
// is read back from them instead of being reset: adopted reports that.
// Pinned maps that cannot be reused (made with other sizes, or by an nlb
// with another layout) are unpinned and fresh ones made: o.replaced says
// why. The program attached on them keeps them until its link is switched
// to the new program.
func load(opts Options, pinDir string) (o *Objects, adopted bool, err error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, false, err
	}
	spec, err := loadXdplb()
	if err != nil {
		return nil, false, fmt.Errorf("xdplb: %w", err)
	}
	svc, be := uint32(opts.MaxServices), uint32(opts.MaxServices*opts.MaxBackends)
	sizes := map[string]uint32{
		xdplbMapNlbServices: svc,
		xdplbMapNlbSvcStats: svc,
		xdplbMapNlbMaglev:   svc * 2 * uint32(opts.MaxTableSize),
		xdplbMapNlbBackends: be,
		xdplbMapNlbBeStats:  be,
		xdplbMapNlbGuard:    be + 64,
		xdplbMapNlbFlows:    opts.flowSets(),
	}
	for name, n := range sizes {
		spec.Maps[name].MaxEntries = n
	}
	if err := spec.Variables[xdplbVarMaxTable].Set(uint32(opts.MaxTableSize)); err != nil {
		return nil, false, fmt.Errorf("xdplb: set max_table: %w", err)
	}
	if err := spec.Variables[xdplbVarFlowSets].Set(opts.flowSets()); err != nil {
		return nil, false, fmt.Errorf("xdplb: set flow_sets: %w", err)
	}
	if err := spec.Variables[xdplbVarMaxBackends].Set(uint32(opts.MaxBackends)); err != nil {
		return nil, false, fmt.Errorf("xdplb: set max_backends: %w", err)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, false, fmt.Errorf("xdplb: remove memlock limit: %w", err)
	}
	addrSpec := beAddrsSpec(be)
	var colOpts ebpf.CollectionOptions
	if pinDir != "" {
		if adopted, err = pinnedMapsExist(pinDir); err != nil {
			return nil, false, err
		}
		for name := range sizes {
			spec.Maps[name].Pinning = ebpf.PinByName
		}
		spec.Maps[xdplbMapNlbConfig].Pinning = ebpf.PinByName
		spec.Maps[xdplbMapNlbEvents].Pinning = ebpf.PinByName
		addrSpec.Pinning = ebpf.PinByName
		colOpts.Maps.PinPath = pinDir
	}
	o = &Objects{
		opts:     opts,
		cfg:      xdplbConfig{Seed: opts.HashSeed},
		services: make(map[netip.AddrPort]*serviceState),
		ids:      make([]bool, opts.MaxServices),
		extra:    make(map[[6]byte]bool),
		guard:    make(map[[6]byte]bool),
	}
	err = spec.LoadAndAssign(&o.objs, &colOpts)
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		o.replaced = err
		if err := removePinnedMaps(pinDir); err != nil {
			return nil, false, err
		}
		adopted = false
		err = spec.LoadAndAssign(&o.objs, &colOpts)
	}
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, false, fmt.Errorf("xdplb: load: %+v", ve)
		}
		return nil, false, fmt.Errorf("xdplb: load: %w", err)
	}
	if o.addrs, err = ebpf.NewMapWithOptions(addrSpec, colOpts.Maps); err != nil {
		o.objs.Close()
		return nil, false, fmt.Errorf("xdplb: load %s: %w", addrSpec.Name, err)
	}
	if adopted {
		err = o.adopt()
	} else {
		err = o.putConfig(o.cfg)
	}
	if err != nil {
		o.objs.Close()
		o.addrs.Close()
		return nil, false, err
	}
	return o, adopted, nil
}

// Program returns the XDP program, to attach (link.AttachXDP) or to run
// (Program.Run). It stays owned by o.
func (o *Objects) Program() *ebpf.Program { return o.objs.NlbXdpLb }

// Options returns the sizes o was loaded with (defaults filled in).
func (o *Objects) Options() Options { return o.opts }

// FlowTableMemory returns the bytes the kernel has allocated to the flow
// table (its memlock figure: the table is an array, so this is its size at
// any fill).
func (o *Objects) FlowTableMemory() (uint64, error) {
	info, err := o.objs.NlbFlows.Info()
	if err != nil {
		return 0, fmt.Errorf("xdplb: flow table info: %w", err)
	}
	m, ok := info.Memlock()
	if !ok {
		return 0, errors.New("xdplb: the kernel reports no memory figure for the flow table")
	}
	return m, nil
}

func (o *Objects) putConfig(c xdplbConfig) error {
	if err := o.objs.NlbConfig.Put(uint32(0), c); err != nil {
		return fmt.Errorf("xdplb: write config: %w", err)
	}
	o.cfg = c
	return nil
}

func (o *Objects) check() error {
	if o.closed {
		return errors.New("xdplb: closed")
	}
	return nil
}

// SetMaster sets the VRRP state. It is one map write, never a reload. The
// Master forwards VIP traffic; a Backup forwards only what a client with a
// stale ARP entry still sends it (counted in Events.Backup), since its own
// stack would reset other backends' flows. The Master needs our MAC
// ([Objects.SetMAC]) first.
func (o *Objects) SetMaster(master bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.check(); err != nil {
		return err
	}
	if master && !o.macSet {
		return errors.New("xdplb: SetMaster(true) before SetMAC: forwarded frames need our source MAC")
	}
	c := o.cfg
	c.Master = 0
	if master {
		c.Master = 1
	}
	return o.putConfig(c)
}

// SetMAC sets our own MAC, the source of forwarded frames: the address of
// the interface the program is attached to.
func (o *Objects) SetMAC(mac net.HardwareAddr) error {
	if err := checkMAC(mac); err != nil {
		return fmt.Errorf("xdplb: SetMAC: %w", err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.check(); err != nil {
		return err
	}
	c := o.cfg
	c.Mac = [6]byte(mac)
	if err := o.putConfig(c); err != nil {
		return err
	}
	o.macSet = true
	return nil
}

// SetGuardMACs sets the MACs, besides every backend's, whose frames to a
// VIP are never forwarded (for example the other load balancers' that are
// not backends). It replaces the previous set.
func (o *Objects) SetGuardMACs(macs []net.HardwareAddr) error {
	extra := make(map[[6]byte]bool, len(macs))
	for i, m := range macs {
		if err := checkMAC(m); err != nil {
			return fmt.Errorf("xdplb: SetGuardMACs: [%d]: %w", i, err)
		}
		extra[[6]byte(m)] = true
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.check(); err != nil {
		return err
	}
	o.extra = extra
	return o.syncGuard()
}

// syncGuard makes nlb_guard the union of the backends' MACs and the extra
// ones: additions first, so no guarded MAC is ever missing in between.
func (o *Objects) syncGuard() error {
	want := make(map[[6]byte]bool, len(o.guard))
	for m := range o.extra {
		want[m] = true
	}
	for _, st := range o.services {
		for _, b := range st.backends {
			want[[6]byte(b.MAC)] = true
		}
	}
	for m := range want {
		if o.guard[m] {
			continue
		}
		if err := o.objs.NlbGuard.Put(xdplbMacKey{Addr: m}, uint32(1)); err != nil {
			return fmt.Errorf("xdplb: add guard MAC %s: %w", net.HardwareAddr(m[:]), err)
		}
		o.guard[m] = true
	}
	for m := range o.guard {
		if want[m] {
			continue
		}
		if err := o.objs.NlbGuard.Delete(xdplbMacKey{Addr: m}); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("xdplb: remove guard MAC %s: %w", net.HardwareAddr(m[:]), err)
		}
		delete(o.guard, m)
	}
	return nil
}

// serviceKey is the nlb_services key of VIP:port.
func serviceKey(vip netip.Addr, port uint16) xdplbServiceKey {
	k := xdplbServiceKey{Port: htons(port)}
	k.Family = addrKey(&k.Addr, vip)
	return k
}

// addrKey copies a into w in memory (network byte) order and returns its
// family.
func addrKey(w *[4]uint32, a netip.Addr) uint8 {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		w[0] = nativeWord(b[:])
		return familyIPv4
	}
	b := a.As16()
	for i := range w {
		w[i] = nativeWord(b[4*i:])
	}
	return familyIPv6
}

// SetService adds or replaces a service. The switch to the new Maglev
// table is atomic: the table is written to the service's unused half,
// then the service entry is replaced. Backends keep their slots (and so
// their flows and counters) by Addr; the slots of removed backends are
// emptied after the switch, and their flows are re-hashed.
func (o *Objects) SetService(s Service) error {
	if err := s.validate(o.opts); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.check(); err != nil {
		return err
	}
	ap := netip.AddrPortFrom(s.VIP.Unmap(), s.Port)
	st := o.services[ap]
	isNew := st == nil
	if isNew {
		id := slices.Index(o.ids, false)
		if id < 0 {
			return fmt.Errorf("xdplb: service %s: already %d services (Options.MaxServices)", ap, o.opts.MaxServices)
		}
		st = &serviceState{id: uint32(id), half: 1, slots: map[netip.Addr]uint32{}, backends: map[uint32]Backend{}}
		if err := o.zeroCounters(o.objs.NlbSvcStats, st.id); err != nil {
			return err
		}
	}
	base := st.id * uint32(o.opts.MaxBackends)
	slots, next := assignSlots(st.slots, s.Backends, o.opts.MaxBackends)
	backends := make(map[uint32]Backend, len(s.Backends))
	order := make([]netip.Addr, len(s.Backends))
	for i, b := range s.Backends {
		b.Addr = b.Addr.Unmap()
		b.MAC = slices.Clone(b.MAC)
		slot := slots[i]
		backends[slot] = b
		order[i] = b.Addr
		old, had := st.backends[slot]
		if had && old.Addr == b.Addr && old.Local == b.Local && [6]byte(old.MAC) == [6]byte(b.MAC) {
			continue
		}
		if !had || old.Addr != b.Addr {
			if err := o.zeroCounters(o.objs.NlbBeStats, base+slot); err != nil {
				return err
			}
		}
		v := xdplbBackend{Mac: [6]byte(b.MAC), Flags: beActive}
		if b.Local {
			v.Flags |= beLocal
		}
		if err := o.addrs.Put(base+slot, beAddrValue(b.Addr)); err != nil {
			return fmt.Errorf("xdplb: service %s: write backend %s: %w", ap, b.Addr, err)
		}
		if err := o.objs.NlbBackends.Put(base+slot, v); err != nil {
			return fmt.Errorf("xdplb: service %s: write backend %s: %w", ap, b.Addr, err)
		}
	}
	half := st.half ^ 1
	if len(s.Table) > 0 {
		start := (st.id*2 + half) * uint32(o.opts.MaxTableSize)
		keys := make([]uint32, len(s.Table))
		vals := make([]uint32, len(s.Table))
		for i, v := range s.Table {
			keys[i] = start + uint32(i)
			vals[i] = NoBackend // no slot: the lookup in nlb_backends fails
			if v != NoBackend {
				vals[i] = base + slots[v]
			}
		}
		if err := o.putTable(keys, vals); err != nil {
			return fmt.Errorf("xdplb: service %s: write Maglev table: %w", ap, err)
		}
	}
	sv := xdplbService{Id: st.id, TableLen: uint32(len(s.Table)), Half: half}
	if s.Persistent {
		sv.Flags |= svcPersistent
	}
	if err := o.objs.NlbServices.Put(serviceKey(ap.Addr(), ap.Port()), sv); err != nil {
		return fmt.Errorf("xdplb: service %s: write service: %w", ap, err)
	}
	if isNew {
		o.ids[st.id] = true
		o.services[ap] = st
	}
	st.half = half
	// The new table is in use: empty the slots no backend holds any more.
	for slot := range st.backends {
		if _, kept := backends[slot]; kept {
			continue
		}
		if err := o.emptySlot(base + slot); err != nil {
			return fmt.Errorf("xdplb: service %s: empty backend slot %d: %w", ap, slot, err)
		}
	}
	st.slots, st.backends, st.order = next, backends, order
	return o.syncGuard()
}

// putTable writes a Maglev table, in one batch where the kernel can.
func (o *Objects) putTable(keys, vals []uint32) error {
	_, err := o.objs.NlbMaglev.BatchUpdate(keys, vals, nil)
	if err == nil {
		return nil
	}
	if !errors.Is(err, ebpf.ErrNotSupported) {
		return err
	}
	for i := range keys {
		if err := o.objs.NlbMaglev.Put(keys[i], vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// zeroCounters resets one entry of a per-CPU counters map.
func (o *Objects) zeroCounters(m *ebpf.Map, key uint32) error {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("xdplb: possible CPUs: %w", err)
	}
	if err := m.Put(key, make([]xdplbCounters, n)); err != nil {
		return fmt.Errorf("xdplb: reset counters: %w", err)
	}
	return nil
}

// DeleteService removes a service; its traffic is passed to the local
// stack from then on. Deleting an absent service is not an error.
func (o *Objects) DeleteService(vip netip.Addr, port uint16) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.check(); err != nil {
		return err
	}
	ap := netip.AddrPortFrom(vip.Unmap(), port)
	st := o.services[ap]
	if st == nil {
		return nil
	}
	if err := o.objs.NlbServices.Delete(serviceKey(ap.Addr(), ap.Port())); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("xdplb: delete service %s: %w", ap, err)
	}
	delete(o.services, ap)
	o.ids[st.id] = false
	base := st.id * uint32(o.opts.MaxBackends)
	for slot := range st.backends {
		if err := o.emptySlot(base + slot); err != nil {
			return fmt.Errorf("xdplb: service %s: empty backend slot %d: %w", ap, slot, err)
		}
	}
	return o.syncGuard()
}

// Stats reads the counters of every service (sorted by VIP and port; the
// backends in the order last given) and the events.
func (o *Objects) Stats() (Stats, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.check(); err != nil {
		return Stats{}, err
	}
	var st Stats
	for ap, s := range o.services {
		ss := ServiceStats{VIP: ap.Addr(), Port: ap.Port()}
		var err error
		if ss.Counters, err = o.counters(o.objs.NlbSvcStats, s.id); err != nil {
			return Stats{}, err
		}
		base := s.id * uint32(o.opts.MaxBackends)
		for _, a := range s.order {
			c, err := o.counters(o.objs.NlbBeStats, base+s.slots[a])
			if err != nil {
				return Stats{}, err
			}
			ss.Backends = append(ss.Backends, BackendStats{Addr: a, Counters: c})
		}
		st.Services = append(st.Services, ss)
	}
	slices.SortFunc(st.Services, func(a, b ServiceStats) int {
		return netip.AddrPortFrom(a.VIP, a.Port).Compare(netip.AddrPortFrom(b.VIP, b.Port))
	})
	var ev [evCount]uint64
	for i := range evCount {
		var perCPU []uint64
		if err := o.objs.NlbEvents.Lookup(i, &perCPU); err != nil {
			return Stats{}, fmt.Errorf("xdplb: read events: %w", err)
		}
		for _, v := range perCPU {
			ev[i] += v
		}
	}
	st.Events = Events{
		Malformed:     ev[evMalformed],
		Fragments:     ev[evFragment],
		Backup:        ev[evBackup],
		LoopGuard:     ev[evLoopGuard],
		Local:         ev[evLocal],
		NoBackend:     ev[evNoBackend],
		ICMPForwarded: ev[evICMPForwarded],
	}
	return st, nil
}

func (o *Objects) counters(m *ebpf.Map, key uint32) (Counters, error) {
	var perCPU []xdplbCounters
	if err := m.Lookup(key, &perCPU); err != nil {
		return Counters{}, fmt.Errorf("xdplb: read counters: %w", err)
	}
	var c Counters
	for _, v := range perCPU {
		c.Packets += v.Packets
		c.Bytes += v.Bytes
		c.NewFlows += v.NewFlows
		c.Rehashed += v.Rehashed
	}
	return c, nil
}

// Close frees the program and its maps (an attached program stays until
// its link is closed too). It may be called more than once.
func (o *Objects) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	o.closed = true
	aerr := o.addrs.Close()
	if err := errors.Join(o.objs.Close(), aerr); err != nil {
		return fmt.Errorf("xdplb: close: %w", err)
	}
	return nil
}

// htons returns the uint16 whose bytes in memory are p in network order.
func htons(p uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return binary.NativeEndian.Uint16(b[:])
}

// nativeWord returns the uint32 whose bytes in memory are b[0:4].
func nativeWord(b []byte) uint32 { return binary.NativeEndian.Uint32(b) }
