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
