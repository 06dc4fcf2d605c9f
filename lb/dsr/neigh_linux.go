//go:build linux

package dsr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Neighbor is a backend's place on the VIP's link.
type Neighbor struct {
	// Addr is the backend's address.
	Addr netip.Addr
	// MAC is its Ethernet address (ours when Local).
	MAC net.HardwareAddr
	// Local says the backend is this node.
	Local bool
}

// Neighbors finds backends' MACs on the VIP's link in the kernel's
// neighbour table (netlink). A missing entry is created as a managed one
// (NTF_EXT_MANAGED, Linux 5.16+: the kernel resolves it with ARP or NDP at
// once and keeps re-resolving it, so a changed MAC shows up without
// traffic of its own) and waited for. Create it with NewNeighbors; it acts
// in the network namespace of the thread of its first call.
type Neighbors struct {
	ifName string

	mu    sync.Mutex
	nl    *netlink.Handle
	ns    netns.NsHandle
	index int
	mac   net.HardwareAddr
}

// NewNeighbors returns a resolver for backends on ifName. It does no I/O.
func NewNeighbors(ifName string) *Neighbors { return &Neighbors{ifName: ifName, ns: netns.None()} }

func (n *Neighbors) open() error {
	if n.nl != nil {
		return nil
	}
	ns, err := netns.Get()
	if err != nil {
		return fmt.Errorf("dsr: network namespace: %w", err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return fmt.Errorf("dsr: netlink: %w", err)
	}
	link, err := h.LinkByName(n.ifName)
	if err != nil {
		h.Close()
		ns.Close()
		return fmt.Errorf("dsr: interface %s: %w", n.ifName, err)
	}
	n.nl, n.ns, n.index, n.mac = h, ns, link.Attrs().Index, link.Attrs().HardwareAddr
	return nil
}

// Close releases the netlink socket (the kernel keeps the entries).
func (n *Neighbors) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nl != nil {
		n.nl.Close()
		n.ns.Close()
		n.nl = nil
	}
	return nil
}

// usable reports whether an entry's MAC may be used.
func usable(e netlink.Neigh) bool {
	return len(e.HardwareAddr) == 6 && e.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED|netlink.NUD_NONE) == 0 &&
		[6]byte(e.HardwareAddr) != [6]byte{}
}

// Resolve returns the backends' MACs, in the order given. A backend that
// is not on the interface's link (reached through a gateway or another
// interface) is refused by name: direct server return rewrites only the
// MAC, so every backend shares the VIP's layer-2 segment. A backend that
// is one of this node's addresses is Local. Missing entries are probed
// and waited for until ctx ends; the error then names the backends that
// did not answer.
func (n *Neighbors) Resolve(ctx context.Context, backends []netip.Addr) ([]Neighbor, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.open(); err != nil {
		return nil, err
	}
	out := make([]Neighbor, len(backends))
	var errs []error
	for i, a := range backends {
		a = a.Unmap()
		out[i].Addr = a
		routes, err := n.nl.RouteGet(a.AsSlice())
		if err != nil || len(routes) == 0 {
			errs = append(errs, fmt.Errorf("dsr: backend %s: no route: %v", a, err))
			continue
		}
		r := routes[0]
		if r.Type == unix.RTN_LOCAL {
			out[i].MAC, out[i].Local = n.mac, true
			continue
		}
		if r.LinkIndex != n.index || r.Gw != nil {
			via := n.ifaceName(r.LinkIndex)
			if r.Gw != nil {
				via = fmt.Sprintf("via %s on %s", r.Gw, via)
			}
			errs = append(errs, fmt.Errorf("dsr: backend %s is not on %s's link (reached %s): direct server return rewrites only the MAC, so every backend must share the VIP's layer-2 segment",
				a, n.ifName, via))
		}
		if len(errs) >= maxProblems {
			break
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	updates := make(chan netlink.NeighUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	ns := n.ns
	if err := netlink.NeighSubscribeWithOptions(updates, done, netlink.NeighSubscribeOptions{Namespace: &ns}); err != nil {
		return nil, fmt.Errorf("dsr: neighbour updates: %w", err)
	}
	missing := make(map[netip.Addr]int)
	for i := range out {
		if !out[i].Local {
			missing[out[i].Addr] = i
		}
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		entries, err := n.nl.NeighList(n.index, fam)
		if err != nil {
			return nil, fmt.Errorf("dsr: neighbour table of %s: %w", n.ifName, err)
		}
		for _, e := range entries {
			n.take(out, missing, e)
		}
	}
	for a := range missing {
		if err := n.probe(a); err != nil {
			return nil, err
		}
	}
	for len(missing) > 0 {
		select {
		case u, ok := <-updates:
			if !ok {
				return nil, errors.New("dsr: neighbour updates ended")
			}
			if u.Type == unix.RTM_NEWNEIGH {
				n.take(out, missing, u.Neigh)
			}
		case <-ctx.Done():
			var names []string
			for a := range missing {
				names = append(names, a.String())
			}
			slices.Sort(names)
			return nil, fmt.Errorf("dsr: no ARP/NDP answer on %s from backend(s) %s: %w", n.ifName, strings.Join(names, ", "), ctx.Err())
		}
	}
	return out, nil
}

// take fills in a missing backend from a usable entry of our interface.
func (n *Neighbors) take(out []Neighbor, missing map[netip.Addr]int, e netlink.Neigh) {
	if e.LinkIndex != n.index || !usable(e) {
		return
	}
	ip, ok := netip.AddrFromSlice(e.IP)
	if !ok {
		return
	}
	if i, ok := missing[ip.Unmap()]; ok {
		out[i].MAC = slices.Clone(e.HardwareAddr)
		delete(missing, ip.Unmap())
	}
}

// probe creates a managed entry for a, which the kernel resolves at once
// (NTF_USE) and keeps fresh (NTF_EXT_MANAGED). Kernels without managed
// entries get a plain resolution.
func (n *Neighbors) probe(a netip.Addr) error {
	fam := netlink.FAMILY_V4
	if a.Is6() {
		fam = netlink.FAMILY_V6
	}
	e := netlink.Neigh{LinkIndex: n.index, Family: fam, IP: a.AsSlice(), State: netlink.NUD_NONE,
		Flags: netlink.NTF_USE, FlagsExt: netlink.NTF_EXT_MANAGED}
	err := n.nl.NeighSet(&e)
	if err != nil {
		e.FlagsExt = 0
		err = n.nl.NeighSet(&e)
	}
	if err != nil {
		return fmt.Errorf("dsr: probe backend %s on %s: %w", a, n.ifName, err)
	}
	return nil
}

func (n *Neighbors) ifaceName(index int) string {
	if l, err := n.nl.LinkByIndex(index); err == nil {
		return l.Attrs().Name
	}
	return fmt.Sprintf("interface %d", index)
}

// Watch calls changed with a backend whenever the kernel's neighbour table
// learns a MAC for it, on the interface, other than the one last known
// (known, typically Resolve's result, then what changed reported), until
// ctx ends; it then returns nil. The managed entries Resolve created are
// re-resolved by the kernel on its own, so a backend whose MAC changed
// (a replaced NIC, a VM moved) is reported without traffic to it. Local
// backends are not watched. changed runs on Watch's goroutine.
func (n *Neighbors) Watch(ctx context.Context, known []Neighbor, changed func(Neighbor)) error {
	n.mu.Lock()
	err := n.open()
	ns, index := n.ns, n.index
	n.mu.Unlock()
	if err != nil {
		return err
	}
	last := make(map[netip.Addr]net.HardwareAddr, len(known))
	for _, k := range known {
		if !k.Local {
			last[k.Addr.Unmap()] = slices.Clone(k.MAC)
		}
	}
	updates := make(chan netlink.NeighUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	if err := netlink.NeighSubscribeWithOptions(updates, done, netlink.NeighSubscribeOptions{Namespace: &ns}); err != nil {
		return fmt.Errorf("dsr: neighbour updates: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case u, ok := <-updates:
			if !ok {
				return errors.New("dsr: neighbour updates ended")
			}
			if u.Type != unix.RTM_NEWNEIGH || u.LinkIndex != index || !usable(u.Neigh) {
				continue
			}
			ip, ok := netip.AddrFromSlice(u.IP)
			if !ok {
				continue
			}
			a := ip.Unmap()
			old, watched := last[a]
			if !watched || old.String() == u.HardwareAddr.String() {
				continue
			}
			last[a] = slices.Clone(u.HardwareAddr)
			changed(Neighbor{Addr: a, MAC: slices.Clone(u.HardwareAddr)})
		}
	}
}
