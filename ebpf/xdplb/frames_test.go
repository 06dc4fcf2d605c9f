package xdplb

import (
	"encoding/binary"
	"net/netip"
)

// Frame builders for the program's tests: bytes by hand, so that every
// field (lengths, IHL, fragment bits, extension headers) can be made wrong.

// TCP flags.
const (
	fin = 0x01
	syn = 0x02
	rst = 0x04
	psh = 0x08
	ack = 0x10
)

var (
	clientMAC = [6]byte{0x02, 0, 0, 0, 0, 0x01} // the router or client
	lbMAC     = [6]byte{0x02, 0, 0, 0, 0, 0x10} // this node
	beMACs    = [][6]byte{
		{0x02, 0, 0, 0, 0, 0x21},
		{0x02, 0, 0, 0, 0, 0x22},
		{0x02, 0, 0, 0, 0, 0x23},
		{0x02, 0, 0, 0, 0, 0x24},
		{0x02, 0, 0, 0, 0, 0x25},
		{0x02, 0, 0, 0, 0, 0x26},
		{0x02, 0, 0, 0, 0, 0x27},
	}
)

const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd
	etherARP  = 0x0806
)

// ether prepends an Ethernet header.
func ether(dst, src [6]byte, etype uint16, payload []byte) []byte {
	b := make([]byte, 14, 14+len(payload))
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:], etype)
	return append(b, payload...)
}

// tcpHeader is a 20-byte TCP header (plus options) and payload. The
// checksum is a fixed value: layer-2 DSR does not touch it.
func tcpHeader(sport, dport uint16, flags uint8, opts, payload []byte) []byte {
	b := make([]byte, 20, 20+len(opts)+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], 0x01020304)
	if flags&ack != 0 {
		binary.BigEndian.PutUint32(b[8:], 0x0a0b0c0d)
	}
	b[12] = byte((20+len(opts))/4) << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], 64240)
	binary.BigEndian.PutUint16(b[16:], 0xbeef)
	b = append(b, opts...)
	return append(b, payload...)
}

// ipv4 is an IPv4 header with options (a multiple of 4 bytes) and the
// given fragment field, and its payload.
func ipv4(src, dst netip.Addr, proto uint8, opts []byte, frag uint16, payload []byte) []byte {
	hl := 20 + len(opts)
	b := make([]byte, hl, hl+len(payload))
	b[0] = 0x40 | byte(hl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(hl+len(payload)))
	binary.BigEndian.PutUint16(b[4:], 0x1234)
	binary.BigEndian.PutUint16(b[6:], frag)
	b[8] = 64
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	copy(b[20:], opts)
	var sum uint32
	for i := 0; i < hl; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(b[10:], ^uint16(sum))
	return append(b, payload...)
}

// ipv6 is an IPv6 header, the extension headers ext (already chained: the
// next header of the fixed header is next), and the payload.
func ipv6(src, dst netip.Addr, next uint8, ext, payload []byte) []byte {
	b := make([]byte, 40, 40+len(ext)+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(ext)+len(payload)))
	b[6] = next
	b[7] = 64
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	b = append(b, ext...)
	return append(b, payload...)
}

// extHeader is an IPv6 options-style extension header (hop-by-hop,
// destination options, routing) of 8·(1+units) bytes, PadN-filled.
func extHeader(next uint8, units int) []byte {
	b := make([]byte, 8*(1+units))
	b[0] = next
	b[1] = byte(units)
	b[2] = 1 // PadN
	b[3] = byte(len(b) - 4)
	return b
}

// tcpFrame is a client's TCP segment to the VIP, IPv4 or IPv6.
func tcpFrame(client, vip netip.AddrPort, flags uint8, payload []byte) []byte {
	seg := tcpHeader(client.Port(), vip.Port(), flags, nil, payload)
	if vip.Addr().Is4() {
		return ether(lbMAC, clientMAC, etherIPv4, ipv4(client.Addr(), vip.Addr(), 6, nil, 0x4000, seg))
	}
	return ether(lbMAC, clientMAC, etherIPv6, ipv6(client.Addr(), vip.Addr(), 6, nil, seg))
}

// icmpError is an ICMP (type 3) or ICMPv6 (type 1 or 2) error sent by
// router to the VIP about the backend's reply vip → client, quoting its
// IP header and first 8 bytes of TCP.
func icmpError(router netip.Addr, client, vip netip.AddrPort, typ, code uint8, mtu uint32) []byte {
	reply := tcpHeader(vip.Port(), client.Port(), ack, nil, make([]byte, 1400))
	var quoted []byte
	if vip.Addr().Is4() {
		quoted = ipv4(vip.Addr(), client.Addr(), 6, nil, 0x4000, reply)[:28]
	} else {
		quoted = ipv6(vip.Addr(), client.Addr(), 6, nil, reply)[:48]
	}
	msg := make([]byte, 8, 8+len(quoted))
	msg[0], msg[1] = typ, code
	binary.BigEndian.PutUint16(msg[2:], 0xcafe)
	binary.BigEndian.PutUint32(msg[4:], mtu)
	msg = append(msg, quoted...)
	if vip.Addr().Is4() {
		return ether(lbMAC, clientMAC, etherIPv4, ipv4(router, vip.Addr(), 1, nil, 0, msg))
	}
	return ether(lbMAC, clientMAC, etherIPv6, ipv6(router, vip.Addr(), 58, nil, msg))
}

// forwarded is what the program sends for frame f to a backend: the same
// frame with the backend's MAC as destination and ours as source.
func forwarded(f []byte, be [6]byte) []byte {
	out := append([]byte(nil), f...)
	copy(out[0:6], be[:])
	copy(out[6:12], lbMAC[:])
	return out
}
