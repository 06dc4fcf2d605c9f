//go:build linux

package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Limits of a lab.
const (
	// MaxHosts is the largest number of hosts a lab may have; it keeps the
	// host addresses within .11-.25 and the interface names within 15 bytes.
	MaxHosts = 15
	// MaxSegments is the number of documentation subnets there are.
	MaxSegments = 3
)

// Timeouts bounding the waits in this package.
const (
	cmdTimeout     = 10 * time.Second
	linkLocalWait  = 3 * time.Second
	linkLocalPolls = 150
)

// segment returns the documentation prefixes of bridged segment s
// (RFC 5737 §3, RFC 3849): the first three bytes of its IPv4 /24 and the
// first eight of its IPv6 /64.
func segment(s int) (v4 [3]byte, v6 [8]byte) {
	switch s {
	case 1:
		return [3]byte{198, 51, 100}, [8]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0}
	case 2:
		return [3]byte{203, 0, 113}, [8]byte{0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0}
	default:
		return [3]byte{192, 0, 2}, [8]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0}
	}
}

// Options shape a lab.
type Options struct {
	// Hosts is the number of host namespaces, 1 to MaxHosts; 0 means 2.
	Hosts int
	// Segments is the number of bridged segments, 1 to MaxSegments; 0
	// means 1. Every host has one interface on every segment.
	Segments int
}

// Lab is a set of network namespaces joined by bridges: one switch
// namespace with a bridge per segment, and the hosts. Create it with [New]
// or [NewT] and remove it with [Lab.Close].
type Lab struct {
	// ID is the unique prefix of every name in the lab: "nlb" followed by
	// six hex digits.
	ID string
	// Switch is the name of the namespace holding the bridges.
	Switch string
	// Hosts are the host namespaces, Hosts[0] being "h1".
	Hosts []*Host

	mu      sync.Mutex
	closed  bool
	created []string // namespaces created so far, in order
	swNS    netns.NsHandle
	sw      *netlink.Handle
}

// Link is one interface of a host: a veth whose peer is a port of the
// segment's bridge.
type Link struct {
	// Segment is the index of the bridged segment, 0-based.
	Segment int
	// IfName is the interface name inside the host's namespace.
	IfName string
	// Index is the interface index inside the host's namespace.
	Index int
	// MAC is the interface's hardware address.
	MAC net.HardwareAddr
	// Addr4 is the IPv4 address and prefix (a /24).
	Addr4 netip.Prefix
	// Addr6 is the global IPv6 address and prefix (a /64), added nodad.
	Addr6 netip.Prefix
	// LinkLocal is the interface's fe80::/64 address.
	LinkLocal netip.Addr
	// Port is the name of the bridge-side veth in the switch namespace.
	Port string
}

// Host is one host namespace. The IfName, Index, MAC, Addr4, Addr6 and
// LinkLocal fields repeat those of Links[0], the interface on segment 0.
type Host struct {
	// Name is "h1", "h2", ...
	Name string
	// NS is the name of the network namespace (as in `ip netns list`).
	NS string
	// IfName is the name of the interface on segment 0.
	IfName string
	// Index is the index of the interface on segment 0.
	Index int
	// MAC is the hardware address of the interface on segment 0.
	MAC net.HardwareAddr
	// Addr4 is the IPv4 address on segment 0 (192.0.2.1x).
	Addr4 netip.Addr
	// Addr6 is the global IPv6 address on segment 0 (2001:db8::1x).
	Addr6 netip.Addr
	// LinkLocal is the IPv6 link-local address on segment 0.
	LinkLocal netip.Addr
	// Links are the host's interfaces, one per segment.
	Links []Link

	lab *Lab
	ns  netns.NsHandle
	nl  *netlink.Handle
}

// New creates a lab. name is a short label that makes the namespace names
// recognisable (for example the test's name); it is sanitised and
// truncated. On error everything created so far is removed.
func New(name string, opts Options) (*Lab, error) {
	if opts.Hosts == 0 {
		opts.Hosts = 2
	}
	if opts.Segments == 0 {
		opts.Segments = 1
	}
	if opts.Hosts < 1 || opts.Hosts > MaxHosts {
		return nil, fmt.Errorf("netlab: %d hosts: want 1 to %d", opts.Hosts, MaxHosts)
	}
	if opts.Segments < 1 || opts.Segments > MaxSegments {
		return nil, fmt.Errorf("netlab: %d segments: want 1 to %d", opts.Segments, MaxSegments)
	}
	var id [3]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("netlab: random name: %w", err)
	}
	l := &Lab{ID: "nlb" + hex.EncodeToString(id[:]), swNS: netns.None()}
	prefix := l.ID
	if label := sanitize(name); label != "" {
		prefix += "-" + label
	}
	if err := l.build(prefix, opts); err != nil {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	return l, nil
}

// NewT creates a lab for a test and removes it when the test ends, even if
// it fails. It calls [Require] first, so a test without root skips. An empty
// name uses the test's name.
func NewT(t testing.TB, name string, opts Options) *Lab {
	t.Helper()
	Require(t)
	if name == "" {
		name = t.Name()
	}
	l, err := New(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("netlab: close: %v", err)
		}
	})
	return l
}

// sanitize keeps lower-case letters and digits of s, at most 12 of them.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if b.Len() == 12 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func (l *Lab) build(prefix string, opts Options) error {
	l.Switch = prefix + "-sw"
	if err := l.addNS(l.Switch); err != nil {
		return err
	}
	var err error
	if l.swNS, err = netns.GetFromName(l.Switch); err != nil {
		return fmt.Errorf("netlab: open namespace %s: %w", l.Switch, err)
	}
	if l.sw, err = netlink.NewHandleAt(l.swNS); err != nil {
		return fmt.Errorf("netlab: netlink in %s: %w", l.Switch, err)
	}
	// The switch takes no part in IPv6: no link-local addresses, MLD or
	// router solicitations from the bridge in captures.
	// A switch forwards frames and nothing else: where br_netfilter is
	// loaded (a machine running Docker or Kubernetes), bridged frames
	// would go through the switch namespace's iptables hooks too, a cost
	// per frame and per hop that no wire has.
	if err := runIn(l.swNS, func() error {
		kv := map[string]string{
			"net/ipv6/conf/all/disable_ipv6":     "1",
			"net/ipv6/conf/default/disable_ipv6": "1",
		}
		if _, err := os.Stat("/proc/sys/net/bridge"); err == nil {
			for _, k := range []string{"iptables", "ip6tables", "arptables"} {
				kv["net/bridge/bridge-nf-call-"+k] = "0"
			}
		}
		return writeSysctls(kv)
	}); err != nil {
		return fmt.Errorf("netlab: %s: %w", l.Switch, err)
	}
	if err := linkUpByName(l.sw, "lo"); err != nil {
		return fmt.Errorf("netlab: %s: %w", l.Switch, err)
	}
	bridges := make([]netlink.Link, opts.Segments)
	for s := range bridges {
		off := false
		br := &netlink.Bridge{
			LinkAttrs: netlink.LinkAttrs{Name: l.bridgeName(s)},
			// Flood all multicast: no querier runs in the lab.
			MulticastSnooping: &off,
		}
		if err := l.sw.LinkAdd(br); err != nil {
			return fmt.Errorf("netlab: add bridge %s: %w", br.Name, err)
		}
		link, err := l.sw.LinkByName(br.Name)
		if err != nil {
			return fmt.Errorf("netlab: bridge %s: %w", br.Name, err)
		}
		if err := l.sw.LinkSetUp(link); err != nil {
			return fmt.Errorf("netlab: bridge %s up: %w", br.Name, err)
		}
		bridges[s] = link
	}
	for i := 1; i <= opts.Hosts; i++ {
		h, err := l.addHost(prefix, i, bridges)
		if h != nil {
			l.Hosts = append(l.Hosts, h)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) addHost(prefix string, i int, bridges []netlink.Link) (*Host, error) {
	h := &Host{Name: fmt.Sprintf("h%d", i), lab: l, ns: netns.None()}
	h.NS = prefix + "-" + h.Name
	if err := l.addNS(h.NS); err != nil {
		return nil, err
	}
	var err error
	if h.ns, err = netns.GetFromName(h.NS); err != nil {
		return h, fmt.Errorf("netlab: open namespace %s: %w", h.NS, err)
	}
	if h.nl, err = netlink.NewHandleAt(h.ns); err != nil {
		return h, fmt.Errorf("netlab: netlink in %s: %w", h.NS, err)
	}
	// Before any interface exists, so that "default" applies to them:
	// no DAD (addresses are usable at once, never tentative), and IPv6
	// addresses survive a link going down.
	if err := h.Run(func() error {
		return writeSysctls(map[string]string{
			"net/ipv6/conf/all/accept_dad":            "0",
			"net/ipv6/conf/default/accept_dad":        "0",
			"net/ipv6/conf/all/keep_addr_on_down":     "1",
			"net/ipv6/conf/default/keep_addr_on_down": "1",
		})
	}); err != nil {
		return h, fmt.Errorf("netlab: %s: %w", h.NS, err)
	}
	if err := linkUpByName(h.nl, "lo"); err != nil {
		return h, fmt.Errorf("netlab: %s: %w", h.NS, err)
	}
	for s, br := range bridges {
		ln, err := l.addLink(h, i, s, br)
		if err != nil {
			return h, err
		}
		h.Links = append(h.Links, ln)
	}
	first := h.Links[0]
	h.IfName, h.Index, h.MAC = first.IfName, first.Index, first.MAC
	h.Addr4, h.Addr6, h.LinkLocal = first.Addr4.Addr(), first.Addr6.Addr(), first.LinkLocal
	return h, nil
}

func (l *Lab) addLink(h *Host, i, s int, br netlink.Link) (Link, error) {
	ln := Link{
		Segment: s,
		IfName:  fmt.Sprintf("%sh%xe%d", l.ID, i, s),
		Port:    fmt.Sprintf("%sh%xp%d", l.ID, i, s),
	}
	v4, v6 := segment(s)
	ln.Addr4 = netip.PrefixFrom(netip.AddrFrom4([4]byte{v4[0], v4[1], v4[2], byte(10 + i)}), 24)
	var a16 [16]byte
	copy(a16[:], v6[:])
	a16[15] = byte(0x10 + i)
	ln.Addr6 = netip.PrefixFrom(netip.AddrFrom16(a16), 64)

	// Both ends are created directly in lab namespaces: the peer goes
	// straight into the host namespace and never appears in the caller's.
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: ln.Port, MasterIndex: br.Attrs().Index},
		PeerName:      ln.IfName,
		PeerNamespace: netlink.NsFd(int(h.ns)),
	}
	if err := l.sw.LinkAdd(veth); err != nil {
		return ln, fmt.Errorf("netlab: add veth %s/%s: %w", ln.Port, ln.IfName, err)
	}
	if err := linkUpByName(l.sw, ln.Port); err != nil {
		return ln, fmt.Errorf("netlab: %s: %w", l.Switch, err)
	}
	link, err := h.nl.LinkByName(ln.IfName)
	if err != nil {
		return ln, fmt.Errorf("netlab: %s: link %s: %w", h.NS, ln.IfName, err)
	}
	ln.Index = link.Attrs().Index
	ln.MAC = link.Attrs().HardwareAddr
	for _, a := range []*netlink.Addr{
		{IPNet: prefixNet(ln.Addr4)},
		{IPNet: prefixNet(ln.Addr6), Flags: unix.IFA_F_NODAD},
	} {
		if err := h.nl.AddrAdd(link, a); err != nil {
			return ln, fmt.Errorf("netlab: %s: add %s to %s: %w", h.NS, a.IPNet, ln.IfName, err)
		}
	}
	if err := h.nl.LinkSetUp(link); err != nil {
		return ln, fmt.Errorf("netlab: %s: %s up: %w", h.NS, ln.IfName, err)
	}
	if ln.LinkLocal, err = waitLinkLocal(h.nl, link); err != nil {
		return ln, fmt.Errorf("netlab: %s: %s: %w", h.NS, ln.IfName, err)
	}
	return ln, nil
}

// waitLinkLocal waits, bounded in time and polls, for the kernel to give the
// link its fe80::/64 address, which happens once the link has a carrier.
func waitLinkLocal(nl *netlink.Handle, link netlink.Link) (netip.Addr, error) {
	deadline := time.Now().Add(linkLocalWait)
	for range linkLocalPolls {
		addrs, err := nl.AddrList(link, netlink.FAMILY_V6)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("list addresses: %w", err)
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if ok && ip.IsLinkLocalUnicast() && a.Flags&unix.IFA_F_TENTATIVE == 0 {
				return ip.Unmap(), nil
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(linkLocalWait / linkLocalPolls)
	}
	return netip.Addr{}, fmt.Errorf("no usable link-local address after %v", linkLocalWait)
}

func (l *Lab) bridgeName(segment int) string { return fmt.Sprintf("%sbr%d", l.ID, segment) }

// addNS creates a named namespace with ip-netns(8), which also prepares the
// /run/netns mount the way `ip netns exec` expects.
func (l *Lab) addNS(name string) error {
	if err := runCmd("ip", "netns", "add", name); err != nil {
		return err
	}
	l.mu.Lock()
	l.created = append(l.created, name)
	l.mu.Unlock()
	return nil
}

// Close removes the lab: it kills the processes still running in its
// namespaces and deletes the namespaces, which destroys their interfaces.
// It may be called more than once and on a partially built lab.
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	for _, h := range l.Hosts {
		if h.nl != nil {
			h.nl.Close()
		}
		if h.ns.IsOpen() {
			h.ns.Close()
		}
	}
	if l.sw != nil {
		l.sw.Close()
	}
	if l.swNS.IsOpen() {
		l.swNS.Close()
	}
	var errs []error
	for i := len(l.created) - 1; i >= 0; i-- {
		name := l.created[i]
		killNS(name)
		if err := runCmd("ip", "netns", "delete", name); err != nil {
			if _, serr := os.Stat(filepath.Join("/run/netns", name)); !os.IsNotExist(serr) {
				errs = append(errs, err)
			}
		}
	}
	l.created = nil
	return errors.Join(errs...)
}

// killNS kills the processes running in the named namespace (left over by
// [Host.Exec] when a test failed), each by its pid.
func killNS(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "pids", name).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// VIP4 returns a free IPv4 address on segment 0 for tests to use as a
// virtual address: 192.0.2.(100+n)/24, n in 0-99.
func (l *Lab) VIP4(n int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + n%100)}), 24)
}

// VIP6 returns a free IPv6 address on segment 0 for tests to use as a
// virtual address: 2001:db8::1:n/64, n in 0-255.
func (l *Lab) VIP6(n int) netip.Prefix {
	a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 13: 1, 15: byte(n)}
	return netip.PrefixFrom(netip.AddrFrom16(a), 64)
}

// Exec returns a command that runs name with args in the host's namespace
// (through `ip netns exec`). The caller starts and waits for it; processes
// still running when the lab closes are killed.
func (h *Host) Exec(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// Command runs name with args in the host's namespace and waits for it,
// bounded by ctx and cmdTimeout; a failure carries the host, the command
// line and what it printed.
func (h *Host) Command(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	out, err := h.Exec(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %s %s: %w: %s", h.Name, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Run calls fn on a locked OS thread switched into the host's namespace.
// Sockets fn opens belong to the namespace and may be used after Run
// returns, from any goroutine; goroutines fn starts do not run in the
// namespace. If the thread cannot be switched back it is discarded.
func (h *Host) Run(fn func() error) error {
	return runIn(h.ns, fn)
}

// Dialer returns a dial function (an http.Transport's DialContext) whose
// connections are opened inside the host's namespace, each connect
// bounded by timeout: the labs' one way to reach a server that listens in
// a namespace (an admin server on 127.0.0.1, an API server) from the test
// process.
func (h *Host) Dialer(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := h.Run(func() error {
			var err error
			c, err = (&net.Dialer{Timeout: timeout}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// Listen opens a listener inside the host's namespace (a stand-in server
// on the host's address, or on its own loopback).
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := h.Run(func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// HTTPClient returns a client whose requests go out of the host's
// namespace, each on its own connection (no keep-alive), each bounded by
// timeout: for the admin servers of the daemons a lab runs.
func (h *Host) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DialContext: h.Dialer(timeout), DisableKeepAlives: true},
	}
}

func runIn(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread stays locked unless it is back in its original
		// namespace; a goroutine that exits locked takes its thread down.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("netlab: current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("netlab: enter namespace: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

// LinkDown cuts the host off its segments like a pulled cable: the
// bridge-side veths go down and the host's interfaces lose carrier but keep
// their addresses.
func (h *Host) LinkDown() error {
	return h.setPorts(func(link netlink.Link) error { return h.lab.sw.LinkSetDown(link) })
}

// LinkUp undoes [Host.LinkDown].
func (h *Host) LinkUp() error {
	return h.setPorts(func(link netlink.Link) error { return h.lab.sw.LinkSetUp(link) })
}

// SetMTU sets the MTU of the host's interfaces and of their bridge-side
// veths (a bridge forwards no frame larger than its egress port's MTU),
// for tests of frames larger than a page.
func (h *Host) SetMTU(mtu int) error {
	err := h.Run(func() error {
		for _, ln := range h.Links {
			link, err := netlink.LinkByIndex(ln.Index)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetMTU(link, mtu); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("netlab: %s: MTU %d: %w", h.Name, mtu, err)
	}
	return h.setPorts(func(link netlink.Link) error { return h.lab.sw.LinkSetMTU(link, mtu) })
}

// Isolate cuts the host off its segments while its interfaces keep their
// carrier: the bridge-side veths leave their bridges, so frames to and from
// the host go nowhere. This is the network partition of a split-brain test,
// invisible to the host.
func (h *Host) Isolate() error {
	return h.setPorts(func(link netlink.Link) error { return h.lab.sw.LinkSetNoMaster(link) })
}

// Reconnect undoes [Host.Isolate].
func (h *Host) Reconnect() error {
	for _, ln := range h.Links {
		br, err := h.lab.sw.LinkByName(h.lab.bridgeName(ln.Segment))
		if err != nil {
			return fmt.Errorf("netlab: bridge of segment %d: %w", ln.Segment, err)
		}
		port, err := h.lab.sw.LinkByName(ln.Port)
		if err != nil {
			return fmt.Errorf("netlab: port %s: %w", ln.Port, err)
		}
		if err := h.lab.sw.LinkSetMaster(port, br); err != nil {
			return fmt.Errorf("netlab: port %s: %w", ln.Port, err)
		}
	}
	return nil
}

func (h *Host) setPorts(fn func(netlink.Link) error) error {
	for _, ln := range h.Links {
		link, err := h.lab.sw.LinkByName(ln.Port)
		if err != nil {
			return fmt.Errorf("netlab: port %s: %w", ln.Port, err)
		}
		if err := fn(link); err != nil {
			return fmt.Errorf("netlab: port %s: %w", ln.Port, err)
		}
	}
	return nil
}

// Addrs returns every address configured in the host's namespace, on any
// interface.
func (h *Host) Addrs() ([]netip.Prefix, error) {
	addrs, err := h.nl.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("netlab: %s: list addresses: %w", h.NS, err)
	}
	out := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
	}
	return out, nil
}

// InterfaceAddrs returns the addresses of the host's lab interfaces (its
// veths on the segments): not those of lo or of links it created.
func (h *Host) InterfaceAddrs() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, l := range h.Links {
		link, err := h.nl.LinkByIndex(l.Index)
		if err != nil {
			return nil, fmt.Errorf("netlab: %s: %s: %w", h.NS, l.IfName, err)
		}
		addrs, err := h.nl.AddrList(link, netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("netlab: %s: list addresses of %s: %w", h.NS, l.IfName, err)
		}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok {
				ones, _ := a.Mask.Size()
				out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
			}
		}
	}
	return out, nil
}

// HasAddr reports whether the host holds p (address and prefix length) on
// any interface.
func (h *Host) HasAddr(p netip.Prefix) (bool, error) {
	addrs, err := h.Addrs()
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if a == p {
			return true, nil
		}
	}
	return false, nil
}

// RemoveAddr deletes p from the host's segment-0 interface if it holds
// it there (a SIGKILLed VRRP daemon leaves its VIP behind): labs start
// and end clean with it.
func (h *Host) RemoveAddr(p netip.Prefix) error {
	link, err := h.nl.LinkByIndex(h.Index)
	if err != nil {
		return fmt.Errorf("netlab: %s: link %s: %w", h.NS, h.IfName, err)
	}
	err = h.nl.AddrDel(link, &netlink.Addr{IPNet: prefixNet(p)})
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("netlab: %s: remove %s from %s: %w", h.NS, p, h.IfName, err)
	}
	return nil
}

// Neighbor returns the hardware address the host's neighbour table holds
// for ip on any interface, or nil if there is no usable entry.
func (h *Host) Neighbor(ip netip.Addr) (net.HardwareAddr, error) {
	family := netlink.FAMILY_V4
	if ip.Is6() {
		family = netlink.FAMILY_V6
	}
	neighs, err := h.nl.NeighList(0, family)
	if err != nil {
		return nil, fmt.Errorf("netlab: %s: list neighbours: %w", h.NS, err)
	}
	for _, n := range neighs {
		nip, ok := netip.AddrFromSlice(n.IP)
		if !ok || nip.Unmap() != ip || len(n.HardwareAddr) == 0 {
			continue
		}
		if n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) != 0 {
			continue
		}
		return n.HardwareAddr, nil
	}
	return nil, nil
}

// SetNeighbor adds or replaces a STALE neighbour entry for ip on the
// host's segment-0 interface. Linux updates an existing entry from a
// gratuitous ARP or unsolicited NA but by default creates none, so tests
// of announcements seed one with a wrong address first.
func (h *Host) SetNeighbor(ip netip.Addr, mac net.HardwareAddr) error {
	family := netlink.FAMILY_V4
	if ip.Is6() {
		family = netlink.FAMILY_V6
	}
	err := h.nl.NeighSet(&netlink.Neigh{
		LinkIndex:    h.Index,
		Family:       family,
		State:        netlink.NUD_STALE,
		IP:           ip.AsSlice(),
		HardwareAddr: mac,
	})
	if err != nil {
		return fmt.Errorf("netlab: %s: set neighbour %s: %w", h.NS, ip, err)
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}

func linkUpByName(nl *netlink.Handle, name string) error {
	link, err := nl.LinkByName(name)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("link %s up: %w", name, err)
	}
	return nil
}

// writeSysctls writes /proc/sys entries; called in a namespace, the net
// entries are that namespace's.
func writeSysctls(kv map[string]string) error {
	for k, v := range kv {
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
			return fmt.Errorf("sysctl %s: %w", k, err)
		}
	}
	return nil
}

func runCmd(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("netlab: %s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}
