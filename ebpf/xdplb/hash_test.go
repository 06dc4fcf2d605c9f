package xdplb

import (
	"net/netip"
	"testing"
)

// TestJhashReference checks jhash9 against values of the kernel's jhash2
// (include/linux/jhash.h compiled as C on the host) for the same words.
func TestJhashReference(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    [9]uint32
		seed uint32
		want uint32
	}{
		{"zero", [9]uint32{}, 0, 0x9ebdcdce},
		{"v4", [9]uint32{0xc6336401, 0, 0, 0, 0xc0000264, 0, 0, 0, 40000<<16 | 6443}, 0, 0xa0ef14d3},
		{"v4 seed 42", [9]uint32{0xc6336401, 0, 0, 0, 0xc0000264, 0, 0, 0, 40000<<16 | 6443}, 42, 0xe253c00a},
		{"v6", [9]uint32{0x20010db8, 0, 0, 1, 0x20010db8, 0, 0, 0x100, 40000<<16 | 6443}, 0, 0x0d238d03},
		{"persistent v4", [9]uint32{0xc6336401}, 0, 0xa0242fcb},
	} {
		if got := jhash9(&tc.w, tc.seed); got != tc.want {
			t.Errorf("%s: jhash9 = %#x, want %#x", tc.name, got, tc.want)
		}
	}
}

func TestFlowHashWords(t *testing.T) {
	client := netip.MustParseAddrPort("198.51.100.1:40000")
	vip := netip.MustParseAddrPort("192.0.2.100:6443")
	if got := FlowHash(client, vip, false, 0); got != 0xa0ef14d3 {
		t.Errorf("IPv4 FlowHash = %#x, want %#x", got, 0xa0ef14d3)
	}
	mapped := netip.AddrPortFrom(netip.AddrFrom16(client.Addr().As16()), client.Port())
	if got := FlowHash(mapped, vip, false, 0); got != 0xa0ef14d3 {
		t.Errorf("IPv4-mapped client: FlowHash = %#x, want the IPv4 hash", got)
	}
	if got := FlowHash(netip.MustParseAddrPort("[2001:db8::1]:40000"), netip.MustParseAddrPort("[2001:db8::100]:6443"), false, 0); got != 0x0d238d03 {
		t.Errorf("IPv6 FlowHash = %#x, want %#x", got, 0x0d238d03)
	}
	// Persistence: the client address alone, whatever the ports and VIP.
	p := FlowHash(client, vip, true, 0)
	if p != 0xa0242fcb {
		t.Errorf("persistent FlowHash = %#x, want %#x", p, 0xa0242fcb)
	}
	other := netip.MustParseAddrPort("198.51.100.1:50000")
	if got := FlowHash(other, netip.MustParseAddrPort("192.0.2.101:443"), true, 0); got != p {
		t.Errorf("persistent FlowHash depends on ports or VIP: %#x != %#x", got, p)
	}
	if FlowHash(other, vip, false, 0) == FlowHash(client, vip, false, 0) {
		t.Error("FlowHash ignores the client port")
	}
}
