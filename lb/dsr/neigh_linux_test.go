//go:build linux

package dsr

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/vishvananda/netlink"
)

// TestResolve: from h1, with an empty neighbour table, the backends' MACs
// (IPv4 and IPv6) are probed and found; h1's own address is Local; a
// backend behind a gateway is refused by name.
func TestResolve(t *testing.T) {
	lab := netlab.NewT(t, "neigh", netlab.Options{Hosts: 3})
	h1, h2, h3 := lab.Hosts[0], lab.Hosts[1], lab.Hosts[2]
	for _, a := range []netip.Addr{h2.Addr4, h3.Addr6} {
		if mac, err := h1.Neighbor(a); err != nil || mac != nil {
			t.Fatalf("h1 already has a neighbour entry for %s: %v %v", a, mac, err)
		}
	}
	n := NewNeighbors(h1.IfName)
	defer n.Close()
	var got []Neighbor
	err := h1.Run(func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		got, err = n.Resolve(ctx, []netip.Addr{h2.Addr4, h3.Addr6, h1.Addr4, h3.Addr4})
		return err
	})
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	want := []Neighbor{
		{Addr: h2.Addr4, MAC: h2.MAC}, {Addr: h3.Addr6, MAC: h3.MAC},
		{Addr: h1.Addr4, MAC: h1.MAC, Local: true}, {Addr: h3.Addr4, MAC: h3.MAC},
	}
	for i := range want {
		if got[i].Addr != want[i].Addr || got[i].MAC.String() != want[i].MAC.String() || got[i].Local != want[i].Local {
			t.Errorf("Resolve[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}

	// 203.0.113.0/24 is routed through h2: not on the link.
	err = h1.Run(func() error {
		_, dst, _ := net.ParseCIDR("203.0.113.0/24")
		return netlink.RouteAdd(&netlink.Route{LinkIndex: h1.Index, Dst: dst, Gw: h2.Addr4.AsSlice()})
	})
	if err != nil {
		t.Fatal(err)
	}
	off := netip.MustParseAddr("203.0.113.5")
	err = h1.Run(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := n.Resolve(ctx, []netip.Addr{h2.Addr4, off})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "backend 203.0.113.5 is not on") || !strings.Contains(err.Error(), "via "+h2.Addr4.String()) {
		t.Errorf("off-link backend: %v, want a refusal naming it and its gateway", err)
	}
}

// TestResolveSilentBackend: an address nobody answers for is named when
// the wait ends.
func TestResolveSilentBackend(t *testing.T) {
	lab := netlab.NewT(t, "neighsilent", netlab.Options{Hosts: 1})
	h := lab.Hosts[0]
	n := NewNeighbors(h.IfName)
	defer n.Close()
	silent := netip.MustParseAddr("192.0.2.99")
	err := h.Run(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := n.Resolve(ctx, []netip.Addr{silent})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "192.0.2.99") {
		t.Errorf("silent backend: %v, want an error naming it", err)
	}
}

// TestWatch: a backend's entry learning another MAC is reported once; an
// update with the same MAC is not.
func TestWatch(t *testing.T) {
	lab := netlab.NewT(t, "neighwatch", netlab.Options{Hosts: 2})
	h1, h2 := lab.Hosts[0], lab.Hosts[1]
	n := NewNeighbors(h1.IfName)
	defer n.Close()
	var known []Neighbor
	err := h1.Run(func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		known, err = n.Resolve(ctx, []netip.Addr{h2.Addr4})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan Neighbor, 8)
	watched := make(chan error, 1)
	go func() { watched <- n.Watch(ctx, known, func(nb Neighbor) { changes <- nb }) }()
	defer func() {
		cancel()
		if err := <-watched; err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()
	set := func(mac net.HardwareAddr) {
		t.Helper()
		err := h1.Run(func() error {
			return netlink.NeighSet(&netlink.Neigh{LinkIndex: h1.Index, Family: netlink.FAMILY_V4, State: netlink.NUD_REACHABLE, IP: h2.Addr4.AsSlice(), HardwareAddr: mac})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	moved := net.HardwareAddr{0x02, 0, 0, 0, 0x12, 0x34}
	// The subscription may start after the first update: repeat the
	// same-MAC update and then the change until the change is reported.
	deadline := time.After(20 * time.Second)
	for {
		set(h2.MAC)
		set(moved)
		select {
		case nb := <-changes:
			if nb.Addr != h2.Addr4 || nb.MAC.String() != moved.String() {
				t.Fatalf("change %+v, want %s at %s", nb, h2.Addr4, moved)
			}
			return
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("no change reported")
		}
	}
}
