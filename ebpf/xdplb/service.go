package xdplb

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// Defaults and bounds of [Options].
const (
	// DefaultFlowTableSize is the flow table's default capacity: a large
	// cluster (5,000 nodes, the Kubernetes scalability limit) with about
	// 25 long-lived API server connections per node (kubelet,
	// kube-proxy, the CNI, CSI and other node agents) holds about 125,000
	// flows. The table replaces its least recently used flows: an evicted
	// flow is re-hashed to the same backend while the backends are
	// unchanged, so its size only matters across backend changes. It
	// costs 54 bytes per flow, shared by the CPUs and preallocated: about
	// 7 MiB.
	DefaultFlowTableSize = 1 << 17
	// DefaultMaxServices is the default number of VIP:port services.
	DefaultMaxServices = 16
	// DefaultMaxBackends is the default number of backends per service:
	// the most a table of DefaultMaxTableSize balances within 1 %
	// (M > 100·N).
	DefaultMaxBackends = 163
	// DefaultMaxTableSize is the default largest Maglev table M: Cilium's
	// default 16381, prime, enough for M > 100·N with N ≤ 163 backends
	// (Maglev §3.4: at most about 1 % imbalance).
	DefaultMaxTableSize = 16381

	maxFlowTableSize = 1 << 24
	maxServices      = 1024
	maxBackends      = 4096
	maxTableSize     = 131071 // Cilium's largest maglev.tableSize
	maxMaglevEntries = 1 << 26
	maxProblems      = 10
)

// NoBackend is a [Service.Table] entry that names no backend (lb/maglev's
// NoBackend: no backend is healthy): such flows go to the local stack.
const NoBackend = ^uint32(0)

// Options are the sizes fixed when the program is loaded. Zero fields take
// the defaults.
type Options struct {
	// FlowTableSize is the number of flows the flow table holds, rounded
	// up to a multiple of its sets' 4 ways; within a set, the least
	// recently used flow is replaced. Default [DefaultFlowTableSize].
	FlowTableSize int
	// MaxServices bounds the number of VIP:port services.
	// Default [DefaultMaxServices].
	MaxServices int
	// MaxBackends bounds the backends of one service, counting the ones
	// kept for their established flows only. Default [DefaultMaxBackends].
	MaxBackends int
	// MaxTableSize bounds the length of a service's Maglev table.
	// Default [DefaultMaxTableSize].
	MaxTableSize int
	// HashSeed is the initval of the flow hash ([FlowHash]). Every node
	// must use the same, so that a new Master sends established flows to
	// the backends they had.
	HashSeed uint32
}

// withDefaults fills the zero fields.
func (o Options) withDefaults() Options {
	if o.FlowTableSize == 0 {
		o.FlowTableSize = DefaultFlowTableSize
	}
	if o.MaxServices == 0 {
		o.MaxServices = DefaultMaxServices
	}
	if o.MaxBackends == 0 {
		o.MaxBackends = DefaultMaxBackends
	}
	if o.MaxTableSize == 0 {
		o.MaxTableSize = DefaultMaxTableSize
	}
	return o
}

// flowWays is the flows per set of the flow table (FLOW_WAYS in xdplb.c).
const flowWays = 4

// flowSets is the number of sets of the flow table.
func (o Options) flowSets() uint32 {
	return uint32((o.FlowTableSize + flowWays - 1) / flowWays)
}

// validate reports every field out of bounds (after withDefaults).
func (o Options) validate() error {
	var errs []error
	check := func(name string, v, hi int) {
		if v < 1 || v > hi {
			errs = append(errs, fmt.Errorf("xdplb: Options.%s %d out of range 1..%d", name, v, hi))
		}
	}
	check("FlowTableSize", o.FlowTableSize, maxFlowTableSize)
	check("MaxServices", o.MaxServices, maxServices)
	check("MaxBackends", o.MaxBackends, maxBackends)
	check("MaxTableSize", o.MaxTableSize, maxTableSize)
	if errs == nil && o.MaxServices*2*o.MaxTableSize > maxMaglevEntries {
		errs = append(errs, fmt.Errorf("xdplb: Options.MaxServices × 2 × Options.MaxTableSize = %d Maglev entries, at most %d",
			o.MaxServices*2*o.MaxTableSize, maxMaglevEntries))
	}
	return errors.Join(errs...)
}

// Service is a VIP:port whose TCP traffic the program balances.
type Service struct {
	// VIP is the virtual address, IPv4 or IPv6 (an IPv4-mapped IPv6
	// address counts as IPv4).
	VIP netip.Addr
	// Port is the TCP port. Direct server return keeps it: the backends
	// listen on the same port.
	Port uint16
	// Persistent hashes the client address alone, so that every
	// connection of a client goes to the same backend while the backends
	// are unchanged (IPVS persistence without its timeout).
	Persistent bool
	// Backends are the servers. A backend's slot (its counters, and the
	// flows pinned to it) is kept from one SetService to the next as long
	// as its Addr stays; a backend that is in no Table entry keeps its
	// established flows (draining). At most Options.MaxBackends.
	Backends []Backend
	// Table is the Maglev lookup table: indices into Backends, or
	// [NoBackend] (lb/maglev builds it). The program sends a new flow to
	// Backends[Table[FlowHash(...) % len(Table)]]. Empty, or a NoBackend
	// entry: the packet is passed to the local stack. At most
	// Options.MaxTableSize entries.
	Table []uint32
}

// Backend is a real server on the same layer-2 segment.
type Backend struct {
	// Addr identifies the backend (its address; the program does not use
	// it: the packet keeps the VIP as destination).
	Addr netip.Addr
	// MAC is the backend's Ethernet address: the destination of the
	// frames sent to it. It is also in the loop guard: a frame from this
	// MAC to a VIP is never forwarded.
	MAC net.HardwareAddr
	// Local says the backend is this node: its flows go up the local
	// stack (XDP_PASS).
	Local bool
}

// validate reports every problem of s (at most maxProblems) given the
// loaded sizes.
func (s Service) validate(o Options) error {
	var errs []error
	add := func(format string, args ...any) {
		name := net.JoinHostPort(s.VIP.String(), strconv.Itoa(int(s.Port)))
		errs = append(errs, fmt.Errorf("xdplb: service %s: "+format, append([]any{name}, args...)...))
	}
	vip := s.VIP.Unmap()
	if !vip.IsValid() || vip.IsUnspecified() || vip.IsMulticast() || vip.Zone() != "" {
		add("invalid VIP %q", s.VIP)
	}
	if s.Port == 0 {
		add("port 0")
	}
	if len(s.Backends) > o.MaxBackends {
		add("%d backends, at most %d (Options.MaxBackends)", len(s.Backends), o.MaxBackends)
	}
	seen := make(map[netip.Addr]int, len(s.Backends))
	for i, b := range s.Backends {
		if len(errs) >= maxProblems {
			break
		}
		a := b.Addr.Unmap()
		if !a.IsValid() {
			add("Backends[%d]: no Addr", i)
		} else if j, dup := seen[a]; dup {
			add("Backends[%d]: Addr %s is also Backends[%d]'s", i, a, j)
		} else {
			seen[a] = i
		}
		if err := checkMAC(b.MAC); err != nil {
			add("Backends[%d]: %v", i, err)
		}
	}
	if len(s.Table) > o.MaxTableSize {
		add("Maglev table of %d entries, at most %d (Options.MaxTableSize)", len(s.Table), o.MaxTableSize)
	}
	for i, v := range s.Table {
		if len(errs) >= maxProblems {
			break
		}
		if v != NoBackend && int(v) >= len(s.Backends) {
			add("Table[%d] = %d, but there are %d backends", i, v, len(s.Backends))
		}
	}
	if len(errs) >= maxProblems {
		errs = append(errs[:maxProblems], errors.New("xdplb: (more problems not listed)"))
	}
	return errors.Join(errs...)
}

// checkMAC accepts a unicast, non-zero Ethernet address.
func checkMAC(m net.HardwareAddr) error {
	if len(m) != 6 {
		return fmt.Errorf("MAC %q is not a 6-byte Ethernet address", m)
	}
	if m[0]&1 != 0 {
		return fmt.Errorf("MAC %s is a group address", m)
	}
	if [6]byte(m) == ([6]byte{}) {
		return errors.New("MAC is zero")
	}
	return nil
}

// assignSlots gives every backend a slot in [0, limit): the one its Addr
// had in prev, else the lowest free one. It returns the slots in the order
// of bs and the new Addr → slot map. bs has been validated (unique Addrs,
// len(bs) <= limit).
func assignSlots(prev map[netip.Addr]uint32, bs []Backend, limit int) ([]uint32, map[netip.Addr]uint32) {
	next := make(map[netip.Addr]uint32, len(bs))
	used := make([]bool, limit)
	slots := make([]uint32, len(bs))
	for i, b := range bs {
		a := b.Addr.Unmap()
		if s, ok := prev[a]; ok && int(s) < limit {
			slots[i] = s
			next[a] = s
			used[s] = true
		}
	}
	free := 0
	for i, b := range bs {
		a := b.Addr.Unmap()
		if _, ok := next[a]; ok {
			continue
		}
		for used[free] {
			free++
		}
		slots[i] = uint32(free)
		next[a] = uint32(free)
		used[free] = true
	}
	return slots, next
}
