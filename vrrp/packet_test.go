package vrrp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// pkAddrCmp lets cmp compare netip.Addr, whose fields are unexported.
var pkAddrCmp = cmp.Comparer(func(x, y netip.Addr) bool { return x == y })

// Addresses shared by the tests; all from the documentation ranges.
var (
	pkSrc4   = netip.MustParseAddr("192.0.2.1")
	pkPeer4  = netip.MustParseAddr("192.0.2.2")
	pkGroup4 = MulticastGroup(false)
	pkSrc6   = netip.MustParseAddr("fe80::1")
	pkGroup6 = MulticastGroup(true)
	pkVIP4   = netip.MustParseAddr("192.0.2.100")
	pkVIP4b  = netip.MustParseAddr("192.0.2.101")
	pkVIP6   = netip.MustParseAddr("2001:db8::100")
	pkVIP6LL = netip.MustParseAddr("fe80::51")
)

func pkHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func pkPassword(s string) [8]byte {
	var p [8]byte
	copy(p[:], s)
	return p
}

func TestMarshalParseRoundTrip(t *testing.T) {
	many := make([]netip.Addr, 255)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
	}
	many6 := make([]netip.Addr, 255)
	for i := range many6 {
		many6[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)})
	}
	tests := []struct {
		name     string
		a        Advertisement
		src, dst netip.Addr
		form     ChecksumForm
		wantLen  int
	}{
		{
			name: "v2 PASS",
			a: Advertisement{Version: Version2, VRID: 51, Priority: 150, Interval: time.Second,
				AuthType: AuthPassword, AuthData: pkPassword("nlbpass1"), Addresses: []netip.Addr{pkVIP4, pkVIP4b}},
			src: pkSrc4, dst: pkGroup4, wantLen: 8 + 8 + 8,
		},
		{
			name:    "v2 no auth, zero src and dst",
			a:       Advertisement{Version: Version2, VRID: 1, Priority: 255, Interval: 255 * time.Second, Addresses: []netip.Addr{pkVIP4}},
			wantLen: 20,
		},
		{
			name: "v2 release, 255 addresses",
			a:    Advertisement{Version: Version2, VRID: 255, Priority: 0, Interval: time.Second, Addresses: many},
			src:  pkSrc4, dst: pkGroup4, wantLen: 8 + 4*255 + 8,
		},
		{
			name: "v2 unknown auth type kept",
			a: Advertisement{Version: Version2, VRID: 9, Priority: 100, Interval: 3 * time.Second,
				AuthType: 7, AuthData: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}, Addresses: []netip.Addr{pkVIP4}},
			src: pkSrc4, dst: pkGroup4, wantLen: 20,
		},
		{
			name: "v3 IPv4 pseudo-header",
			a:    Advertisement{Version: Version3, VRID: 51, Priority: 100, Interval: 500 * time.Millisecond, Addresses: []netip.Addr{pkVIP4, pkVIP4b}},
			src:  pkSrc4, dst: pkGroup4, form: ChecksumPseudoHeader, wantLen: 16,
		},
		{
			name: "v3 IPv4 message only",
			a:    Advertisement{Version: Version3, VRID: 51, Priority: 100, Interval: 40950 * time.Millisecond, Addresses: []netip.Addr{pkVIP4}},
			src:  pkSrc4, dst: pkGroup4, form: ChecksumMessageOnly, wantLen: 12,
		},
		{
			name: "v3 IPv4 unicast, mapped source",
			a:    Advertisement{Version: Version3, VRID: 2, Priority: 1, Interval: 10 * time.Millisecond, Addresses: many},
			src:  netip.AddrFrom16(pkSrc4.As16()), dst: pkPeer4, wantLen: 8 + 4*255,
		},
		{
			name: "v3 IPv6",
			a:    Advertisement{Version: Version3, VRID: 51, Priority: 254, Interval: time.Second, Addresses: []netip.Addr{pkVIP6LL, pkVIP6}},
			src:  pkSrc6, dst: pkGroup6, wantLen: 8 + 32,
		},
		{
			name: "v3 IPv6 form ignored, 255 addresses",
			a:    Advertisement{Version: Version3, VRID: 51, Priority: 254, Interval: time.Second, Addresses: many6},
			src:  pkSrc6, dst: pkGroup6, form: ChecksumMessageOnly, wantLen: 8 + 16*255,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.a.Marshal(tt.src, tt.dst, tt.form)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if want, got := tt.wantLen, len(b); want != got {
				t.Fatalf("length: want %d, got %d", want, got)
			}
			if want, got := byte(tt.a.Version)<<4|1, b[0]; want != got {
				t.Errorf("version/type byte: want %#x, got %#x", want, got)
			}
			// The checksum must verify in exactly the form asked for.
			src, dst := tt.src.Unmap(), tt.dst.Unmap()
			if !verifyChecksum(tt.a.Version, b, src, dst, tt.form) {
				t.Errorf("checksum %#04x does not verify in form %d", binary.BigEndian.Uint16(b[6:]), tt.form)
			}
			if tt.a.Version == Version3 && src.Is4() {
				other := ChecksumPseudoHeader + ChecksumMessageOnly - tt.form
				if verifyChecksum(tt.a.Version, b, src, dst, other) {
					t.Errorf("checksum also verifies in form %d", other)
				}
			}
			got, err := ParseAdvertisement(b, tt.src, tt.dst)
			if err != nil {
				t.Fatalf("ParseAdvertisement: %v", err)
			}
			if diff := cmp.Diff(&tt.a, got, pkAddrCmp); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}

			// AppendMarshal appends after existing bytes, same encoding.
			prefix := []byte{0xde, 0xad}
			ab, err := tt.a.AppendMarshal(prefix, tt.src, tt.dst, tt.form)
			if err != nil {
				t.Fatalf("AppendMarshal: %v", err)
			}
			if !bytes.Equal(ab[:2], prefix) || !bytes.Equal(ab[2:], b) {
				t.Errorf("AppendMarshal: want %x + %x, got %x", prefix, b, ab)
			}
		})
	}
}

func TestAppendMarshalNoAlloc(t *testing.T) {
	for _, a := range []Advertisement{
		{Version: Version2, VRID: 51, Priority: 100, Interval: time.Second, AuthType: AuthPassword, AuthData: pkPassword("x"), Addresses: []netip.Addr{pkVIP4, pkVIP4b}},
		{Version: Version3, VRID: 51, Priority: 100, Interval: time.Second, Addresses: []netip.Addr{pkVIP6LL, pkVIP6}},
	} {
		src, dst := pkSrc4, pkGroup4
		if a.Addresses[0].Is6() {
			src, dst = pkSrc6, pkGroup6
		}
		buf := make([]byte, 0, 64)
		allocs := testing.AllocsPerRun(100, func() {
			var err error
			if buf, err = a.AppendMarshal(buf[:0], src, dst, ChecksumPseudoHeader); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("VRRPv%d AppendMarshal: %v allocations per run, want 0", a.Version, allocs)
		}
	}
}

func TestMarshalErrors(t *testing.T) {
	v2 := func(mod func(*Advertisement)) *Advertisement {
		a := &Advertisement{Version: Version2, VRID: 1, Priority: 100, Interval: time.Second, Addresses: []netip.Addr{pkVIP4}}
		mod(a)
		return a
	}
	v3 := func(mod func(*Advertisement)) *Advertisement {
		a := &Advertisement{Version: Version3, VRID: 1, Priority: 100, Interval: time.Second, Addresses: []netip.Addr{pkVIP4}}
		mod(a)
		return a
	}
	tooMany := make([]netip.Addr, 256)
	for i := range tooMany {
		tooMany[i] = pkVIP4
	}
	tests := []struct {
		name     string
		a        *Advertisement
		src, dst netip.Addr
		form     ChecksumForm
	}{
		{name: "nil advertisement", a: nil, src: pkSrc4, dst: pkGroup4},
		{name: "version 0", a: v2(func(a *Advertisement) { a.Version = 0 }), src: pkSrc4, dst: pkGroup4},
		{name: "version 1", a: v2(func(a *Advertisement) { a.Version = 1 }), src: pkSrc4, dst: pkGroup4},
		{name: "version 4", a: v3(func(a *Advertisement) { a.Version = 4 }), src: pkSrc4, dst: pkGroup4},
		{name: "VRID 0 v2", a: v2(func(a *Advertisement) { a.VRID = 0 }), src: pkSrc4, dst: pkGroup4},
		{name: "VRID 0 v3", a: v3(func(a *Advertisement) { a.VRID = 0 }), src: pkSrc4, dst: pkGroup4},
		{name: "no addresses", a: v2(func(a *Advertisement) { a.Addresses = nil }), src: pkSrc4, dst: pkGroup4},
		{name: "no addresses v3", a: v3(func(a *Advertisement) { a.Addresses = []netip.Addr{} }), src: pkSrc4, dst: pkGroup4},
		{name: "256 addresses", a: v2(func(a *Advertisement) { a.Addresses = tooMany }), src: pkSrc4, dst: pkGroup4},
		{name: "v2 IPv6 address", a: v2(func(a *Advertisement) { a.Addresses = []netip.Addr{pkVIP4, pkVIP6} }), src: pkSrc4, dst: pkGroup4},
		{name: "v2 zero address", a: v2(func(a *Advertisement) { a.Addresses = []netip.Addr{{}} }), src: pkSrc4, dst: pkGroup4},
		{name: "v2 over IPv6", a: v2(func(*Advertisement) {}), src: pkSrc6, dst: pkGroup6},
		{name: "v2 IPv6 destination", a: v2(func(*Advertisement) {}), src: pkSrc4, dst: pkGroup6},
		{name: "v2 interval 0", a: v2(func(a *Advertisement) { a.Interval = 0 }), src: pkSrc4, dst: pkGroup4},
		{name: "v2 interval 1.5s", a: v2(func(a *Advertisement) { a.Interval = 1500 * time.Millisecond }), src: pkSrc4, dst: pkGroup4},
		{name: "v2 interval 256s", a: v2(func(a *Advertisement) { a.Interval = 256 * time.Second }), src: pkSrc4, dst: pkGroup4},
		{name: "v2 interval negative", a: v2(func(a *Advertisement) { a.Interval = -time.Second }), src: pkSrc4, dst: pkGroup4},
		{name: "v3 IPv6 address over IPv4", a: v3(func(a *Advertisement) { a.Addresses = []netip.Addr{pkVIP6} }), src: pkSrc4, dst: pkGroup4},
		{name: "v3 IPv4 address over IPv6", a: v3(func(a *Advertisement) { a.Addresses = []netip.Addr{pkVIP6LL, pkVIP4} }), src: pkSrc6, dst: pkGroup6},
		{name: "v3 mixed src and dst", a: v3(func(*Advertisement) {}), src: pkSrc4, dst: pkGroup6},
		{name: "v3 no source", a: v3(func(*Advertisement) {}), dst: pkGroup4},
		{name: "v3 no destination", a: v3(func(*Advertisement) {}), src: pkSrc4},
		{name: "v3 unknown form", a: v3(func(*Advertisement) {}), src: pkSrc4, dst: pkGroup4, form: 9},
		{name: "v3 interval 0", a: v3(func(a *Advertisement) { a.Interval = 0 }), src: pkSrc4, dst: pkGroup4},
		{name: "v3 interval 5ms", a: v3(func(a *Advertisement) { a.Interval = 5 * time.Millisecond }), src: pkSrc4, dst: pkGroup4},
		{name: "v3 interval 15ms", a: v3(func(a *Advertisement) { a.Interval = 15 * time.Millisecond }), src: pkSrc4, dst: pkGroup4},
		{name: "v3 interval 40.96s", a: v3(func(a *Advertisement) { a.Interval = 40960 * time.Millisecond }), src: pkSrc4, dst: pkGroup4},
		{name: "v3 auth type", a: v3(func(a *Advertisement) { a.AuthType = AuthPassword }), src: pkSrc4, dst: pkGroup4},
		{name: "v3 auth data", a: v3(func(a *Advertisement) { a.AuthData = pkPassword("secret") }), src: pkSrc4, dst: pkGroup4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.a.Marshal(tt.src, tt.dst, tt.form)
			if err == nil {
				t.Fatalf("Marshal: want error, got %x", b)
			}
			if !strings.HasPrefix(err.Error(), "vrrp: ") {
				t.Errorf("error %q lacks the vrrp: prefix", err)
			}
			prefix := []byte{1, 2, 3}
			ab, err := tt.a.AppendMarshal(prefix, tt.src, tt.dst, tt.form)
			if err == nil {
				t.Fatal("AppendMarshal: want error")
			}
			if !bytes.Equal(ab, prefix) {
				t.Errorf("AppendMarshal changed b on error: %x", ab)
			}
		})
	}
}

// withChecksum returns b with its checksum recomputed for version v.
func pkWithChecksum(b []byte, src, dst netip.Addr, form ChecksumForm) []byte {
	b = bytes.Clone(b)
	binary.BigEndian.PutUint16(b[6:], checksum(Version(b[0]>>4), b, src, dst, form))
	return b
}

func TestParseErrors(t *testing.T) {
	v2 := pkHex(t, "2133960201011d7dc0000264c00002656e6c627061737331") // keepalived v2 PASS
	v3 := pkHex(t, "3133960300324ecdc0000264c0000265c0000266")         // keepalived v3 IPv4
	set := func(b []byte, i int, v byte) []byte {
		b = bytes.Clone(b)
		b[i] = v
		return b
	}
	tests := []struct {
		name     string
		b        []byte
		src, dst netip.Addr
		want     DropReason
		eof      bool
	}{
		{name: "empty", b: nil, src: pkSrc4, dst: pkGroup4, want: DropShort, eof: true},
		{name: "7 bytes", b: v2[:7], src: pkSrc4, dst: pkGroup4, want: DropShort, eof: true},
		{name: "v2 without auth data", b: v2[:16], src: pkSrc4, dst: pkGroup4, want: DropShort, eof: true},
		{name: "v2 truncated address", b: v2[:10], src: pkSrc4, dst: pkGroup4, want: DropShort, eof: true},
		{name: "v3 truncated address", b: v3[:19], src: pkSrc4, dst: pkGroup4, want: DropShort, eof: true},
		{name: "v3 IPv4 bytes from IPv6 source", b: v3, src: pkSrc6, dst: pkGroup6, want: DropShort, eof: true},
		{name: "version 0", b: pkWithChecksum(set(v2, 0, 0x01), pkSrc4, pkGroup4, 0), src: pkSrc4, dst: pkGroup4, want: DropVersion},
		{name: "version 1", b: pkWithChecksum(set(v2, 0, 0x11), pkSrc4, pkGroup4, 0), src: pkSrc4, dst: pkGroup4, want: DropVersion},
		{name: "version 4", b: pkWithChecksum(set(v2, 0, 0x41), pkSrc4, pkGroup4, 0), src: pkSrc4, dst: pkGroup4, want: DropVersion},
		{name: "v2 over IPv6", b: v2, src: pkSrc6, dst: pkGroup6, want: DropVersion},
		{name: "type 0", b: pkWithChecksum(set(v2, 0, 0x20), pkSrc4, pkGroup4, 0), src: pkSrc4, dst: pkGroup4, want: DropType},
		{name: "type 2", b: pkWithChecksum(set(v3, 0, 0x32), pkSrc4, pkGroup4, 0), src: pkSrc4, dst: pkGroup4, want: DropType},
		{name: "v2 count 0", b: pkWithChecksum(set(v2, 3, 0), pkSrc4, pkGroup4, 0), src: pkSrc4, dst: pkGroup4, want: DropNoAddresses},
		{name: "v3 count 0", b: pkWithChecksum(set(v3, 3, 0), pkSrc4, pkGroup4, 0), src: pkSrc4, dst: pkGroup4, want: DropNoAddresses},
		{name: "v2 bad checksum", b: set(v2, 7, v2[7]^1), src: pkSrc4, dst: pkGroup4, want: DropChecksum},
		{name: "v2 corrupted password", b: set(v2, 23, 0), src: pkSrc4, dst: pkGroup4, want: DropChecksum},
		{name: "v3 bad checksum", b: set(v3, 6, v3[6]^0x80), src: pkSrc4, dst: pkGroup4, want: DropChecksum},
		{name: "v3 wrong source", b: v3, src: pkPeer4, dst: pkGroup4, want: DropChecksum},
		{name: "v3 wrong destination", b: v3, src: pkSrc4, dst: pkPeer4, want: DropChecksum},
		{name: "v3 no source", b: v3, dst: pkGroup4, want: DropMalformed},
		{name: "v3 no destination", b: v3, src: pkSrc4, want: DropMalformed},
		{name: "v3 mixed families", b: v3, src: pkSrc4, dst: pkGroup6, want: DropMalformed},
		{name: "v2 VRID 0", b: pkWithChecksum(set(v2, 1, 0), pkSrc4, pkGroup4, 0), src: pkSrc4, dst: pkGroup4, want: DropVRID},
		{name: "v3 VRID 0", b: pkWithChecksum(set(v3, 1, 0), pkSrc4, pkGroup4, 0), src: pkSrc4, dst: pkGroup4, want: DropVRID},
		{name: "v2 interval 0", b: pkWithChecksum(set(v2, 5, 0), pkSrc4, pkGroup4, 0), src: pkSrc4, dst: pkGroup4, want: DropMalformed},
		{name: "v3 interval 0", b: pkWithChecksum(set(set(v3, 4, 0), 5, 0), pkSrc4, pkGroup4, 0), src: pkSrc4, dst: pkGroup4, want: DropMalformed},
		{name: "v3 interval 0, reserved bits set", b: pkWithChecksum(set(set(v3, 4, 0xf0), 5, 0), pkSrc4, pkGroup4, 0), src: pkSrc4, dst: pkGroup4, want: DropMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, reason, err := parse(tt.b, tt.src, tt.dst)
			if err == nil {
				t.Fatalf("parse: want error, got %+v", a)
			}
			if want, got := tt.want, reason; want != got {
				t.Errorf("reason: want %q, got %q (%v)", want, got, err)
			}
			a, err = ParseAdvertisement(tt.b, tt.src, tt.dst)
			if err == nil || a != nil {
				t.Fatalf("ParseAdvertisement: want error, got %+v, %v", a, err)
			}
			if !strings.HasPrefix(err.Error(), "vrrp: ") {
				t.Errorf("error %q lacks the vrrp: prefix", err)
			}
			if want, got := tt.eof, errors.Is(err, io.ErrUnexpectedEOF); want != got {
				t.Errorf("errors.Is(err, io.ErrUnexpectedEOF): want %v, got %v (%v)", want, got, err)
			}
		})
	}
}

func TestParseTolerates(t *testing.T) {
	v3 := pkHex(t, "3133960300324ecdc0000264c0000265c0000266") // keepalived v3 IPv4
	want, err := ParseAdvertisement(v3, pkSrc4, pkGroup4)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("Ethernet padding", func(t *testing.T) {
		// A 20-byte IPv4 header plus 20 bytes of VRRP pad to 46 bytes.
		padded := append(bytes.Clone(v3), 0, 0, 0, 0, 0, 0)
		got, err := ParseAdvertisement(padded, pkSrc4, pkGroup4)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, pkAddrCmp); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		// Non-zero padding is not covered by the checksum either.
		padded = append(bytes.Clone(v3), 0xff, 0x12, 0x34)
		if _, err := ParseAdvertisement(padded, pkSrc4, pkGroup4); err != nil {
			t.Errorf("non-zero padding: %v", err)
		}
	})

	t.Run("reserved bits", func(t *testing.T) {
		// RFC 5798 §5.2.5: the reserved bits are ignored on reception.
		b := bytes.Clone(v3)
		b[4] |= 0xa0
		b = pkWithChecksum(b, pkSrc4, pkGroup4, ChecksumPseudoHeader)
		got, err := ParseAdvertisement(b, pkSrc4, pkGroup4)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, pkAddrCmp); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})

	t.Run("message-only form", func(t *testing.T) {
		b := pkWithChecksum(v3, pkSrc4, pkGroup4, ChecksumMessageOnly)
		if bytes.Equal(b, v3) {
			t.Fatal("both checksum forms are equal for this vector; pick another")
		}
		got, err := ParseAdvertisement(b, pkSrc4, pkGroup4)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, pkAddrCmp); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		// Over IPv6 the message-only form is not accepted.
		b6, err := (&Advertisement{Version: Version3, VRID: 1, Priority: 1, Interval: time.Second, Addresses: []netip.Addr{pkVIP6LL}}).Marshal(pkSrc6, pkGroup6, 0)
		if err != nil {
			t.Fatal(err)
		}
		b6 = pkWithChecksum(b6, pkSrc6, pkGroup6, ChecksumPseudoHeader) // unchanged
		binary.BigEndian.PutUint16(b6[6:], fold(sum(0, append(bytes.Clone(b6[:6]), b6[8:]...))))
		if _, err := ParseAdvertisement(b6, pkSrc6, pkGroup6); err == nil {
			t.Error("IPv6 message-only checksum accepted")
		}
	})

	t.Run("v2 ignores a pseudo-header", func(t *testing.T) {
		// RFC 3768 §5.3.8: VRRPv2 never includes a pseudo-header, so a v2
		// message checksummed with one must fail.
		v2 := pkHex(t, "2133960201011d7dc0000264c00002656e6c627061737331")
		b := bytes.Clone(v2)
		s := pseudoHeaderSum(pkSrc4, pkGroup4, len(b))
		binary.BigEndian.PutUint16(b[6:], 0)
		binary.BigEndian.PutUint16(b[6:], fold(sum(s, b)))
		if _, err := ParseAdvertisement(b, pkSrc4, pkGroup4); err == nil {
			t.Error("v2 with pseudo-header checksum accepted")
		}
	})
}

// TestGoldenVectors decodes the public vectors of vrrp.md §4.3 and encodes
// them back to the same bytes.
func TestGoldenVectors(t *testing.T) {
	pppSrc := netip.MustParseAddr("192.168.0.30")
	tests := []struct {
		name     string
		payload  string
		src, dst netip.Addr
		form     ChecksumForm
		want     *Advertisement
		wantErr  DropReason
	}{
		{
			// google/gopacket layers/vrrp_test.go vrrpPacketPriority100,
			// a tcpdump capture with the 8 bytes of auth data.
			name:    "gopacket v2",
			payload: "210164010001ba52c0a800010000000000000000",
			src:     pppSrc, dst: pkGroup4,
			want: &Advertisement{Version: Version2, VRID: 1, Priority: 100, Interval: time.Second,
				Addresses: []netip.Addr{netip.MustParseAddr("192.168.0.1")}},
		},
		{
			// seladb/PcapPlusPlus VRRP-V2.dat omits the Authentication Data
			// that RFC 3768 §5.1 requires, so a receiver must drop it.
			name:    "PcapPlusPlus v2 without auth data",
			payload: "21016403000138fac0a80001c0a80002c0a80003",
			src:     pppSrc, dst: pkGroup4,
			wantErr: DropShort,
		},
		{
			// seladb/PcapPlusPlus VRRP-V3-IPv4.dat: IPv4 pseudo-header form.
			name:    "PcapPlusPlus v3 IPv4",
			payload: "310164020001484dc0a80001c0a80002",
			src:     pppSrc, dst: pkGroup4,
			want: &Advertisement{Version: Version3, VRID: 1, Priority: 100, Interval: 10 * time.Millisecond,
				Addresses: []netip.Addr{netip.MustParseAddr("192.168.0.1"), netip.MustParseAddr("192.168.0.2")}},
		},
		{
			// seladb/PcapPlusPlus VRRP-V3-IPv6.dat.
			name: "PcapPlusPlus v3 IPv6",
			payload: "3101640300011071" + "fe800000000000000000000000000254" +
				"20010db8000000000000000000000001" + "20010db8000000000000000000000002",
			src: netip.MustParseAddr("fe80::1"), dst: pkGroup6,
			want: &Advertisement{Version: Version3, VRID: 1, Priority: 100, Interval: 10 * time.Millisecond,
				Addresses: []netip.Addr{netip.MustParseAddr("fe80::254"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")}},
		},
		{
			// Trisia/govrrp vrrp_packet_test.go: IPv4 pseudo-header form.
			name:    "Trisia govrrp v3 IPv4",
			payload: "31f0640100640608c0a800e6",
			src:     netip.MustParseAddr("192.168.0.220"), dst: pkGroup4,
			want: &Advertisement{Version: Version3, VRID: 240, Priority: 100, Interval: time.Second,
				Addresses: []netip.Addr{netip.MustParseAddr("192.168.0.230")}},
		},
		{
			// The same in the RFC 9568 message-only form; vrrp.md §4.3
			// gives its checksum as 0xa81b.
			name:    "Trisia govrrp v3 IPv4 message only",
			payload: "31f064010064a81bc0a800e6",
			src:     netip.MustParseAddr("192.168.0.220"), dst: pkGroup4, form: ChecksumMessageOnly,
			want: &Advertisement{Version: Version3, VRID: 240, Priority: 100, Interval: time.Second,
				Addresses: []netip.Addr{netip.MustParseAddr("192.168.0.230")}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := pkHex(t, tt.payload)
			got, reason, err := parse(b, tt.src, tt.dst)
			if tt.wantErr != "" {
				if want, got := tt.wantErr, reason; want != got {
					t.Fatalf("reason: want %q, got %q (%v)", want, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, pkAddrCmp); diff != "" {
				t.Errorf("parse (-want +got):\n%s", diff)
			}
			enc, err := tt.want.Marshal(tt.src, tt.dst, tt.form)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if !bytes.Equal(b, enc) {
				t.Errorf("Marshal:\nwant %x\ngot  %x", b, enc)
			}
		})
	}
}

// goldenPacket is one block of a testdata/golden/*.txt file (see the
// README.md there).
type goldenPacket struct {
	file     string
	src, dst netip.Addr
	ttl      int
	payload  []byte
}

// readGolden reads every testdata/golden/*.txt file.
func readGolden(t testing.TB) []goldenPacket {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	var out []goldenPacket
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		var p goldenPacket
		flush := func() {
			if p.payload != nil {
				p.file = filepath.Base(file)
				out = append(out, p)
			}
			p = goldenPacket{}
		}
		s := bufio.NewScanner(f)
		for s.Scan() {
			key, val, _ := strings.Cut(strings.TrimSpace(s.Text()), " ")
			switch key {
			case "":
				flush()
			case "src":
				p.src = netip.MustParseAddr(val)
			case "dst":
				p.dst = netip.MustParseAddr(val)
			case "ttl":
				if p.ttl, err = strconv.Atoi(val); err != nil {
					t.Fatalf("%s: %v", file, err)
				}
			case "payload":
				p.payload = pkHex(t, val)
			default:
				t.Fatalf("%s: unknown key %q", file, key)
			}
		}
		flush()
		f.Close()
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestGoldenKeepalived decodes advertisements captured from keepalived
// 2.2.7 (testdata/golden/README.md) and encodes them back to the same
// bytes in keepalived's default (pseudo-header) form.
func TestGoldenKeepalived(t *testing.T) {
	v4 := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, a := range s {
			out = append(out, netip.MustParseAddr(a))
		}
		return out
	}
	want := map[string]Advertisement{
		"keepalived-v2-pass.txt": {Version: Version2, VRID: 51, Interval: time.Second, AuthType: AuthPassword,
			AuthData: pkPassword("nlbpass1"), Addresses: v4("192.0.2.100", "192.0.2.101")},
		"keepalived-v2-unicast.txt":        {Version: Version2, VRID: 51, Interval: time.Second, Addresses: v4("192.0.2.100")},
		"keepalived-v3-ipv4.txt":           {Version: Version3, VRID: 51, Interval: 500 * time.Millisecond, Addresses: v4("192.0.2.100", "192.0.2.101", "192.0.2.102")},
		"keepalived-v3-ipv4-unicast.txt":   {Version: Version3, VRID: 51, Interval: time.Second, Addresses: v4("192.0.2.100")},
		"keepalived-v3-ipv6.txt":           {Version: Version3, VRID: 51, Interval: time.Second, Addresses: v4("2001:db8::100", "2001:db8::101")},
		"keepalived-v3-ipv6-linklocal.txt": {Version: Version3, VRID: 51, Interval: time.Second, Addresses: v4("fe80::51", "2001:db8::100")},
	}
	seen := map[string]int{}
	for _, p := range readGolden(t) {
		seen[p.file]++
		t.Run(p.file, func(t *testing.T) {
			w, ok := want[p.file]
			if !ok {
				t.Fatalf("no expectation for %s", p.file)
			}
			got, err := ParseAdvertisement(p.payload, p.src, p.dst)
			if err != nil {
				t.Fatalf("ParseAdvertisement: %v", err)
			}
			// keepalived runs with priority 150 and sends priority 0 when
			// it stops.
			if got.Priority != 150 && got.Priority != 0 {
				t.Errorf("priority %d, want 150 or 0", got.Priority)
			}
			w.Priority = got.Priority
			if diff := cmp.Diff(&w, got, pkAddrCmp); diff != "" {
				t.Errorf("parse (-want +got):\n%s", diff)
			}
			enc, err := got.Marshal(p.src, p.dst, ChecksumPseudoHeader)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if !bytes.Equal(p.payload, enc) {
				t.Errorf("Marshal:\nwant %x\ngot  %x", p.payload, enc)
			}
			if want, got := TTL, p.ttl; want != got {
				t.Errorf("keepalived sent TTL %d, want %d", got, want)
			}
		})
	}
	for file := range want {
		if seen[file] != 2 {
			t.Errorf("%s: %d packets, want 2 (advert and release)", file, seen[file])
		}
	}
}
