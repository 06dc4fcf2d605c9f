package socket

import (
	"net/netip"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name    string
		cfg     Config
		ipv6    bool
		wantErr string // substring; "" means valid
	}{
		{name: "v4 multicast", cfg: Config{Source: a("192.0.2.1")}},
		{name: "v4 unicast", cfg: Config{Source: a("192.0.2.1"), Unicast: true, Peers: []netip.Addr{a("192.0.2.2")}}},
		{name: "v4 unicast no peers", cfg: Config{Source: a("192.0.2.1"), Unicast: true}},
		{name: "v6 multicast link-local", cfg: Config{Source: a("fe80::1")}, ipv6: true},
		{name: "v6 unicast global", cfg: Config{Source: a("2001:db8::1"), Unicast: true, Peers: []netip.Addr{a("2001:db8::2")}}, ipv6: true},
		{name: "v6 unicast link-local peer with zone", cfg: Config{Source: a("fe80::1"), Unicast: true, Peers: []netip.Addr{a("fe80::2%eth0")}}, ipv6: true},
		{name: "no source", cfg: Config{}, wantErr: "source address required"},
		{name: "v6 source on v4", cfg: Config{Source: a("2001:db8::1")}, wantErr: "is not IPv4"},
		{name: "mapped source", cfg: Config{Source: a("::ffff:192.0.2.1")}, wantErr: "is not IPv4"},
		{name: "v4 source on v6", cfg: Config{Source: a("192.0.2.1")}, ipv6: true, wantErr: "is not IPv6"},
		{name: "multicast source", cfg: Config{Source: a("224.0.0.18")}, wantErr: "not a unicast"},
		{name: "unspecified source", cfg: Config{Source: a("0.0.0.0")}, wantErr: "not a unicast"},
		{name: "zoned source", cfg: Config{Source: a("fe80::1%eth0")}, ipv6: true, wantErr: "no zone"},
		{name: "v6 multicast global source", cfg: Config{Source: a("2001:db8::1")}, ipv6: true, wantErr: "must be link-local"},
		{name: "peer family", cfg: Config{Source: a("192.0.2.1"), Unicast: true, Peers: []netip.Addr{a("2001:db8::2")}}, wantErr: "peer 2001:db8::2 is not IPv4"},
		{name: "multicast peer", cfg: Config{Source: a("192.0.2.1"), Unicast: true, Peers: []netip.Addr{a("224.0.0.18")}}, wantErr: "not a unicast"},
		{name: "self peer", cfg: Config{Source: a("192.0.2.1"), Unicast: true, Peers: []netip.Addr{a("192.0.2.1")}}, wantErr: "own source"},
		{name: "invalid peer", cfg: Config{Source: a("192.0.2.1"), Unicast: true, Peers: []netip.Addr{{}}}, wantErr: "invalid peer"},
		{name: "peers ignored in multicast", cfg: Config{Source: a("192.0.2.1"), Peers: []netip.Addr{{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate(tt.ipv6)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate = %v, want error containing %q", err, tt.wantErr)
			case err != nil && !strings.HasPrefix(err.Error(), "socket: "):
				t.Fatalf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestWriteToRejectsOtherDestinations(t *testing.T) {
	a := netip.MustParseAddr
	// No socket is needed: the destination check comes first.
	mc := &Conn{cfg: Config{Source: a("192.0.2.1")}, group: a("224.0.0.18")}
	if err := mc.WriteTo([]byte{0x21}, a("192.0.2.2")); err == nil || !strings.Contains(err.Error(), "not the group") {
		t.Errorf("multicast WriteTo unicast dst = %v", err)
	}
	uc := &Conn{cfg: Config{Source: a("192.0.2.1"), Unicast: true, Peers: []netip.Addr{a("192.0.2.2")}}, group: a("224.0.0.18")}
	if err := uc.WriteTo([]byte{0x21}, a("192.0.2.3")); err == nil || !strings.Contains(err.Error(), "not a unicast peer") {
		t.Errorf("unicast WriteTo non-peer = %v", err)
	}
	if err := uc.WriteTo([]byte{0x21}, a("224.0.0.18")); err == nil {
		t.Error("unicast WriteTo group succeeded")
	}
}
