package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nlb-dev/nlb/vrrp"
)

// TestVRRPConfig checks the translation of a loaded instance into what
// vrrp runs, the GARP sentinels (config 0 = none / back to back; vrrp 0 =
// the default, negative = none) above all.
func TestVRRPConfig(t *testing.T) {
	src := netip.MustParseAddr("192.0.2.11")
	pass := [8]byte{'s', 'e', 'c', 'r', 'e', 't'}
	for _, tc := range []struct {
		name string
		yaml string
		src  netip.Addr
		want vrrp.InstanceConfig
	}{{
		name: "k0s defaults: VRRPv2 multicast, keepalived's GARP",
		yaml: `
enabled: true
keepalived:
  vrrpInstances:
  - virtualIPs: ["192.0.2.100/24"]
    authPass: secret
`,
		src: src,
		want: vrrp.InstanceConfig{
			Name: "k0s-vip-0",
			Machine: vrrp.MachineConfig{
				Version: vrrp.Version2, VRID: 51, Priority: 200, AdvertInterval: time.Second, Preempt: true, Primary: src,
			},
			Filter: vrrp.Filter{
				Version: vrrp.Version2, VRID: 51, Interval: time.Second, AuthType: vrrp.AuthPassword, AuthData: pass,
				Addresses: []netip.Addr{netip.MustParseAddr("192.0.2.100")},
			},
			Addresses:    []netip.Addr{netip.MustParseAddr("192.0.2.100")},
			Destinations: []netip.Addr{netip.MustParseAddr("224.0.0.18")},
			Source:       src,
			GARP:         vrrp.GARPConfig{MasterDelay: 5 * time.Second, MasterRepeat: 5, MasterRefreshRepeat: 1, Interval: -1},
		},
	}, {
		name: "unicast, no second burst, paced GARP, nopreempt",
		yaml: `
enabled: true
keepalived:
  vrrpInstances:
  - virtualIPs: ["192.0.2.100/24", "192.0.2.101/24"]
    virtualRouterID: 7
    authPass: secret
    priority: 150
    preempt: false
    unicastSourceIP: 192.0.2.11
    unicastPeers: [192.0.2.12, 192.0.2.13]
    garp: {masterDelay: 0s, masterRepeat: 3, interval: 10ms, masterRefresh: 60s, masterRefreshRepeat: 2}
`,
		src: src,
		want: vrrp.InstanceConfig{
			Name: "k0s-vip-0",
			Machine: vrrp.MachineConfig{
				Version: vrrp.Version2, VRID: 7, Priority: 150, AdvertInterval: time.Second, Preempt: false, Primary: src,
			},
			Filter: vrrp.Filter{
				Version: vrrp.Version2, VRID: 7, Interval: time.Second, AuthType: vrrp.AuthPassword, AuthData: pass,
				Unicast: true, Peers: []netip.Addr{netip.MustParseAddr("192.0.2.12"), netip.MustParseAddr("192.0.2.13")},
				Addresses: []netip.Addr{netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("192.0.2.101")},
			},
			Addresses:    []netip.Addr{netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("192.0.2.101")},
			Destinations: []netip.Addr{netip.MustParseAddr("192.0.2.12"), netip.MustParseAddr("192.0.2.13")},
			Source:       src,
			GARP: vrrp.GARPConfig{
				MasterDelay: -1, MasterRepeat: 3, Interval: 10 * time.Millisecond, MasterRefresh: time.Minute, MasterRefreshRepeat: 2,
			},
		},
	}, {
		name: "VRRPv3 IPv6, sub-second interval, RFC 9568 checksum",
		yaml: `
enabled: true
keepalived:
  vrrpInstances:
  - virtualIPs: ["2001:db8::100/64"]
    authPass: secret
    advertInterval: 100ms
`,
		src: netip.MustParseAddr("fe80::1"),
		want: vrrp.InstanceConfig{
			Name: "k0s-vip-0",
			Machine: vrrp.MachineConfig{
				Version: vrrp.Version3, VRID: 51, Priority: 200, AdvertInterval: 100 * time.Millisecond, Preempt: true,
				Primary: netip.MustParseAddr("fe80::1"),
			},
			Filter: vrrp.Filter{
				Version: vrrp.Version3, VRID: 51, Interval: 100 * time.Millisecond,
				Addresses: []netip.Addr{netip.MustParseAddr("2001:db8::100")},
			},
			Addresses:    []netip.Addr{netip.MustParseAddr("2001:db8::100")},
			Destinations: []netip.Addr{netip.MustParseAddr("ff02::12")},
			Source:       netip.MustParseAddr("fe80::1"),
			GARP:         vrrp.GARPConfig{MasterDelay: 5 * time.Second, MasterRepeat: 5, MasterRefreshRepeat: 1, Interval: -1},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(strings.NewReader(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			insts := c.VRRPInstances()
			if len(insts) != 1 {
				t.Fatalf("%d instances", len(insts))
			}
			got := insts[0].VRRPConfig(tc.src)
			opts := cmp.Options{cmpopts.EquateComparable(netip.Addr{}), cmpopts.IgnoreFields(vrrp.InstanceConfig{}, "ChecksumForm")}
			if diff := cmp.Diff(tc.want, got, opts); diff != "" {
				t.Errorf("VRRPConfig (-want +got):\n%s", diff)
			}
		})
	}
}
