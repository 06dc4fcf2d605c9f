package vip

import (
	"net/netip"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	pp := netip.MustParsePrefix
	tests := []struct {
		name    string
		ifName  string
		vips    []netip.Prefix
		wantErr string
	}{
		{name: "ok", ifName: "eth0", vips: []netip.Prefix{pp("192.0.2.100/24"), pp("2001:db8::100/128")}},
		{name: "none", ifName: "eth0"},
		{name: "no interface", vips: []netip.Prefix{pp("192.0.2.100/24")}, wantErr: "no interface"},
		{name: "invalid", ifName: "eth0", vips: []netip.Prefix{{}}, wantErr: "invalid prefix"},
		{name: "multicast", ifName: "eth0", vips: []netip.Prefix{pp("224.0.0.18/32")}, wantErr: "not a unicast"},
		{name: "mapped", ifName: "eth0", vips: []netip.Prefix{pp("::ffff:192.0.2.1/128")}, wantErr: "plain IPv4"},
		{name: "duplicate", ifName: "eth0", vips: []netip.Prefix{pp("192.0.2.100/24"), pp("192.0.2.100/32")}, wantErr: "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New(tt.ifName, tt.vips, Options{}).Validate()
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "vip: ")) {
				t.Fatalf("Validate = %v, want vip: error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewCopiesAddresses(t *testing.T) {
	vips := []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24")}
	m := New("eth0", vips, Options{})
	vips[0] = netip.MustParsePrefix("192.0.2.1/24")
	if !m.isVIP(netip.MustParseAddr("192.0.2.100")) || m.isVIP(netip.MustParseAddr("192.0.2.1")) {
		t.Fatal("New kept a reference to the caller's slice")
	}
}
