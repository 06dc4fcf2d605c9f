package vrrp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
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

	// The filters carry the addresses of the keepalived configurations
	// that sent the packets above.
	a4 := func(last ...byte) []netip.Addr {
		var out []netip.Addr
		for _, b := range last {
			out = append(out, netip.AddrFrom4([4]byte{192, 0, 2, b}))
		}
		return out
	}
	f2 := Filter{Version: Version2, VRID: 51, Interval: time.Second, AuthType: AuthPassword, AuthData: pkPassword("nlbpass1"), Addresses: a4(100, 101)}
	f2none := Filter{Version: Version2, VRID: 51, Interval: time.Second, Addresses: a4(100)}
	f3 := Filter{Version: Version3, VRID: 51, Interval: time.Second, Addresses: a4(100, 101, 102)}
	f3v6 := Filter{Version: Version3, VRID: 51, Interval: time.Second,
		Addresses: []netip.Addr{netip.MustParseAddr("2001:db8::100"), netip.MustParseAddr("2001:db8::101")}}

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
	// advert encodes a valid advert on VRID 51, interval 1 s (v2 with
	// the password nlbpass1), listing addrs, from info.Src to info.Dst.
	advert := func(v Version, prio uint8, info PacketInfo, addrs []netip.Addr) []byte {
		ad := &Advertisement{Version: v, VRID: 51, Priority: prio, Interval: time.Second, Addresses: addrs}
		if v == Version2 {
			ad.AuthType, ad.AuthData = AuthPassword, pkPassword("nlbpass1")
		}
		b, err := ad.Marshal(info.Src, info.Dst, ChecksumPseudoHeader)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// Another cluster on the same segment with k0s's defaults: VRID 51,
	// the same password, another VIP, and as the address owner.
	foreign4, foreign6 := a4(200), []netip.Addr{netip.MustParseAddr("2001:db8::200")}
	ours4 := with(f2, func(f *Filter) { f.Addresses = a4(100) })

	tests := []struct {
		name   string
		f      Filter
		info   PacketInfo
		b      []byte
		reason DropReason // "" means accepted
		detail string     // in the error message, if set
	}{
		// Accepted.
		{name: "v2 PASS", f: f2, info: mc4, b: v2pass},
		{name: "v2 PASS with padding", f: f2, info: mc4, b: append(bytes.Clone(v2pass), 0, 0)},
		{name: "v2 no auth", f: f2none, info: uc4, b: v2none},
		{name: "v2 AuthNone ignores auth data", f: with(f2none, func(f *Filter) { f.Addresses = a4(100, 101) }), info: mc4, b: set(v2pass, 4, 0, mc4)},
		{name: "v3 IPv4, interval mismatch accepted", f: f3, info: mc4, b: v3ipv4},
		{name: "v3 IPv4 message-only form", f: f3, info: mc4, b: pkWithChecksum(v3ipv4, pkSrc4, pkGroup4, ChecksumMessageOnly)},
		{name: "v3 IPv6, first address global (keepalived)", f: f3v6, info: mc6, b: v3ipv6},
		{name: "unknown TTL", f: f2, info: ttl(mc4, -1), b: v2pass},
		{name: "unicast ignores TTL", f: with(f2none, func(f *Filter) { f.Unicast, f.Peers = true, []netip.Addr{pkSrc4} }), info: ttl(uc4, 64), b: v2none},
		{name: "unicast peer among several", f: with(f2none, func(f *Filter) {
			f.Unicast, f.Peers = true, []netip.Addr{netip.MustParseAddr("192.0.2.9"), pkSrc4}
		}), info: uc4, b: v2none},
		{name: "unicast peer mapped source", f: with(f2none, func(f *Filter) { f.Unicast, f.Peers = true, []netip.Addr{pkSrc4} }),
			info: PacketInfo{Src: netip.AddrFrom16(pkSrc4.As16()), Dst: pkPeer4, TTL: 255}, b: v2none},
		{name: "peers ignored in multicast mode", f: with(f2, func(f *Filter) { f.Peers = []netip.Addr{pkPeer4} }), info: mc4, b: v2pass},
		{name: "v2 our addresses in another order", f: with(f2, func(f *Filter) { f.Addresses = a4(101, 100) }), info: mc4, b: v2pass},
		{name: "v2 owner of our address", f: ours4, info: mc4, b: advert(Version2, 255, mc4, a4(100))},
		{name: "v3 IPv4 our addresses in another order", f: with(f3, func(f *Filter) { f.Addresses = a4(102, 100, 101) }), info: mc4, b: v3ipv4},
		{name: "v3 IPv6 our addresses in another order", f: with(f3v6, func(f *Filter) { f.Addresses = []netip.Addr{f.Addresses[1], f.Addresses[0]} }), info: mc6, b: v3ipv6},
		{name: "v3 IPv6 zone ignored", f: with(f3v6, func(f *Filter) { f.Addresses = []netip.Addr{f.Addresses[0].WithZone("eth0"), f.Addresses[1]} }), info: mc6, b: v3ipv6},
		{name: "IPv4-mapped filter address", f: with(ours4, func(f *Filter) { f.Addresses = []netip.Addr{netip.AddrFrom16(a4(100)[0].As16())} }), info: mc4, b: advert(Version2, 100, mc4, a4(100))},

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
		// RFC 3768 §7.1 MAY, done as keepalived 2.2.7 does: the address
		// list must be ours, whatever the priority.
		{name: "v2 foreign address at priority 255", f: ours4, info: mc4, b: advert(Version2, 255, mc4, foreign4), reason: DropAddresses,
			detail: "from 192.0.2.1 (priority 255): our address 192.0.2.100 missing from [192.0.2.200]"},
		{name: "v2 foreign address at priority 100", f: ours4, info: mc4, b: advert(Version2, 100, mc4, foreign4), reason: DropAddresses},
		{name: "v2 foreign address at priority 0", f: ours4, info: mc4, b: advert(Version2, 0, mc4, foreign4), reason: DropAddresses},
		{name: "v2 subset of ours", f: f2, info: mc4, b: advert(Version2, 255, mc4, a4(100)), reason: DropAddresses,
			detail: "1 addresses [192.0.2.100], want 2"},
		{name: "v2 superset of ours", f: ours4, info: mc4, b: v2pass, reason: DropAddresses, detail: "2 addresses"},
		{name: "v2 same count, one foreign", f: f2, info: mc4, b: advert(Version2, 200, mc4, a4(100, 200)), reason: DropAddresses,
			detail: "192.0.2.101 missing"},
		{name: "v2 duplicate in the advert", f: f2, info: mc4, b: advert(Version2, 200, mc4, a4(100, 100)), reason: DropAddresses},
		{name: "v2 duplicate in ours", f: with(f2, func(f *Filter) { f.Addresses = a4(100, 100) }), info: mc4, b: advert(Version2, 200, mc4, a4(100, 200)), reason: DropAddresses,
			detail: "192.0.2.200 is not ours"},
		{name: "v2 filter without addresses", f: with(f2, func(f *Filter) { f.Addresses = nil }), info: mc4, b: v2pass, reason: DropAddresses},
		{name: "v2 unicast foreign address", f: with(f2none, func(f *Filter) { f.Unicast, f.Peers, f.Addresses = true, []netip.Addr{pkSrc4}, a4(101) }), info: uc4, b: v2none, reason: DropAddresses},
		{name: "v3 IPv4 foreign address at priority 255", f: with(f3, func(f *Filter) { f.Addresses = a4(100) }), info: mc4, b: advert(Version3, 255, mc4, foreign4), reason: DropAddresses},
		{name: "v3 IPv4 subset of ours", f: f3, info: mc4, b: advert(Version3, 150, mc4, a4(100, 101)), reason: DropAddresses},
		{name: "v3 IPv4 superset of ours", f: with(f3, func(f *Filter) { f.Addresses = a4(100, 101) }), info: mc4, b: v3ipv4, reason: DropAddresses},
		{name: "v3 IPv6 foreign address at priority 255", f: with(f3v6, func(f *Filter) { f.Addresses = f.Addresses[:1] }), info: mc6, b: advert(Version3, 255, mc6, foreign6), reason: DropAddresses,
			detail: "priority 255): our address 2001:db8::100 missing from [2001:db8::200]"},
		{name: "v3 IPv6 superset of ours", f: with(f3v6, func(f *Filter) { f.Addresses = f.Addresses[:1] }), info: mc6, b: v3ipv6, reason: DropAddresses},
		{name: "v3 IPv6 filter, IPv4 addresses", f: with(f3v6, func(f *Filter) { f.Addresses = a4(100, 101) }), info: mc6, b: v3ipv6, reason: DropAddresses},
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
		{name: "VRID before addresses", f: with(ours4, func(f *Filter) { f.VRID = 9 }), info: mc4, b: advert(Version2, 255, mc4, foreign4), reason: DropVRID},
		{name: "auth before addresses", f: with(ours4, func(f *Filter) { f.AuthData = pkPassword("other") }), info: mc4, b: advert(Version2, 255, mc4, foreign4), reason: DropAuth},
		{name: "interval before addresses", f: with(ours4, func(f *Filter) { f.Interval = 2 * time.Second }), info: mc4, b: advert(Version2, 255, mc4, foreign4), reason: DropInterval},
		{name: "addresses before peer", f: with(ours4, func(f *Filter) { f.Unicast = true }), info: uc4, b: advert(Version2, 255, uc4, foreign4), reason: DropAddresses},
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
			if msg := err.Error(); !strings.Contains(msg, tt.detail) {
				t.Errorf("message %q: want %q in it", msg, tt.detail)
			}
		})
	}
}

func TestFilterGoldenKeepalived(t *testing.T) {
	// Every keepalived capture passes the filter its configuration implies,
	// the virtual addresses of its keepalived.conf included, in any order.
	for _, p := range readGolden(t) {
		t.Run(p.file, func(t *testing.T) {
			vips := goldenVIPs(t, strings.TrimSuffix(p.file, ".txt")+".conf")
			slices.Reverse(vips)
			f := Filter{Version: Version(p.payload[0] >> 4), VRID: 51, Interval: time.Second, Addresses: vips}
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
			// Without one of them, or with another added, it is dropped.
			for _, vips := range [][]netip.Addr{vips[1:], append(slices.Clone(vips), vips[0].Next())} {
				f.Addresses = vips
				if _, err := f.Check(info, p.payload); ReasonOf(err) != DropAddresses {
					t.Errorf("Check with addresses %v: %v, want a drop (%s)", vips, err, DropAddresses)
				}
			}
		})
	}
}

// goldenVIPs reads the virtual_ipaddress block of a keepalived.conf in
// testdata/golden.
func goldenVIPs(t testing.TB, conf string) []netip.Addr {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", conf))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(b), "virtual_ipaddress {")
	block, _, ok2 := strings.Cut(block, "}")
	if !ok || !ok2 {
		t.Fatalf("%s: no virtual_ipaddress block", conf)
	}
	var out []netip.Addr
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		pfx, err := netip.ParsePrefix(strings.Fields(line)[0])
		if err != nil {
			t.Fatalf("%s: %v", conf, err)
		}
		out = append(out, pfx.Addr())
	}
	return out
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
