//go:build linux

package sklookup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// ProgramName is the kernel's name of nlb's sk_lookup program (the C
// function in sklookup.c). A netns link running a program of this name
// belongs to nlb: [Links] counts them and [Attach] replaces them.
const ProgramName = "nlb_sk_lookup"

// MaxVIPs is the capacity of the VIP map (MAX_VIPS in sklookup.c).
const MaxVIPs = 64

// selfNetNS names the namespace of the calling process.
const selfNetNS = "/proc/self/ns/net"

// Listener slots of the nlb_listeners SOCKMAP (SLOT_* in sklookup.c).
const (
	slotV4 uint32 = 0
	slotV6 uint32 = 1
)

// Counters of the nlb_stats map (STAT_* in sklookup.c).
const (
	statSteered uint32 = iota
	statNoListener
	statAssignFailed
	statCount
)

// ErrNotSupported is wrapped by the errors of [Supported] and [Attach] when
// the kernel lacks sk_lookup programs, BPF links or SOCKMAPs of listening
// sockets (Linux < 5.9), so that a caller can fall back to another method.
var ErrNotSupported = errors.New("sklookup: not supported by this kernel")

// Config says what to steer where.
type Config struct {
	// NetNS is the path of the network namespace to attach to, for
	// example /run/netns/NAME; empty means the namespace of the process.
	NetNS string
	// VIPs are the local addresses to steer, IPv4 or IPv6 (IPv4-mapped
	// IPv6 addresses count as IPv4). At most [MaxVIPs].
	VIPs []netip.Addr
	// Port is the local port to steer (the API port, 6443).
	Port uint16
	// Listeners are the listening TCP sockets that receive the steered
	// connections, typically one *net.TCPListener. They must be plain TCP,
	// not MPTCP (Go's default since 1.24: use
	// net.ListenConfig.SetMultipathTCP(false), as lb does). At most one AF_INET
	// and one AF_INET6 socket: IPv4 connections go to the AF_INET one or,
	// without it, to an AF_INET6 socket that is not IPV6_V6ONLY (Go's
	// ":port" listener); IPv6 connections go to the AF_INET6 one.
	Listeners []syscall.Conn
}

// Stats are the program's counters, summed over CPUs.
type Stats struct {
	// Steered counts connections assigned to a listener.
	Steered uint64
	// NoListener counts connections to a VIP:port for which no listener
	// of a suitable family was in the map; they went to the regular
	// lookup.
	NoListener uint64
	// AssignFailed counts connections bpf_sk_assign refused (for example
	// because another sk_lookup program had already chosen a socket).
	AssignFailed uint64
}

// Link is an attached sk_lookup program with its maps. Close it to detach.
type Link struct {
	mu     sync.Mutex
	objs   sklookupObjects
	link   *link.NetNsLink
	id     uint32
	closed bool
}

// vipKey is the key of the nlb_vips map (struct vip_key in sklookup.c).
type vipKey = sklookupVipKey

// Supported reports whether the kernel can run sk_lookup programs: nil, or
// an error wrapping [ErrNotSupported] (or another error if the probe itself
// failed, for example for lack of privileges).
func Supported() error {
	if err := features.HaveProgramType(ebpf.SkLookup); err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("%w: %w", ErrNotSupported, err)
		}
		return fmt.Errorf("sklookup: probe: %w", err)
	}
	return nil
}

// Attach loads the program, fills its maps from cfg and attaches it to the
// network namespace cfg.NetNS. Once its own link is in place it detaches
// every other link of [ProgramName] in that namespace (left by an earlier
// Attach of this or another process), so exactly one remains.
//
// On kernels before 5.11, where BPF memory is charged to RLIMIT_MEMLOCK,
// Attach raises that limit of the process (rlimit.RemoveMemlock).
func Attach(cfg Config) (*Link, error) {
	keys, err := vipKeys(cfg.VIPs, cfg.Port)
	if err != nil {
		return nil, err
	}
	slots, err := listenerSlots(cfg.Listeners, keys)
	if err != nil {
		return nil, err
	}
	if err := Supported(); err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("sklookup: remove memlock limit: %w", err)
	}
	l := &Link{}
	if err := loadSklookupObjects(&l.objs, nil); err != nil {
		return nil, notSupported("load", err)
	}
	if err := l.fill(keys, slots); err != nil {
		l.objs.Close()
		return nil, err
	}
	path := nsPath(cfg.NetNS)
	ns, err := os.Open(path)
	if err != nil {
		l.objs.Close()
		return nil, fmt.Errorf("sklookup: open netns: %w", err)
	}
	l.link, err = link.AttachNetNs(int(ns.Fd()), l.objs.NlbSkLookup)
	ns.Close()
	if err != nil {
		l.objs.Close()
		return nil, notSupported("attach", err)
	}
	info, err := l.link.Info()
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("sklookup: link info: %w", err)
	}
	l.id = uint32(info.ID)
	if _, err := detach(path, l.id); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// fill writes the VIP keys and the listeners into the maps.
func (l *Link) fill(keys []vipKey, slots map[uint32]syscall.Conn) error {
	for _, k := range keys {
		if err := l.objs.NlbVips.Put(k, uint32(1)); err != nil {
			return fmt.Errorf("sklookup: add VIP to map: %w", err)
		}
	}
	for slot, c := range slots {
		rc, err := c.SyscallConn()
		if err != nil {
			return fmt.Errorf("sklookup: listener: %w", err)
		}
		var perr error
		if err := rc.Control(func(fd uintptr) {
			// The SOCKMAP takes a reference to the socket itself, not
			// to the descriptor; closing the listener removes it.
			perr = l.objs.NlbListeners.Put(slot, uint64(fd))
		}); err != nil {
			return fmt.Errorf("sklookup: listener: %w", err)
		}
		if perr != nil {
			return notSupported("add listener to SOCKMAP", perr)
		}
	}
	return nil
}

// ID returns the kernel's ID of the link (as bpftool link shows it).
func (l *Link) ID() uint32 { return l.id }

// Stats reads the program's counters.
func (l *Link) Stats() (Stats, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return Stats{}, errors.New("sklookup: stats: link closed")
	}
	var sums [statCount]uint64
	for i := range statCount {
		var perCPU []uint64
		if err := l.objs.NlbStats.Lookup(i, &perCPU); err != nil {
			return Stats{}, fmt.Errorf("sklookup: stats: %w", err)
		}
		for _, v := range perCPU {
			sums[i] += v
		}
	}
	return Stats{
		Steered:      sums[statSteered],
		NoListener:   sums[statNoListener],
		AssignFailed: sums[statAssignFailed],
	}, nil
}

// Close detaches the program and frees it and its maps. It may be called
// more than once.
func (l *Link) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	if l.link != nil {
		if err := l.link.Close(); err != nil {
			errs = append(errs, fmt.Errorf("sklookup: close link: %w", err))
		}
	}
	if err := l.objs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("sklookup: close objects: %w", err))
	}
	return errors.Join(errs...)
}

// Links returns the IDs of the links of [ProgramName] attached to the
// network namespace at path (empty: the process's own). It needs the
// privilege to open BPF objects by ID (CAP_SYS_ADMIN).
func Links(netns string) ([]uint32, error) {
	var ids []uint32
	err := eachLink(nsPath(netns), func(id uint32, _ link.Link) error {
		ids = append(ids, id)
		return nil
	})
	return ids, err
}

// DetachAll detaches every link of [ProgramName] from the network namespace
// at path (empty: the process's own), whoever holds it, and returns how
// many it detached. A process holding such a link keeps a dead descriptor.
func DetachAll(netns string) (int, error) {
	return detach(nsPath(netns), 0)
}

// detach detaches the links of ProgramName in the namespace at path except
// the one whose ID is keep (0: none).
func detach(path string, keep uint32) (int, error) {
	n := 0
	err := eachLink(path, func(id uint32, l link.Link) error {
		if id == keep {
			return nil
		}
		if err := l.Detach(); err != nil {
			return fmt.Errorf("sklookup: detach link %d: %w", id, err)
		}
		n++
		return nil
	})
	return n, err
}

// eachLink calls fn for every netns link in the namespace at path whose
// program is ProgramName, with the link open.
func eachLink(path string, fn func(id uint32, l link.Link) error) error {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fmt.Errorf("sklookup: netns %s: %w", path, err)
	}
	it := new(link.Iterator)
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil || info.Type != link.NetNsType {
			continue // unknown or vanished link types are not ours
		}
		ns := info.NetNs()
		if ns == nil || uint64(ns.NetnsInode) != st.Ino || uint32(ns.AttachType) != uint32(ebpf.AttachSkLookup) {
			continue
		}
		name, err := programName(info.Program)
		if err != nil || name != ProgramName {
			continue
		}
		if err := fn(uint32(info.ID), it.Link); err != nil {
			return err
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("sklookup: list links: %w", err)
	}
	return nil
}

func programName(id ebpf.ProgramID) (string, error) {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return "", err
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return "", err
	}
	return info.Name, nil
}

// vipKeys validates the VIPs and port and turns them into map keys.
func vipKeys(vips []netip.Addr, port uint16) ([]vipKey, error) {
	if port == 0 {
		return nil, errors.New("sklookup: port 0")
	}
	if len(vips) == 0 {
		return nil, errors.New("sklookup: no VIPs")
	}
	if len(vips) > MaxVIPs {
		return nil, fmt.Errorf("sklookup: %d VIPs, at most %d", len(vips), MaxVIPs)
	}
	seen := make(map[netip.Addr]bool, len(vips))
	keys := make([]vipKey, 0, len(vips))
	for _, a := range vips {
		a = a.Unmap()
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.Zone() != "" {
			return nil, fmt.Errorf("sklookup: invalid VIP %q", a)
		}
		if seen[a] {
			continue
		}
		seen[a] = true
		keys = append(keys, keyOf(a, port))
	}
	return keys, nil
}

// keyOf builds the map key of a VIP: the address words are in network byte
// order in memory, as in struct bpf_sk_lookup, so they are copied byte by
// byte in native order.
func keyOf(a netip.Addr, port uint16) vipKey {
	k := vipKey{Port: uint32(port)}
	if a.Is4() {
		k.Family = unix.AF_INET
		b := a.As4()
		k.Addr[0] = nativeWord(b[:])
		return k
	}
	k.Family = unix.AF_INET6
	b := a.As16()
	for i := range k.Addr {
		k.Addr[i] = nativeWord(b[4*i : 4*i+4])
	}
	return k
}

// nativeWord returns the uint32 whose in-memory bytes are b[0:4].
func nativeWord(b []byte) uint32 { return binary.NativeEndian.Uint32(b) }

// listenerSlots sorts the listeners into the SOCKMAP slots and checks that
// every VIP family has a listener that can take it.
func listenerSlots(ls []syscall.Conn, keys []vipKey) (map[uint32]syscall.Conn, error) {
	if len(ls) == 0 {
		return nil, errors.New("sklookup: no listeners")
	}
	slots := make(map[uint32]syscall.Conn, 2)
	dualStack := false
	for i, c := range ls {
		if c == nil {
			return nil, fmt.Errorf("sklookup: listener %d is nil", i)
		}
		family, v6only, err := listenerInfo(c)
		if err != nil {
			return nil, fmt.Errorf("sklookup: listener %d: %w", i, err)
		}
		slot := slotV4
		if family == unix.AF_INET6 {
			slot = slotV6
			dualStack = !v6only
		}
		if slots[slot] != nil {
			return nil, fmt.Errorf("sklookup: listener %d: a second %s listener", i, familyName(family))
		}
		slots[slot] = c
	}
	for _, k := range keys {
		switch {
		case k.Family == unix.AF_INET && slots[slotV4] == nil && !dualStack:
			return nil, errors.New("sklookup: IPv4 VIPs but no listener accepts IPv4 (need AF_INET, or AF_INET6 without IPV6_V6ONLY)")
		case k.Family == unix.AF_INET6 && slots[slotV6] == nil:
			return nil, errors.New("sklookup: IPv6 VIPs but no AF_INET6 listener")
		}
	}
	return slots, nil
}

// listenerInfo checks that c is a listening TCP socket and returns its
// family and, for AF_INET6, whether it is IPV6_V6ONLY.
func listenerInfo(c syscall.Conn) (family int, v6only bool, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false, err
	}
	var serr error
	cerr := rc.Control(func(fd uintptr) {
		get := func(level, opt int) int {
			if serr != nil {
				return 0
			}
			var v int
			v, serr = unix.GetsockoptInt(int(fd), level, opt)
			return v
		}
		family = get(unix.SOL_SOCKET, unix.SO_DOMAIN)
		typ := get(unix.SOL_SOCKET, unix.SO_TYPE)
		proto := get(unix.SOL_SOCKET, unix.SO_PROTOCOL)
		listening := get(unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
		if serr != nil {
			return
		}
		if proto == unix.IPPROTO_MPTCP {
			// Go listens with MPTCP by default since 1.24; a SOCKMAP
			// takes TCP sockets only (sock_map_sk_is_suitable).
			serr = errors.New("an MPTCP socket cannot be steered to; listen with net.ListenConfig.SetMultipathTCP(false)")
			return
		}
		if (family != unix.AF_INET && family != unix.AF_INET6) || typ != unix.SOCK_STREAM || proto != unix.IPPROTO_TCP {
			serr = fmt.Errorf("not a TCP socket (family %d, type %d, protocol %d)", family, typ, proto)
			return
		}
		if listening != 1 {
			serr = errors.New("not listening")
			return
		}
		if family == unix.AF_INET6 {
			v6only = get(unix.IPPROTO_IPV6, unix.IPV6_V6ONLY) == 1
		}
	})
	if cerr != nil {
		return 0, false, cerr
	}
	return family, v6only, serr
}

func familyName(f int) string {
	if f == unix.AF_INET6 {
		return "AF_INET6"
	}
	return "AF_INET"
}

func nsPath(p string) string {
	if p == "" {
		return selfNetNS
	}
	return p
}

// notSupported wraps err with ErrNotSupported as well when cilium/ebpf says
// the kernel lacks a feature.
func notSupported(op string, err error) error {
	if errors.Is(err, ebpf.ErrNotSupported) {
		return fmt.Errorf("%w: %s: %w", ErrNotSupported, op, err)
	}
	return fmt.Errorf("sklookup: %s: %w", op, err)
}
