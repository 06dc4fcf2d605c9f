package vip

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	pp := netip.MustParsePrefix
	tests := []struct {
		name    string
		ifName  string
		vips    []netip.Prefix
		opts    Options
		wantErr string
	}{
		{name: "ok", ifName: "eth0", vips: []netip.Prefix{pp("192.0.2.100/24"), pp("2001:db8::100/128")}},
		{name: "none", ifName: "eth0"},
		{name: "no interface", vips: []netip.Prefix{pp("192.0.2.100/24")}, wantErr: "no interface"},
		{name: "invalid", ifName: "eth0", vips: []netip.Prefix{{}}, wantErr: "invalid prefix"},
		{name: "multicast", ifName: "eth0", vips: []netip.Prefix{pp("224.0.0.18/32")}, wantErr: "not a unicast"},
		{name: "mapped", ifName: "eth0", vips: []netip.Prefix{pp("::ffff:192.0.2.1/128")}, wantErr: "plain IPv4"},
		{name: "duplicate", ifName: "eth0", vips: []netip.Prefix{pp("192.0.2.100/24"), pp("192.0.2.100/32")}, wantErr: "twice"},
		{name: "reserved label", ifName: "eth0", vips: []netip.Prefix{pp("2001:db8::100/64")}, opts: Options{AddressLabel: 0xffffffff}, wantErr: "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New(tt.ifName, tt.vips, tt.opts).Validate()
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "vip: ")) {
				t.Fatalf("Validate = %v, want vip: error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	if got := New("eth0", nil, Options{}).opts.AddressLabel; got != DefaultAddressLabel {
		t.Errorf("default label %d, want %d", got, DefaultAddressLabel)
	}
	if got := New("eth0", nil, Options{AddressLabel: 7}).opts.AddressLabel; got != 7 {
		t.Errorf("label %d, want 7", got)
	}
	if New("eth0", nil, Options{}).log == nil {
		t.Error("nil logger")
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

// entry builds an addrEntry on interface 2 (the managed one in these
// tests) unless the prefix string is followed by options.
func entry(p string, opts ...string) addrEntry {
	e := addrEntry{index: 2, prefix: netip.MustParsePrefix(p)}
	for _, o := range opts {
		switch o {
		case "secondary":
			e.flags |= flagSecondary
		case "nlb":
			e.proto, e.hasProto = AddrProto, true
		case "kernel_ll":
			e.proto, e.hasProto = 3, true
		case "link":
			e.scope = 253
		case "if3":
			e.index = 3
		}
	}
	return e
}

func TestOwner(t *testing.T) {
	vips := []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24"), netip.MustParsePrefix("2001:db8::100/64")}
	withProto := owner{vips: vips, proto: true, ifIndex: 2}
	legacy := owner{vips: vips, proto: false, ifIndex: 2}
	tests := []struct {
		name           string
		o              owner
		e              addrEntry
		nlb, ours, bad bool
	}{
		{"proto: our VIP", withProto, entry("192.0.2.100/24", "nlb"), true, true, false},
		{"proto: our VIP, other prefix and interface", withProto, entry("192.0.2.100/32", "nlb", "if3"), true, true, false},
		{"proto: node address equal to a VIP", withProto, entry("192.0.2.100/24"), false, false, true},
		{"proto: node address on another interface", withProto, entry("2001:db8::100/64", "if3"), false, false, true},
		{"proto: another instance's VIP", withProto, entry("192.0.2.200/24", "nlb"), true, false, false},
		{"proto: node address", withProto, entry("192.0.2.11/24"), false, false, false},
		{"proto: kernel link-local", withProto, entry("fe80::1/64", "kernel_ll"), false, false, false},
		{"legacy: VIP on the interface", legacy, entry("192.0.2.100/24"), true, true, false},
		{"legacy: VIP on another interface", legacy, entry("192.0.2.100/24", "if3"), false, false, true},
		{"legacy: node address", legacy, entry("192.0.2.11/24"), false, false, false},
	}
	for _, tt := range tests {
		if got := tt.o.nlb(tt.e); got != tt.nlb {
			t.Errorf("%s: nlb = %v", tt.name, got)
		}
		if got := tt.o.ours(tt.e); got != tt.ours {
			t.Errorf("%s: ours = %v", tt.name, got)
		}
		if got := tt.o.conflict(tt.e); got != tt.bad {
			t.Errorf("%s: conflict = %v", tt.name, got)
		}
	}
}

func TestNoPrefixRouteRule(t *testing.T) {
	o := owner{vips: []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24")}, proto: true, ifIndex: 2}
	node24 := []addrEntry{entry("192.0.2.11/24")}
	node16 := []addrEntry{entry("192.0.0.11/16")}
	tests := []struct {
		vip  string
		link []addrEntry
		want bool
	}{
		{"192.0.2.100/24", node24, false},                                      // secondary: no route of its own
		{"192.0.2.100/25", node24, true},                                       // a longer prefix inside the node's: its route would prefer the VIP
		{"192.0.2.100/24", node16, true},                                       // likewise
		{"192.0.2.100/32", node24, false},                                      // a /32 adds no prefix route
		{"203.0.113.10/24", node24, false},                                     // only the VIP covers its subnet: keep its route
		{"192.0.0.100/16", node24, false},                                      // wider than the node's subnet
		{"2001:db8::100/64", nil, false},                                       // IPv6: prefix routes have no preferred source
		{"192.0.2.100/25", []addrEntry{entry("192.0.2.101/24", "nlb")}, false}, // another VIP is no node address
	}
	for _, tt := range tests {
		if got := o.noPrefixRoute(netip.MustParsePrefix(tt.vip), tt.link); got != tt.want {
			t.Errorf("noPrefixRoute(%s, %v) = %v, want %v", tt.vip, tt.link, got, tt.want)
		}
	}
}

func TestMisplaced(t *testing.T) {
	vips := []netip.Prefix{
		netip.MustParsePrefix("192.0.2.100/24"),
		netip.MustParsePrefix("192.0.2.101/24"),
		netip.MustParsePrefix("203.0.113.10/32"),
	}
	o := owner{vips: vips, proto: true, ifIndex: 2}
	tests := []struct {
		name string
		link []addrEntry // dump order
		fix  []string
	}{
		{
			name: "VIP secondary to the node address",
			link: []addrEntry{entry("192.0.2.11/24"), entry("192.0.2.100/24", "nlb", "secondary")},
		},
		{
			name: "VIP promoted, node address added back as its secondary",
			link: []addrEntry{entry("192.0.2.100/24", "nlb"), entry("192.0.2.11/24", "secondary")},
			fix:  []string{"192.0.2.100/24"},
		},
		{
			name: "both VIPs of the subnet are rebuilt",
			link: []addrEntry{entry("192.0.2.100/24", "nlb"), entry("192.0.2.101/24", "nlb", "secondary"), entry("192.0.2.11/24", "secondary")},
			fix:  []string{"192.0.2.100/24", "192.0.2.101/24"},
		},
		{
			name: "/32 VIP after the node address",
			link: []addrEntry{entry("192.0.2.11/24"), entry("203.0.113.10/32", "nlb")},
		},
		{
			name: "/32 VIP ahead of the node address",
			link: []addrEntry{entry("203.0.113.10/32", "nlb"), entry("192.0.2.11/24")},
			fix:  []string{"203.0.113.10/32"},
		},
		{
			name: "VIP alone: nothing to be behind",
			link: []addrEntry{entry("203.0.113.10/32", "nlb"), entry("192.0.2.100/24", "nlb")},
		},
		{
			name: "a link-scope node address after the VIP does not count",
			link: []addrEntry{entry("203.0.113.10/32", "nlb"), entry("169.254.1.1/16", "link")},
		},
		{
			name: "another instance's VIP after ours is no node address",
			link: []addrEntry{entry("203.0.113.10/32", "nlb"), entry("198.51.100.7/32", "nlb")},
		},
		{
			name: "a node address equal to a VIP is not ours to move",
			link: []addrEntry{entry("192.0.2.100/24"), entry("192.0.2.11/24", "secondary")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range o.misplaced(tt.link) {
				got = append(got, e.prefix.String())
			}
			if !slices.Equal(got, tt.fix) {
				t.Errorf("misplaced = %v, want %v", got, tt.fix)
			}
		})
	}
}

func TestPromoteNeeded(t *testing.T) {
	vips := []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24"), netip.MustParsePrefix("192.0.2.101/24")}
	o := owner{vips: vips, proto: true, ifIndex: 2}
	vip := entry("192.0.2.100/24", "nlb")
	tests := []struct {
		name string
		all  []addrEntry
		del  []addrEntry
		want []int
	}{
		{"node secondary to the VIP", []addrEntry{vip, entry("192.0.2.11/24", "secondary")}, []addrEntry{vip}, []int{2}},
		{"VIP secondary itself", []addrEntry{entry("192.0.2.11/24"), entry("192.0.2.100/24", "nlb", "secondary")},
			[]addrEntry{entry("192.0.2.100/24", "nlb", "secondary")}, nil},
		{"only VIPs as secondaries", []addrEntry{vip, entry("192.0.2.101/24", "nlb", "secondary")}, []addrEntry{vip}, nil},
		{"a secondary of another subnet", []addrEntry{vip, entry("198.51.100.11/24", "secondary")}, []addrEntry{vip}, nil},
		{"a secondary on another interface", []addrEntry{vip, entry("192.0.2.11/24", "secondary", "if3")}, []addrEntry{vip}, nil},
		{"IPv6 has no secondaries", []addrEntry{entry("2001:db8::100/64", "nlb")}, []addrEntry{entry("2001:db8::100/64", "nlb")}, nil},
	}
	for _, tt := range tests {
		if got := o.promoteNeeded(tt.all, tt.del); !slices.Equal(got, tt.want) {
			t.Errorf("%s: promoteNeeded = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestReleaseAtLeast(t *testing.T) {
	tests := []struct {
		release string
		want    bool
	}{
		{"5.18.0", true},
		{"5.17.15-arch1", false},
		{"6.1.0-13-amd64", true},
		{"4.18.0-553.el8_10.x86_64", false},
		{"5.4.0-150-generic", false},
		{"10.0", true},
		{"6.18.44-fc-v595", true},
		{"garbage", false},
	}
	for _, tt := range tests {
		if got := releaseAtLeast(tt.release, 5, 18); got != tt.want {
			t.Errorf("releaseAtLeast(%q) = %v", tt.release, got)
		}
	}
}

func TestAllowRepair(t *testing.T) {
	m := New("eth0", nil, Options{})
	now := time.Unix(1000, 0)
	for i := range repairLimit {
		if !m.allowRepair(now.Add(time.Duration(i) * time.Second)) {
			t.Fatalf("repair %d refused", i)
		}
	}
	if m.allowRepair(now.Add(repairLimit * time.Second)) {
		t.Fatal("repair beyond the limit allowed")
	}
	if !m.allowRepair(now.Add(repairWindow + time.Second)) {
		t.Fatal("repair refused after the window")
	}
}
