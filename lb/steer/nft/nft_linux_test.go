//go:build linux

package nft_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/lb/steer/nft"
)

var (
	vip4 = netip.MustParseAddr("192.0.2.100")
	vip6 = netip.MustParseAddr("2001:db8::100")
)

func TestConfigValidation(t *testing.T) {
	// Rejected before any netlink I/O: no root needed.
	for _, tc := range []struct {
		name string
		cfg  nft.Config
		want string
	}{
		{"no VIPs", nft.Config{Port: 6443, ProxyPort: 6444}, "no VIPs"},
		{"port 0", nft.Config{VIPs: []netip.Addr{vip4}, ProxyPort: 6444}, "port 0"},
		{"proxy port 0", nft.Config{VIPs: []netip.Addr{vip4}, Port: 6443}, "port 0"},
		{"same ports", nft.Config{VIPs: []netip.Addr{vip4}, Port: 6443, ProxyPort: 6443}, "both 6443"},
		{"invalid VIP", nft.Config{VIPs: []netip.Addr{{}}, Port: 6443, ProxyPort: 6444}, "invalid VIP"},
		{"unspecified VIP", nft.Config{VIPs: []netip.Addr{netip.IPv4Unspecified()}, Port: 6443, ProxyPort: 6444}, "invalid VIP"},
	} {
		if _, err := nft.Attach(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func count(t *testing.T, ns string) nft.Counts {
	t.Helper()
	n, err := nft.Count(ns)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAttachReplaces checks the table bookkeeping in a namespace of its
// own; lb/steer tests the traffic.
func TestAttachReplaces(t *testing.T) {
	l := netlab.NewT(t, "", netlab.Options{Hosts: 1})
	ns := "/run/netns/" + l.Hosts[0].NS
	cfg := nft.Config{NetNS: ns, VIPs: []netip.Addr{vip4, vip6, vip4}, Port: 6443, ProxyPort: 6444}

	if got := count(t, ns); got != (nft.Counts{}) {
		t.Fatalf("fresh namespace: %+v", got)
	}
	// Two tables, two chains each, one rule per VIP (the duplicate
	// collapses) in each chain.
	want := nft.Counts{Tables: 2, Chains: 4, Rules: 4}
	r1, err := nft.Attach(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := count(t, ns); got != want {
		t.Fatalf("after Attach: %+v, want %+v", got, want)
	}
	r2, err := nft.Attach(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := count(t, ns); got != want {
		t.Fatalf("after a second Attach: %+v, want %+v", got, want)
	}
	// Closing the replaced r1 leaves r2's tables alone.
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}
	if got := count(t, ns); got != want {
		t.Fatalf("after closing a replaced Attach: %+v, want %+v", got, want)
	}
	// IPv4 only: the ip6 table goes away.
	cfg.VIPs = []netip.Addr{vip4}
	r3, err := nft.Attach(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := count(t, ns), (nft.Counts{Tables: 1, Chains: 2, Rules: 2}); got != want {
		t.Fatalf("after Attach with IPv4 only: %+v, want %+v", got, want)
	}
	if err := r3.Close(); err != nil {
		t.Fatal(err)
	}
	if got := count(t, ns); got != (nft.Counts{}) {
		t.Fatalf("after Close: %+v", got)
	}
	// Closing again, or closing the replaced ones, is harmless.
	for _, r := range []*nft.Rules{r3, r1, r2} {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if n, err := nft.Remove(ns); err != nil || n != 0 {
		t.Errorf("Remove on a clean namespace = %d, %v", n, err)
	}
	if _, err := nft.Attach(cfg); err != nil {
		t.Fatal(err)
	}
	if n, err := nft.Remove(ns); err != nil || n != 1 {
		t.Errorf("Remove = %d, %v; want 1", n, err)
	}
	if got := count(t, ns); got != (nft.Counts{}) {
		t.Fatalf("after Remove: %+v", got)
	}
}
