//go:build linux

package socket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/vrrp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const (
	waitPacket = 3 * time.Second
	waitNone   = 300 * time.Millisecond
)

type packet struct {
	b    []byte
	info vrrp.PacketInfo
}

// receiver reads c in the background; the test's cleanup closes c, which
// also checks that Close unblocks ReadFrom.
func receiver(t *testing.T, c *Conn) <-chan packet {
	t.Helper()
	ch := make(chan packet, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, info, err := c.ReadFrom(buf)
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("ReadFrom: %v", err)
				}
				return
			}
			ch <- packet{bytes.Clone(buf[:n]), info}
		}
	}()
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case <-done:
		case <-time.After(waitPacket):
			t.Error("Close did not unblock ReadFrom")
		}
	})
	return ch
}

func expect(t *testing.T, ch <-chan packet, what string) packet {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(waitPacket):
		t.Fatalf("%s: no packet within %v", what, waitPacket)
		return packet{}
	}
}

func expectNone(t *testing.T, ch <-chan packet, what string) {
	t.Helper()
	select {
	case p := <-ch:
		t.Errorf("%s: unexpected packet %x %+v", what, p.b, p.info)
	case <-time.After(waitNone):
	}
}

func listen(t *testing.T, h *netlab.Host, ipv6 bool, ifName string, cfg Config) *Conn {
	t.Helper()
	var c *Conn
	if err := h.Run(func() error {
		var err error
		if ipv6 {
			c, err = ListenIPv6(ifName, cfg)
		} else {
			c, err = ListenIPv4(ifName, cfg)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

// advert is a VRRPv3 advertisement-shaped payload (checksum left zero).
func advert(vrid byte, vip netip.Addr) []byte {
	b := []byte{0x31, vrid, 100, 1, 0, 100, 0, 0}
	return append(b, vip.AsSlice()...)
}

func checkInfo(t *testing.T, p packet, want vrrp.PacketInfo) {
	t.Helper()
	if p.info != want {
		t.Errorf("PacketInfo = %+v, want %+v", p.info, want)
	}
}

func TestIPv4Multicast(t *testing.T) {
	l := netlab.NewT(t, "sock4m", netlab.Options{Hosts: 3})
	h1, h2, h3 := l.Hosts[0], l.Hosts[1], l.Hosts[2]

	// h1 sends from a secondary address, to show that the configured
	// source, not the kernel's choice (the primary), is on the wire.
	src := netip.MustParseAddr("192.0.2.50")
	addAddr(t, h1, netip.PrefixFrom(src, 24))

	c1 := listen(t, h1, false, h1.IfName, Config{Source: src})
	rx1 := receiver(t, c1)
	rx2 := receiver(t, listen(t, h2, false, h2.IfName, Config{Source: h2.Addr4}))
	// On h3 one socket joins the group, so the interface accepts it; a
	// second, unicast-mode socket has not joined and, with
	// IP_MULTICAST_ALL off, must not see the multicast advertisements.
	rx3m := receiver(t, listen(t, h3, false, h3.IfName, Config{Source: h3.Addr4}))
	rx3 := receiver(t, listen(t, h3, false, h3.IfName, Config{Source: h3.Addr4, Unicast: true, Peers: []netip.Addr{h1.Addr4}}))

	msg := advert(7, l.VIP4(1).Addr())
	if err := c1.WriteTo(msg, vrrp.MulticastGroup(false)); err != nil {
		t.Fatal(err)
	}
	p := expect(t, rx2, "h2")
	if !bytes.Equal(p.b, msg) {
		t.Errorf("payload %x, want %x (IPv4 header not stripped?)", p.b, msg)
	}
	checkInfo(t, p, vrrp.PacketInfo{Src: src, Dst: vrrp.MulticastGroup(false), TTL: vrrp.TTL, IfIndex: h2.Index})
	expect(t, rx3m, "h3, multicast socket")
	expectNone(t, rx1, "h1, own multicast (loopback off)")
	expectNone(t, rx3, "h3, unicast mode")
}

func TestIPv4Unicast(t *testing.T) {
	l := netlab.NewT(t, "sock4u", netlab.Options{Hosts: 2})
	h1, h2 := l.Hosts[0], l.Hosts[1]
	c1 := listen(t, h1, false, h1.IfName, Config{Source: h1.Addr4, Unicast: true, Peers: []netip.Addr{h2.Addr4}})
	receiver(t, c1)
	c2 := listen(t, h2, false, h2.IfName, Config{Source: h2.Addr4, Unicast: true, Peers: []netip.Addr{h1.Addr4}})
	rx2 := receiver(t, c2)

	msg := advert(9, l.VIP4(1).Addr())
	if err := c1.WriteTo(msg, h2.Addr4); err != nil {
		t.Fatal(err)
	}
	p := expect(t, rx2, "h2")
	if !bytes.Equal(p.b, msg) {
		t.Errorf("payload %x, want %x", p.b, msg)
	}
	checkInfo(t, p, vrrp.PacketInfo{Src: h1.Addr4, Dst: h2.Addr4, TTL: vrrp.TTL, IfIndex: h2.Index})
	if err := c1.WriteTo(msg, netip.MustParseAddr("192.0.2.99")); err == nil {
		t.Error("WriteTo a non-peer succeeded")
	}
}

func TestIPv6Multicast(t *testing.T) {
	l := netlab.NewT(t, "sock6m", netlab.Options{Hosts: 2})
	h1, h2 := l.Hosts[0], l.Hosts[1]
	c1 := listen(t, h1, true, h1.IfName, Config{Source: h1.LinkLocal})
	rx1 := receiver(t, c1)
	rx2 := receiver(t, listen(t, h2, true, h2.IfName, Config{Source: h2.LinkLocal}))

	group := vrrp.MulticastGroup(true)
	msg := advert(5, l.VIP6(1).Addr())
	msg[6], msg[7] = 0xde, 0xad // a wrong checksum: the kernel replaces it
	if err := c1.WriteTo(msg, group); err != nil {
		t.Fatal(err)
	}
	p := expect(t, rx2, "h2")
	checkInfo(t, p, vrrp.PacketInfo{Src: h1.LinkLocal, Dst: group, TTL: vrrp.TTL, IfIndex: h2.Index})
	if len(p.b) != len(msg) || !bytes.Equal(p.b[:6], msg[:6]) || !bytes.Equal(p.b[8:], msg[8:]) {
		t.Errorf("payload %x, want %x apart from the checksum", p.b, msg)
	}
	if sum := checksum6(h1.LinkLocal, group, p.b); sum != 0 {
		t.Errorf("checksum %x does not verify (residue %#04x)", p.b[6:8], sum)
	}
	expectNone(t, rx1, "h1, own multicast")

	// A packet with a bad checksum, sent from a plain raw socket without
	// IPV6_CHECKSUM, is dropped by the receiving kernel.
	bad := bytes.Clone(p.b)
	bad[7] ^= 0xff
	rawSend6(t, h1, bad, group, h1.IfName)
	expectNone(t, rx2, "h2, bad checksum")
	rawSend6(t, h1, p.b, group, h1.IfName)
	expect(t, rx2, "h2, good checksum from a plain raw socket")
}

func TestIPv6Unicast(t *testing.T) {
	l := netlab.NewT(t, "sock6u", netlab.Options{Hosts: 2})
	h1, h2 := l.Hosts[0], l.Hosts[1]
	c1 := listen(t, h1, true, h1.IfName, Config{Source: h1.Addr6, Unicast: true, Peers: []netip.Addr{h2.Addr6, h2.LinkLocal}})
	receiver(t, c1)
	rx2 := receiver(t, listen(t, h2, true, h2.IfName, Config{Source: h2.Addr6, Unicast: true, Peers: []netip.Addr{h1.Addr6}}))

	msg := advert(5, l.VIP6(1).Addr())
	if err := c1.WriteTo(msg, h2.Addr6); err != nil {
		t.Fatal(err)
	}
	p := expect(t, rx2, "h2")
	checkInfo(t, p, vrrp.PacketInfo{Src: h1.Addr6, Dst: h2.Addr6, TTL: vrrp.TTL, IfIndex: h2.Index})
	if sum := checksum6(h1.Addr6, h2.Addr6, p.b); sum != 0 {
		t.Errorf("checksum does not verify (residue %#04x)", sum)
	}
	// A link-local peer needs the interface as zone; WriteTo adds it.
	if err := c1.WriteTo(msg, h2.LinkLocal); err != nil {
		t.Fatal(err)
	}
	p = expect(t, rx2, "h2 via link-local")
	if p.info.Dst != h2.LinkLocal {
		t.Errorf("Dst = %v, want %v", p.info.Dst, h2.LinkLocal)
	}
}

// TestInterfaceIsolation: a socket on one interface does not receive
// advertisements that arrive on another interface of the same host
// (SO_BINDTODEVICE and IP_MULTICAST_ALL off).
func TestInterfaceIsolation(t *testing.T) {
	l := netlab.NewT(t, "sockif", netlab.Options{Hosts: 2, Segments: 2})
	h1, h2 := l.Hosts[0], l.Hosts[1]
	for _, ipv6 := range []bool{false, true} {
		src := func(h *netlab.Host, seg int) netip.Addr {
			if ipv6 {
				return h.Links[seg].LinkLocal
			}
			return h.Links[seg].Addr4.Addr()
		}
		send := listen(t, h1, ipv6, h1.Links[1].IfName, Config{Source: src(h1, 1)})
		receiver(t, send)
		rx0 := receiver(t, listen(t, h2, ipv6, h2.Links[0].IfName, Config{Source: src(h2, 0)}))
		rx1 := receiver(t, listen(t, h2, ipv6, h2.Links[1].IfName, Config{Source: src(h2, 1)}))
		if err := send.WriteTo(advert(3, src(h1, 1)), vrrp.MulticastGroup(ipv6)); err != nil {
			t.Fatal(err)
		}
		p := expect(t, rx1, "segment 1")
		if p.info.IfIndex != h2.Links[1].Index {
			t.Errorf("IfIndex = %d, want %d", p.info.IfIndex, h2.Links[1].Index)
		}
		expectNone(t, rx0, "segment 0 socket")
	}
}

func addAddr(t *testing.T, h *netlab.Host, p netip.Prefix) {
	t.Helper()
	if err := h.Run(func() error {
		link, err := netlink.LinkByName(h.IfName)
		if err != nil {
			return err
		}
		return netlink.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}})
	}); err != nil {
		t.Fatal(err)
	}
}

// rawSend6 sends b as it is (no kernel checksum) from a raw ip6:112 socket.
func rawSend6(t *testing.T, h *netlab.Host, b []byte, dst netip.Addr, ifName string) {
	t.Helper()
	if err := h.Run(func() error {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, vrrp.IPProtocol)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255); err != nil {
			return err
		}
		ifi, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		return unix.Sendto(fd, b, 0, &unix.SockaddrInet6{Addr: dst.As16(), ZoneId: uint32(ifi.Index)})
	}); err != nil {
		t.Fatal(err)
	}
}

// checksum6 returns the RFC 1071 sum over the IPv6 pseudo-header (RFC 8200
// §8.1) and b; 0 when b's checksum is right.
func checksum6(src, dst netip.Addr, b []byte) uint16 {
	var ph []byte
	ph = append(ph, src.AsSlice()...)
	ph = append(ph, dst.AsSlice()...)
	ph = binary.BigEndian.AppendUint32(ph, uint32(len(b)))
	ph = append(ph, 0, 0, 0, vrrp.IPProtocol)
	data := append(ph, b...)
	if len(data)%2 == 1 {
		data = append(data, 0)
	}
	var sum uint32
	for i := 0; i < len(data); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(data[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
