//go:build linux

package xdplb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/cilium/ebpf"
)

// beAddrsMap is the name of the map, not used by the program, that keeps
// each backend slot's Addr, so that a restarted nlb can rebuild what
// SetService keeps by Addr (slots, counters, flows) from the pinned maps.
const beAddrsMap = "nlb_be_addrs"

// pinnedMaps are the names of the maps pinned in a datapath's directory.
var pinnedMaps = []string{
	xdplbMapNlbConfig, xdplbMapNlbServices, xdplbMapNlbMaglev, xdplbMapNlbBackends,
	xdplbMapNlbFlows, xdplbMapNlbGuard, xdplbMapNlbSvcStats, xdplbMapNlbBeStats,
	xdplbMapNlbEvents, beAddrsMap,
}

// beAddrsSpec is nlb_be_addrs: global backend slot → the Addr as 16 bytes
// (IPv4 as IPv4-mapped) and a family byte (0: empty slot).
func beAddrsSpec(entries uint32) *ebpf.MapSpec {
	return &ebpf.MapSpec{
		Name:       beAddrsMap,
		Type:       ebpf.Array,
		KeySize:    4,
		ValueSize:  20,
		MaxEntries: entries,
	}
}

func beAddrValue(a netip.Addr) [20]byte {
	var v [20]byte
	a = a.Unmap()
	b := a.As16()
	copy(v[:16], b[:])
	v[16] = familyIPv6
	if a.Is4() {
		v[16] = familyIPv4
	}
	return v
}

func beAddrFrom(v [20]byte) (netip.Addr, bool) {
	a := netip.AddrFrom16([16]byte(v[:16]))
	switch v[16] {
	case familyIPv4:
		return a.Unmap(), true
	case familyIPv6:
		return a, true
	}
	return netip.Addr{}, false
}

// emptySlot marks a global backend slot unused.
func (o *Objects) emptySlot(slot uint32) error {
	if err := o.objs.NlbBackends.Put(slot, xdplbBackend{}); err != nil {
		return err
	}
	return o.addrs.Put(slot, [20]byte{})
}

// pinnedMapsExist reports whether dir holds a complete set of pinned maps.
// A partial set (a crash during the first load) is removed, so that the
// load starts afresh.
func pinnedMapsExist(dir string) (bool, error) {
	var have, missing int
	for _, name := range pinnedMaps {
		_, err := os.Stat(filepath.Join(dir, name))
		switch {
		case err == nil:
			have++
		case errors.Is(err, os.ErrNotExist):
			missing++
		default:
			return false, fmt.Errorf("xdplb: pinned map: %w", err)
		}
	}
	if missing == 0 {
		return true, nil
	}
	if have > 0 {
		if err := removePinnedMaps(dir); err != nil {
			return false, err
		}
	}
	return false, nil
}

// removePinnedMaps unpins every map of a datapath in dir.
func removePinnedMaps(dir string) error {
	var errs []error
	for _, name := range pinnedMaps {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("xdplb: unpin %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// adopt reads the state of pinned maps back into o: the configuration
// (VRRP state, our MAC, the hash seed, which must be Options.HashSeed),
// the services with their backends and slots, and the guard MACs. Nothing
// is written, so the program forwards on without a change.
func (o *Objects) adopt() error {
	var cfg xdplbConfig
	if err := o.objs.NlbConfig.Lookup(uint32(0), &cfg); err != nil {
		return fmt.Errorf("xdplb: adopt: read config: %w", err)
	}
	if cfg.Seed != o.opts.HashSeed {
		return fmt.Errorf("xdplb: adopt: the pinned datapath hashes with seed %#x, Options.HashSeed is %#x (remove it with Remove to change the seed)",
			cfg.Seed, o.opts.HashSeed)
	}
	o.cfg = cfg
	o.macSet = cfg.Mac != [6]byte{}

	var (
		key xdplbServiceKey
		val xdplbService
	)
	iter := o.objs.NlbServices.Iterate()
	for iter.Next(&key, &val) {
		vip, ok := serviceAddr(key)
		if !ok || int(val.Id) >= o.opts.MaxServices || o.ids[val.Id] {
			return fmt.Errorf("xdplb: adopt: pinned service %v (id %d) is not one this version writes", key, val.Id)
		}
		ap := netip.AddrPortFrom(vip, ntohs(key.Port))
		st := &serviceState{id: val.Id, half: val.Half, slots: map[netip.Addr]uint32{}, backends: map[uint32]Backend{}}
		base := val.Id * uint32(o.opts.MaxBackends)
		for slot := uint32(0); slot < uint32(o.opts.MaxBackends); slot++ {
			var be xdplbBackend
			if err := o.objs.NlbBackends.Lookup(base+slot, &be); err != nil {
				return fmt.Errorf("xdplb: adopt: service %s: read backend slot %d: %w", ap, slot, err)
			}
			if be.Flags&beActive == 0 {
				continue
			}
			var av [20]byte
			if err := o.addrs.Lookup(base+slot, &av); err != nil {
				return fmt.Errorf("xdplb: adopt: service %s: read backend address %d: %w", ap, slot, err)
			}
			a, ok := beAddrFrom(av)
			if !ok {
				return fmt.Errorf("xdplb: adopt: service %s: backend slot %d has no address", ap, slot)
			}
			st.slots[a] = slot
			st.backends[slot] = Backend{Addr: a, MAC: slices.Clone(be.Mac[:]), Local: be.Flags&beLocal != 0}
			st.order = append(st.order, a)
		}
		o.ids[val.Id] = true
		o.services[ap] = st
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("xdplb: adopt: read services: %w", err)
	}

	backendMACs := make(map[[6]byte]bool)
	for _, st := range o.services {
		for _, b := range st.backends {
			backendMACs[[6]byte(b.MAC)] = true
		}
	}
	var (
		mk xdplbMacKey
		mv uint32
	)
	giter := o.objs.NlbGuard.Iterate()
	for giter.Next(&mk, &mv) {
		o.guard[mk.Addr] = true
		if !backendMACs[mk.Addr] {
			o.extra[mk.Addr] = true
		}
	}
	if err := giter.Err(); err != nil {
		return fmt.Errorf("xdplb: adopt: read guard MACs: %w", err)
	}
	return nil
}

// serviceAddr is the VIP of an nlb_services key.
func serviceAddr(k xdplbServiceKey) (netip.Addr, bool) {
	var b [16]byte
	for i, w := range k.Addr {
		putNativeWord(b[4*i:], w)
	}
	switch k.Family {
	case familyIPv4:
		return netip.AddrFrom4([4]byte(b[:4])), true
	case familyIPv6:
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

// Master reports the VRRP state the program runs with (for an adopted
// datapath, the one it had when nlb stopped).
func (o *Objects) Master() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.cfg.Master != 0
}

// MAC returns our MAC as last set (nil if none).
func (o *Objects) MAC() net.HardwareAddr {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.macSet {
		return nil
	}
	return slices.Clone(o.cfg.Mac[:])
}

// ntohs is the inverse of htons.
func ntohs(p uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], p)
	return binary.BigEndian.Uint16(b[:])
}

// putNativeWord writes w's memory bytes to b[0:4].
func putNativeWord(b []byte, w uint32) { binary.NativeEndian.PutUint32(b, w) }
