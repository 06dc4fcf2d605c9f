package vrrp

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// updateFuzzCorpus rewrites the golden seeds in testdata/fuzz from
// testdata/golden: go test ./vrrp -run TestFuzzCorpus -update-fuzz-corpus
var updateFuzzCorpus = flag.Bool("update-fuzz-corpus", false, "rewrite testdata/fuzz seeds from testdata/golden")

// fuzzAddr turns fuzzer bytes into an address: 4 or 16 bytes, anything
// else the zero Addr.
func fuzzAddr(b []byte) netip.Addr {
	a, _ := netip.AddrFromSlice(b)
	return a
}

// FuzzParseAdvertisement checks that ParseAdvertisement never panics and
// that whatever it accepts encodes again (in the form that verified) to
// the same message, which parses to the same advertisement.
func FuzzParseAdvertisement(f *testing.F) {
	for _, p := range readGolden(f) {
		f.Add(p.payload, p.src.AsSlice(), p.dst.AsSlice())
	}
	f.Fuzz(func(t *testing.T, b, srcB, dstB []byte) {
		src, dst := fuzzAddr(srcB), fuzzAddr(dstB)
		a, err := ParseAdvertisement(b, src, dst)
		if err != nil {
			if a != nil {
				t.Fatalf("advertisement %+v with error %v", a, err)
			}
			return
		}
		usrc, udst := src.Unmap(), dst.Unmap()
		form := ChecksumPseudoHeader
		if a.Version == Version3 && usrc.Is4() && !verifyChecksum(a.Version, b[:min(len(b), messageLen(a.Version, true, len(a.Addresses)))], usrc, udst, ChecksumPseudoHeader) {
			form = ChecksumMessageOnly
		}
		enc, err := a.Marshal(src, dst, form)
		if err != nil {
			t.Fatalf("Marshal of parsed %+v: %v", a, err)
		}
		if len(enc) > len(b) {
			t.Fatalf("encoding is %d bytes, input only %d", len(enc), len(b))
		}
		// Equal bytes except the v3 reserved bits (ignored on reception,
		// RFC 5798 §5.2.5) and the checksum (0x0000 and 0xffff are the
		// same one's complement value).
		in := bytes.Clone(b[:len(enc)])
		if a.Version == Version3 {
			in[4] &= 0x0f
		}
		enc2 := bytes.Clone(enc)
		in[6], in[7], enc2[6], enc2[7] = 0, 0, 0, 0
		if !bytes.Equal(in, enc2) {
			t.Fatalf("re-encoding differs:\nin  %x\nout %x", b[:len(enc)], enc)
		}
		got, err := ParseAdvertisement(enc, src, dst)
		if err != nil {
			t.Fatalf("ParseAdvertisement of re-encoded %x: %v", enc, err)
		}
		if diff := cmp.Diff(a, got, pkAddrCmp); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

// fuzzVIPs turns fuzzer bytes into the filter's virtual addresses: 16-byte
// IPv6 addresses if ipv6, else 4-byte IPv4 ones; a short tail is ignored.
func fuzzVIPs(b []byte, ipv6 bool) []netip.Addr {
	n := 4
	if ipv6 {
		n = 16
	}
	var out []netip.Addr
	for ; len(b) >= n; b = b[n:] {
		out = append(out, fuzzAddr(b[:n]))
	}
	return out
}

// goldenVIPBytes returns the virtual addresses of a golden packet's
// keepalived.conf, last first, as fuzzVIPs reads them.
func goldenVIPBytes(tb testing.TB, p goldenPacket) []byte {
	var out []byte
	vips := goldenVIPs(tb, strings.TrimSuffix(p.file, ".txt")+".conf")
	for _, v := range slices.Backward(vips) {
		out = append(out, v.AsSlice()...)
	}
	return out
}

// FuzzFilterCheck checks that Filter.Check never panics, that every drop
// carries a known reason and that whatever it accepts matches the filter.
func FuzzFilterCheck(f *testing.F) {
	for _, p := range readGolden(f) {
		pass := []byte(nil)
		if strings.Contains(p.file, "pass") {
			pass = []byte("nlbpass1")
		}
		f.Add(p.payload, p.src.AsSlice(), p.dst.AsSlice(), p.ttl, p.payload[0]>>4, uint8(51), uint16(100), uint8(len(pass)/8), pass, strings.Contains(p.file, "unicast"),
			goldenVIPBytes(f, p))
	}
	reasons := []DropReason{DropShort, DropVersion, DropType, DropTTL, DropChecksum, DropVRID, DropAuth,
		DropInterval, DropNoAddresses, DropAddresses, DropPeer, DropMalformed}
	f.Fuzz(func(t *testing.T, b, srcB, dstB []byte, ttl int, version, vrid uint8, intervalCS uint16, authType uint8, pass []byte, unicast bool, vips []byte) {
		info := PacketInfo{Src: fuzzAddr(srcB), Dst: fuzzAddr(dstB), TTL: ttl}
		flt := Filter{
			Version:   Version(version),
			VRID:      vrid,
			Interval:  time.Duration(intervalCS) * centisecond,
			AuthType:  AuthType(authType),
			Unicast:   unicast,
			Addresses: fuzzVIPs(vips, info.Dst.Is6()),
		}
		copy(flt.AuthData[:], pass)
		if unicast {
			flt.Peers = []netip.Addr{info.Src}
		}
		a, err := flt.Check(info, b)
		if err != nil {
			if a != nil {
				t.Fatalf("advertisement %+v with error %v", a, err)
			}
			if r := ReasonOf(err); !slices.Contains(reasons, r) {
				t.Fatalf("unknown reason %q in %v", r, err)
			}
			return
		}
		switch {
		case a == nil:
			t.Fatal("nil advertisement without error")
		case a.Version != flt.Version || a.VRID != flt.VRID:
			t.Fatalf("accepted v%d VRID %d for filter v%d VRID %d", a.Version, a.VRID, flt.Version, flt.VRID)
		case !unicast && ttl != -1 && ttl != TTL:
			t.Fatalf("accepted TTL %d", ttl)
		case a.Version == Version2 && (a.Interval != flt.Interval || a.AuthType != flt.AuthType):
			t.Fatalf("accepted v2 %+v for filter %+v", a, flt)
		case a.Version == Version2 && a.AuthType == AuthPassword && a.AuthData != flt.AuthData:
			t.Fatalf("accepted wrong password %q", a.AuthData)
		case len(a.Addresses) != len(flt.Addresses):
			t.Fatalf("accepted %d addresses for a filter of %d", len(a.Addresses), len(flt.Addresses))
		}
		ours := map[netip.Addr]bool{}
		for _, v := range flt.Addresses {
			ours[v.Unmap()] = true
		}
		theirs := map[netip.Addr]bool{}
		for _, v := range a.Addresses {
			theirs[v.Unmap()] = true
			if !ours[v.Unmap()] {
				t.Fatalf("accepted %v, not one of %v", v, flt.Addresses)
			}
		}
		if len(theirs) != len(ours) {
			t.Fatalf("accepted %v for %v", a.Addresses, flt.Addresses)
		}
	})
}

// TestFuzzCorpus keeps the committed seed corpus in step with the golden
// packets: each golden packet must have a seed file, and
// -update-fuzz-corpus writes them.
func TestFuzzCorpus(t *testing.T) {
	type seed struct{ fuzz, name, body string }
	var seeds []seed
	for i, p := range readGolden(t) {
		name := fmt.Sprintf("golden-%s-%d", strings.TrimSuffix(p.file, ".txt"), i)
		seeds = append(seeds, seed{"FuzzParseAdvertisement", name, fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\n[]byte(%q)\n",
			p.payload, p.src.AsSlice(), p.dst.AsSlice())})
		pass := []byte(nil)
		if strings.Contains(p.file, "pass") {
			pass = []byte("nlbpass1")
		}
		seeds = append(seeds, seed{"FuzzFilterCheck", name, fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n[]byte(%q)\n[]byte(%q)\nint(%d)\nbyte(%q)\nbyte(%q)\nuint16(%d)\nbyte(%q)\n[]byte(%q)\nbool(%t)\n[]byte(%q)\n",
			p.payload, p.src.AsSlice(), p.dst.AsSlice(), p.ttl, p.payload[0]>>4, byte(51), 100, byte(len(pass)/8), pass, strings.Contains(p.file, "unicast"), goldenVIPBytes(t, p))})
	}
	for _, s := range seeds {
		path := filepath.Join("testdata", "fuzz", s.fuzz, s.name)
		if *updateFuzzCorpus {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(s.body), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update-fuzz-corpus)", err)
		}
		if string(got) != s.body {
			t.Errorf("%s is stale (run with -update-fuzz-corpus)", path)
		}
	}
}
