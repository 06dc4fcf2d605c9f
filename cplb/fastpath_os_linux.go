//go:build linux

package cplb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sync"

	"github.com/nlb-dev/nlb/ebpf/xdplb"
	"github.com/nlb-dev/nlb/lb/dsr"
)

// OSFastPath returns the fast path's OS effects: ebpf/xdplb attached to
// each interface and pinned under PinDir, lb/dsr's real server and
// neighbour resolution. It does no I/O until used.
func OSFastPath(o OSFastPathOptions) FastPath {
	if o.PinDir == "" {
		o.PinDir = DefaultPinDir
	}
	if o.StateFile == "" {
		o.StateFile = DefaultStateFile
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var (
		mu    sync.Mutex
		neigh = map[string]*dsr.Neighbors{}
	)
	return FastPath{
		Attach: func(iface string) (XDPDatapath, error) {
			ifi, err := net.InterfaceByName(iface)
			if err != nil {
				return nil, err
			}
			var modes []xdplb.Mode
			for _, m := range o.AttachModes {
				modes = append(modes, xdplb.Mode(m))
			}
			dp, err := xdplb.Attach(xdplb.AttachOptions{
				Options:   xdplb.Options{FlowTableSize: o.FlowTableSize, HashSeed: FastPathHashSeed},
				Interface: ifi.Index,
				PinDir:    filepath.Join(o.PinDir, iface),
				Modes:     modes,
			})
			if err != nil {
				return nil, err
			}
			return dp, nil
		},
		InterfaceMAC: func(iface string) (net.HardwareAddr, error) {
			ifi, err := net.InterfaceByName(iface)
			if err != nil {
				return nil, err
			}
			if len(ifi.HardwareAddr) != 6 {
				return nil, fmt.Errorf("%s has no Ethernet address: the XDP fast path forwards Ethernet frames", iface)
			}
			return ifi.HardwareAddr, nil
		},
		Resolve: func(ctx context.Context, iface string, backend netip.Addr) (net.HardwareAddr, bool, error) {
			mu.Lock()
			n := neigh[iface]
			if n == nil {
				n = dsr.NewNeighbors(iface)
				neigh[iface] = n
			}
			mu.Unlock()
			ns, err := n.Resolve(ctx, []netip.Addr{backend})
			if err != nil {
				return nil, false, err
			}
			return ns[0].MAC, ns[0].Local, nil
		},
		RealServer: func(vips []netip.Addr, ifaces []string) (func() error, error) {
			rs, err := dsr.New(dsr.Config{VIPs: vips, Interfaces: ifaces, StateFile: o.StateFile, Logger: o.Logger})
			if err != nil {
				return nil, err
			}
			if err := rs.Up(); err != nil {
				_ = rs.Close()
				return nil, err
			}
			return func() error { return errors.Join(rs.Down(), rs.Close()) }, nil
		},
		Cleanup: func(ifaces []string) error {
			var errs []error
			for _, iface := range ifaces {
				errs = append(errs, xdplb.RemovePinned(filepath.Join(o.PinDir, iface)))
			}
			errs = append(errs, dsr.Remove(o.StateFile, o.Logger))
			return errors.Join(errs...)
		},
	}
}
