package announce

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/ndp"
)

var testMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}

func TestGratuitousARPFrame(t *testing.T) {
	got, err := GratuitousARPFrame(testMAC, netip.MustParseAddr("192.0.2.100"))
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		// Ethernet: destination broadcast, source, EtherType ARP.
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0x02, 0x00, 0x5e, 0x10, 0x00, 0x01,
		0x08, 0x06,
		// ARP (RFC 826): hardware Ethernet, protocol IPv4, lengths 6/4.
		0x00, 0x01,
		0x08, 0x00,
		0x06, 0x04,
		// Operation REQUEST, as keepalived sends.
		0x00, 0x01,
		// Sender hardware address: the interface's MAC.
		0x02, 0x00, 0x5e, 0x10, 0x00, 0x01,
		// Sender protocol address: the VIP.
		192, 0, 2, 100,
		// Target hardware address: broadcast.
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		// Target protocol address: the VIP again (RFC 5227 §3).
		192, 0, 2, 100,
		// Padding to the 60-byte minimum frame.
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	}
	if !bytes.Equal(want, got) {
		t.Fatalf("frame\n got %x\nwant %x", got, want)
	}
}

func TestUnsolicitedNA(t *testing.T) {
	m, err := UnsolicitedNA(testMAC, netip.MustParseAddr("2001:db8::1:1"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ndp.MarshalMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		// ICMPv6 type 136 (Neighbor Advertisement), code 0, checksum
		// left to the kernel.
		136, 0, 0x00, 0x00,
		// R=0 S=0 O=1 (RFC 4861 §7.2.6), reserved.
		0x20, 0x00, 0x00, 0x00,
		// Target address: the VIP.
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1,
		// Option 2 (Target Link-Layer Address), length 1 (8 bytes), MAC.
		0x02, 0x01, 0x02, 0x00, 0x5e, 0x10, 0x00, 0x01,
	}
	if !bytes.Equal(want, got) {
		t.Fatalf("message\n got %x\nwant %x", got, want)
	}
}

func TestMessageErrors(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("2001:db8::1")
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"ARP for IPv6", func() error { _, err := GratuitousARP(testMAC, v6); return err }()},
		{"ARP for mapped IPv4", func() error { _, err := GratuitousARP(testMAC, netip.AddrFrom16(v4.As16())); return err }()},
		{"ARP short MAC", func() error { _, err := GratuitousARP(testMAC[:4], v4); return err }()},
		{"NA for IPv4", func() error { _, err := UnsolicitedNA(testMAC, v4); return err }()},
		{"NA without MAC", func() error { _, err := UnsolicitedNA(nil, v6); return err }()},
	} {
		if tt.err == nil {
			t.Errorf("%s: no error", tt.name)
		} else if !bytes.HasPrefix([]byte(tt.err.Error()), []byte("announce: ")) {
			t.Errorf("%s: %q lacks the package prefix", tt.name, tt.err)
		}
	}
}
