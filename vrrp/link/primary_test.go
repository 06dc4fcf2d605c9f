package link

import (
	"net/netip"
	"testing"
)

func TestPickPrimary(t *testing.T) {
	a := netip.MustParseAddr
	vips := []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24"), netip.MustParsePrefix("2001:db8::100/64")}
	for _, tc := range []struct {
		name  string
		addrs []netip.Addr
		ipv6  bool
		want  string // "" means an error
	}{
		{"first IPv4", []netip.Addr{a("192.0.2.11"), a("198.51.100.1")}, false, "192.0.2.11"},
		{"VIP skipped", []netip.Addr{a("192.0.2.100"), a("192.0.2.11")}, false, "192.0.2.11"},
		{"IPv4 link-local skipped", []netip.Addr{a("169.254.1.1"), a("192.0.2.12")}, false, "192.0.2.12"},
		{"IPv4-mapped", []netip.Addr{a("::ffff:192.0.2.13")}, false, "192.0.2.13"},
		{"IPv6 link-local", []netip.Addr{a("2001:db8::1"), a("fe80::1%eth0")}, true, "fe80::1"},
		{"IPv6 global only", []netip.Addr{a("2001:db8::1")}, true, ""},
		{"IPv6 VIP link-local skipped", []netip.Addr{a("fe80::100"), a("fe80::2")}, true, "fe80::2"},
		{"IPv4 asked, IPv6 only", []netip.Addr{a("fe80::1")}, false, ""},
		{"only the VIP", []netip.Addr{a("192.0.2.100")}, false, ""},
		{"nothing", nil, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := vips
			if tc.name == "IPv6 VIP link-local skipped" {
				v = []netip.Prefix{netip.MustParsePrefix("fe80::100/64")}
			}
			got, err := PickPrimary(tc.addrs, tc.ipv6, v)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("got %v, want an error", got)
				}
				return
			}
			if err != nil || got != a(tc.want) {
				t.Fatalf("got %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}

// TestPrimaryAddressLoopback reads a real link: lo has 127.0.0.1.
func TestPrimaryAddressLoopback(t *testing.T) {
	got, err := PrimaryAddress("lo", false, nil)
	if err != nil || got != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("lo: %v, %v", got, err)
	}
	if _, err := PrimaryAddress("nlb-no-such0", false, nil); err == nil {
		t.Fatal("a missing link has a primary address")
	}
}
