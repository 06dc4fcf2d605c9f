package vrrp

import (
	"bytes"
	"encoding/binary"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// linktypeRaw is the pcap link type of bare IPv4 or IPv6 packets,
// distinguished by the version nibble (LINKTYPE_RAW).
const linktypeRaw = 101

// ipPacket wraps the VRRP message b in a hand-built IPv4 or IPv6 header
// from src to dst with TTL / hop limit 255 and protocol 112 (RFC 3768
// §5.2, RFC 5798 §5.1).
func ipPacket(b []byte, src, dst netip.Addr) []byte {
	if src.Is4() {
		h := make([]byte, 20, 20+len(b))
		h[0] = 0x45                                          // version 4, IHL 5
		binary.BigEndian.PutUint16(h[2:], uint16(20+len(b))) // total length
		h[8], h[9] = TTL, IPProtocol
		s, d := src.As4(), dst.As4()
		copy(h[12:], s[:])
		copy(h[16:], d[:])
		binary.BigEndian.PutUint16(h[10:], fold(sum(0, h)))
		return append(h, b...)
	}
	h := make([]byte, 40, 40+len(b))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(b))) // payload length
	h[6], h[7] = IPProtocol, TTL                      // next header, hop limit
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, b...)
}

// writePcap writes packets as a classic little-endian pcap file of link
// type linktypeRaw.
func writePcap(t *testing.T, path string, packets [][]byte) {
	t.Helper()
	var buf bytes.Buffer
	le := binary.LittleEndian
	hdr := make([]byte, 24)
	le.PutUint32(hdr[0:], 0xa1b2c3d4) // magic, microsecond timestamps
	le.PutUint16(hdr[4:], 2)          // version 2.4
	le.PutUint16(hdr[6:], 4)
	le.PutUint32(hdr[16:], 65535) // snaplen
	le.PutUint32(hdr[20:], linktypeRaw)
	buf.Write(hdr)
	for i, p := range packets {
		rec := make([]byte, 16)
		le.PutUint32(rec[0:], uint32(1_700_000_000+i))
		le.PutUint32(rec[8:], uint32(len(p)))
		le.PutUint32(rec[12:], uint32(len(p)))
		buf.Write(rec)
		buf.Write(p)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tsharkFields are the VRRP dissector fields the test reads (tshark -G
// fields | grep vrrp).
var tsharkFields = []string{
	"vrrp.version", "vrrp.virt_rtr_id", "vrrp.prio", "vrrp.addr_count",
	"vrrp.checksum.status", "vrrp.auth_type", "vrrp.auth_string",
	"vrrp.adver_int", "vrrp.short_adver_int", "vrrp.ip_addr", "vrrp.ipv6_addr",
}

// runTshark dissects the pcap at path and returns one map of field values
// per packet.
func runTshark(t *testing.T, tshark, path string, prefs ...string) []map[string]string {
	t.Helper()
	args := []string{"-n", "-r", path, "-T", "fields", "-E", "separator=/t", "-E", "aggregator=,", "-E", "occurrence=a"}
	for _, p := range prefs {
		args = append(args, "-o", p)
	}
	for _, f := range tsharkFields {
		args = append(args, "-e", f)
	}
	cmd := exec.CommandContext(t.Context(), tshark, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no personal preferences
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %v: %v\n%s", args, err, stderr.String())
	}
	var rows []map[string]string
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		vals := strings.Split(line, "\t")
		row := map[string]string{}
		for i, f := range tsharkFields {
			if i < len(vals) && vals[i] != "" {
				row[f] = vals[i]
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// TestTshark has Wireshark's VRRP dissector check advertisements built by
// Marshal: fields, and the checksum in every form. It needs tshark;
// without it the test skips, unless NLB_PRIVILEGED=1 (CI), where it fails.
func TestTshark(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("NLB_PRIVILEGED") == "1" {
			t.Fatalf("tshark is required with NLB_PRIVILEGED=1: %v", err)
		}
		t.Skipf("tshark not installed: %v", err)
	}

	type pkt struct {
		a        Advertisement
		src, dst netip.Addr
		form     ChecksumForm
		want     map[string]string
	}
	// tshark's checksum status: 0 bad, 1 good, 2 unverified.
	const good, bad = "1", "0"
	pseudo := []pkt{
		{
			a: Advertisement{Version: Version2, VRID: 51, Priority: 150, Interval: time.Second,
				AuthType: AuthPassword, AuthData: pkPassword("nlbpass1"), Addresses: []netip.Addr{pkVIP4, pkVIP4b}},
			src: pkSrc4, dst: pkGroup4,
			want: map[string]string{"vrrp.version": "2", "vrrp.virt_rtr_id": "51", "vrrp.prio": "150", "vrrp.addr_count": "2",
				"vrrp.checksum.status": good, "vrrp.auth_type": "1", "vrrp.auth_string": "nlbpass1", "vrrp.adver_int": "1",
				"vrrp.ip_addr": "192.0.2.100,192.0.2.101"},
		},
		{
			a: Advertisement{Version: Version2, VRID: 7, Priority: 0, Interval: 255 * time.Second,
				Addresses: []netip.Addr{pkVIP4}},
			src: pkSrc4, dst: pkPeer4,
			want: map[string]string{"vrrp.version": "2", "vrrp.virt_rtr_id": "7", "vrrp.prio": "0", "vrrp.addr_count": "1",
				"vrrp.checksum.status": good, "vrrp.auth_type": "0", "vrrp.adver_int": "255", "vrrp.ip_addr": "192.0.2.100"},
		},
		{
			a: Advertisement{Version: Version3, VRID: 52, Priority: 100, Interval: 500 * time.Millisecond,
				Addresses: []netip.Addr{pkVIP4, pkVIP4b}},
			src: pkSrc4, dst: pkGroup4, form: ChecksumPseudoHeader,
			want: map[string]string{"vrrp.version": "3", "vrrp.virt_rtr_id": "52", "vrrp.prio": "100", "vrrp.addr_count": "2",
				"vrrp.checksum.status": good, "vrrp.short_adver_int": "50", "vrrp.ip_addr": "192.0.2.100,192.0.2.101"},
		},
		{
			a: Advertisement{Version: Version3, VRID: 54, Priority: 255, Interval: 40950 * time.Millisecond,
				Addresses: []netip.Addr{pkVIP4}},
			src: pkSrc4, dst: pkPeer4, form: ChecksumPseudoHeader,
			want: map[string]string{"vrrp.version": "3", "vrrp.virt_rtr_id": "54", "vrrp.prio": "255", "vrrp.addr_count": "1",
				"vrrp.checksum.status": good, "vrrp.short_adver_int": "4095", "vrrp.ip_addr": "192.0.2.100"},
		},
		{
			a: Advertisement{Version: Version3, VRID: 53, Priority: 200, Interval: time.Second,
				Addresses: []netip.Addr{pkVIP6LL, pkVIP6}},
			src: pkSrc6, dst: pkGroup6,
			want: map[string]string{"vrrp.version": "3", "vrrp.virt_rtr_id": "53", "vrrp.prio": "200", "vrrp.addr_count": "2",
				"vrrp.checksum.status": good, "vrrp.short_adver_int": "100", "vrrp.ipv6_addr": "fe80::51,2001:db8::100"},
		},
	}
	messageOnly := pkt{
		a: Advertisement{Version: Version3, VRID: 55, Priority: 100, Interval: time.Second,
			Addresses: []netip.Addr{pkVIP4, pkVIP4b}},
		src: pkSrc4, dst: pkGroup4, form: ChecksumMessageOnly,
		want: map[string]string{"vrrp.version": "3", "vrrp.virt_rtr_id": "55", "vrrp.prio": "100", "vrrp.addr_count": "2",
			"vrrp.checksum.status": good, "vrrp.short_adver_int": "100", "vrrp.ip_addr": "192.0.2.100,192.0.2.101"},
	}

	dir := t.TempDir()
	write := func(name string, pkts []pkt) string {
		var raw [][]byte
		for _, p := range pkts {
			b, err := p.a.Marshal(p.src, p.dst, p.form)
			if err != nil {
				t.Fatalf("Marshal %+v: %v", p.a, err)
			}
			raw = append(raw, ipPacket(b, p.src, p.dst))
		}
		path := filepath.Join(dir, name)
		writePcap(t, path, raw)
		return path
	}
	check := func(t *testing.T, path string, pkts []pkt, prefs ...string) {
		rows := runTshark(t, tshark, path, prefs...)
		if len(rows) != len(pkts) {
			t.Fatalf("tshark dissected %d packets, want %d: %v", len(rows), len(pkts), rows)
		}
		for i, p := range pkts {
			if diff := cmp.Diff(p.want, rows[i]); diff != "" {
				t.Errorf("packet %d (VRID %d) (-want +tshark):\n%s", i+1, p.a.VRID, diff)
			}
		}
	}

	t.Run("pseudo-header form", func(t *testing.T) {
		check(t, write("pseudo.pcap", pseudo), pseudo)
	})
	t.Run("message-only form", func(t *testing.T) {
		path := write("message-only.pcap", []pkt{messageOnly})
		check(t, path, []pkt{messageOnly}, "vrrp.v3_checksum_as_in_v2:TRUE")

		// Negative control: with its default (pseudo-header) preference
		// tshark must call the same packet bad, so the check above is real.
		flagged := messageOnly
		flagged.want = maps.Clone(messageOnly.want)
		flagged.want["vrrp.checksum.status"] = bad
		check(t, path, []pkt{flagged})
	})
}
