package vrrp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestFilterCheck(t *testing.T) {
	// Packets from keepalived 2.2.7 (testdata/golden).
	v2pass := pkHex(t, "2133960201011d7dc0000264c00002656e6c627061737331")
	v2none := pkHex(t, "2133960100018665c00002640000000000000000") // unicast to 192.0.2.2
	v3ipv4 := pkHex(t, "3133960300324ecdc0000264c0000265c0000266") // 50 cs
	v3ipv6 := pkHex(t, "313396020064032e20010db800000000000000000000010020010db8000000000000000000000101")
	v3ipv6Src := netip.MustParseAddr("fe80::402d:ffff:fe00:9b68")

	mc4 := PacketInfo{Src: pkSrc4, Dst: pkGroup4, TTL: 255, IfIndex: 3}
	uc4 := PacketInfo{Src: pkSrc4, Dst: pkPeer4, TTL: 255, IfIndex: 3}
	mc6 := PacketInfo{Src: v3ipv6Src, Dst: pkGroup6, TTL: 255, IfIndex: 3}

	f2 := Filter{Version: Version2, VRID: 51, Interval: time.Second, AuthType: AuthPassword, AuthData: pkPassword("nlbpass1")}
	f2none := Filter{Version: Version2, VRID: 51, Interval: time.Second}
	f3 := Filter{Version: Version3, VRID: 51, Interval: time.Second}

	with := func(f Filter, mod func(*Filter)) Filter {
		mod(&f)
		return f
	}
	ttl := func(info PacketInfo, ttl int) PacketInfo {
		info.TTL = ttl
		return info
	}
	set := func(b []byte, i int, v byte, info PacketInfo) []byte {
		b = bytes.Clone(b)
		b[i] = v
		return pkWithChecksum(b, info.Src, info.Dst, ChecksumPseudoHeader)
	}

	tests := []struct {
		name   string
		f      Filter
		info   PacketInfo
		b      []byte
		reason DropReason // "" means accepted
	}{
		// Accepted.
		{name: "v2 PASS", f: f2, info: mc4, b: v2pass},
		{name: "v2 PASS with padding", f: f2, info: mc4, b: append(bytes.Clone(v2pass), 0, 0)},
		{name: "v2 no auth", f: f2none, info: uc4, b: v2none},
		{name: "v2 AuthNone ignores auth data", f: f2none, info: mc4, b: set(v2pass, 4, 0, mc4)},
		{name: "v3 IPv4, interval mismatch accepted", f: f3, info: mc4, b: v3ipv4},
		{name: "v3 IPv4 message-only form", f: f3, info: mc4, b: pkWithChecksum(v3ipv4, pkSrc4, pkGroup4, ChecksumMessageOnly)},
		{name: "v3 IPv6, first address global (keepalived)", f: f3, info: mc6, b: v3ipv6},
		{name: "unknown TTL", f: f2, info: ttl(mc4, -1), b: v2pass},
		{name: "unicast ignores TTL", f: with(f2none, func(f *Filter) { f.Unicast, f.Peers = true, []netip.Addr{pkSrc4} }), info: ttl(uc4, 64), b: v2none},
		{name: "unicast peer among several", f: with(f2none, func(f *Filter) {
			f.Unicast, f.Peers = true, []netip.Addr{netip.MustParseAddr("192.0.2.9"), pkSrc4}
		}), info: uc4, b: v2none},
		{name: "unicast peer mapped source", f: with(f2none, func(f *Filter) { f.Unicast, f.Peers = true, []netip.Addr{pkSrc4} }),
			info: PacketInfo{Src: netip.AddrFrom16(pkSrc4.As16()), Dst: pkPeer4, TTL: 255}, b: v2none},
		{name: "peers ignored in multicast mode", f: with(f2, func(f *Filter) { f.Peers = []netip.Addr{pkPeer4} }), info: mc4, b: v2pass},

		// Dropped, one rule at a time.
		{name: "empty", f: f2, info: mc4, b: nil, reason: DropShort},
		{name: "header only", f: f2, info: mc4, b: v2pass[:8], reason: DropShort},
		{name: "v2 missing auth data", f: f2, info: mc4, b: v2pass[:16], reason: DropShort},
		{name: "TTL 254", f: f2, info: ttl(mc4, 254), b: v2pass, reason: DropTTL},
		{name: "TTL 1", f: f3, info: ttl(mc4, 1), b: v3ipv4, reason: DropTTL},
		{name: "hop limit 64", f: f3, info: ttl(mc6, 64), b: v3ipv6, reason: DropTTL},
		{name: "TTL 0", f: f2, info: ttl(mc4, 0), b: v2pass, reason: DropTTL},
		{name: "v3 filter, v2 packet", f: f3, info: mc4, b: v2pass, reason: DropVersion},
		{name: "v2 filter, v3 packet", f: f2, info: mc4, b: v3ipv4, reason: DropVersion},
		{name: "version 4", f: f3, info: mc4, b: set(v3ipv4, 0, 0x41, mc4), reason: DropVersion},
		{name: "v2 over IPv6", f: f2, info: mc6, b: v2pass, reason: DropVersion},
		{name: "type 2", f: f3, info: mc4, b: set(v3ipv4, 0, 0x32, mc4), reason: DropType},
		{name: "type 0", f: f2, info: mc4, b: set(v2pass, 0, 0x20, mc4), reason: DropType},
		{name: "v2 corrupted", f: f2, info: mc4, b: func() []byte { b := bytes.Clone(v2pass); b[2]++; return b }(), reason: DropChecksum},
		{name: "v3 from another source", f: f3, info: PacketInfo{Src: pkPeer4, Dst: pkGroup4, TTL: 255}, b: v3ipv4, reason: DropChecksum},
		{name: "v3 IPv6 corrupted address", f: f3, info: mc6, b: func() []byte { b := bytes.Clone(v3ipv6); b[20] ^= 1; return b }(), reason: DropChecksum},
		{name: "v3 unknown destination", f: f3, info: PacketInfo{Src: pkSrc4, TTL: 255}, b: v3ipv4, reason: DropMalformed},
		{name: "VRID 52", f: with(f2, func(f *Filter) { f.VRID = 52 }), info: mc4, b: v2pass, reason: DropVRID},
		{name: "v3 VRID 1", f: with(f3, func(f *Filter) { f.VRID = 1 }), info: mc6, b: v3ipv6, reason: DropVRID},
		{name: "filter VRID 0", f: with(f3, func(f *Filter) { f.VRID = 0 }), info: mc4, b: v3ipv4, reason: DropVRID},
		{name: "wrong password", f: with(f2, func(f *Filter) { f.AuthData = pkPassword("nlbpass2") }), info: mc4, b: v2pass, reason: DropAuth},
		{name: "password prefix", f: with(f2, func(f *Filter) { f.AuthData = pkPassword("nlbpass") }), info: mc4, b: v2pass, reason: DropAuth},
		{name: "expected PASS, got none", f: f2, info: uc4, b: v2none, reason: DropAuth},
		{name: "expected none, got PASS", f: f2none, info: mc4, b: v2pass, reason: DropAuth},
		{name: "AH not supported", f: with(f2, func(f *Filter) { f.AuthType = 2 }), info: mc4, b: set(v2pass, 4, 2, mc4), reason: DropAuth},
		{name: "v2 interval 2s", f: with(f2, func(f *Filter) { f.Interval = 2 * time.Second }), info: mc4, b: v2pass, reason: DropInterval},
		{name: "v2 advert interval 3s", f: f2, info: mc4, b: set(v2pass, 5, 3, mc4), reason: DropInterval},
		{name: "v2 count 0", f: f2, info: mc4, b: set(v2pass, 3, 0, mc4), reason: DropNoAddresses},
		{name: "v3 count 0", f: f3, info: mc4, b: set(v3ipv4, 3, 0, mc4), reason: DropNoAddresses},
		{name: "v3 Max Adver Int 0", f: f3, info: mc4, b: set(set(v3ipv4, 4, 0, mc4), 5, 0, mc4), reason: DropMalformed},
		{name: "v2 Adver Int 0", f: f2, info: mc4, b: set(v2pass, 5, 0, mc4), reason: DropMalformed},
		{name: "unicast source not a peer", f: with(f2none, func(f *Filter) { f.Unicast, f.Peers = true, []netip.Addr{pkPeer4} }), info: uc4, b: v2none, reason: DropPeer},
		{name: "unicast without peers", f: with(f2none, func(f *Filter) { f.Unicast = true }), info: uc4, b: v2none, reason: DropPeer},
		{name: "unicast unknown source", f: with(f2none, func(f *Filter) { f.Unicast, f.Peers = true, []netip.Addr{{}} }),
			info: PacketInfo{Dst: pkPeer4, TTL: 255}, b: v2none, reason: DropPeer},

		// Order: the earlier rule names the reason.
		{name: "TTL before version", f: f3, info: ttl(mc4, 1), b: v2pass, reason: DropTTL},
		{name: "version before type", f: f3, info: mc4, b: set(v2pass, 0, 0x22, mc4), reason: DropVersion},
		{name: "checksum before VRID", f: with(f2, func(f *Filter) { f.VRID = 9 }), info: mc4, b: func() []byte { b := bytes.Clone(v2pass); b[7]++; return b }(), reason: DropChecksum},
		{name: "VRID before auth", f: with(f2, func(f *Filter) { f.VRID = 9; f.AuthData = pkPassword("other") }), info: mc4, b: v2pass, reason: DropVRID},
		{name: "auth before interval", f: with(f2, func(f *Filter) { f.Interval = 5 * time.Second; f.AuthData = pkPassword("other") }), info: mc4, b: v2pass, reason: DropAuth},
		{name: "interval before peer", f: with(f2none, func(f *Filter) { f.Unicast = true; f.Interval = 5 * time.Second }), info: uc4, b: v2none, reason: DropInterval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := bytes.Clone(tt.b)
			a, err := tt.f.Check(tt.info, tt.b)
			if !bytes.Equal(orig, tt.b) {
				t.Errorf("Check modified its input")
			}
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if a == nil || a.VRID != tt.f.VRID || a.Version != tt.f.Version {
					t.Fatalf("Check returned %+v", a)
				}
				return
			}
			if a != nil {
				t.Errorf("Check returned an advertisement with an error: %+v", a)
			}
			var de *DropError
			if !errors.As(err, &de) {
				t.Fatalf("Check: want *DropError, got %T %v", err, err)
			}
			if want, got := tt.reason, de.Reason; want != got {
				t.Errorf("reason: want %q, got %q (%v)", want, got, err)
			}
			if want, got := tt.reason, ReasonOf(err); want != got {
				t.Errorf("ReasonOf: want %q, got %q", want, got)
			}
			prefix := fmt.Sprintf("vrrp: dropped advertisement (%s): ", tt.reason)
			if msg := err.Error(); !strings.HasPrefix(msg, prefix) || len(msg) == len(prefix) {
				t.Errorf("message %q: want prefix %q and a detail", msg, prefix)
			}
		})
	}
}

func TestFilterGoldenKeepalived(t *testing.T) {
	// Every keepalived capture passes the filter its configuration implies.
	for _, p := range readGolden(t) {
		t.Run(p.file, func(t *testing.T) {
			f := Filter{Version: Version(p.payload[0] >> 4), VRID: 51, Interval: time.Second}
			if strings.Contains(p.file, "pass") {
				f.AuthType, f.AuthData = AuthPassword, pkPassword("nlbpass1")
			}
			if strings.Contains(p.file, "unicast") {
				f.Unicast, f.Peers = true, []netip.Addr{pkSrc4}
			}
			info := PacketInfo{Src: p.src, Dst: p.dst, TTL: p.ttl}
			if _, err := f.Check(info, p.payload); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

func TestDropError(t *testing.T) {
	inner := fmt.Errorf("3 bytes: %w", io.ErrUnexpectedEOF)
	err := error(&DropError{Reason: DropShort, Err: inner})
	if want, got := "vrrp: dropped advertisement (short): 3 bytes: unexpected EOF", err.Error(); want != got {
		t.Errorf("Error: want %q, got %q", want, got)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Error("Unwrap does not reach the detail")
	}
	if want, got := "vrrp: dropped advertisement (ttl)", (&DropError{Reason: DropTTL}).Error(); want != got {
		t.Errorf("Error without detail: want %q, got %q", want, got)
	}
	wrapped := fmt.Errorf("instance VI_1: %w", err)
	for _, tt := range []struct {
		err  error
		want DropReason
	}{
		{err: err, want: DropShort},
		{err: wrapped, want: DropShort},
		{err: nil, want: ""},
		{err: io.EOF, want: ""},
	} {
		if got := ReasonOf(tt.err); got != tt.want {
			t.Errorf("ReasonOf(%v): want %q, got %q", tt.err, tt.want, got)
		}
	}
}
