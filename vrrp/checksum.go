package vrrp

import "net/netip"

// The VRRP checksum is the 16-bit one's complement of the one's complement
// sum of the message (RFC 1071), optionally preceded by a pseudo-header:
//
//   - VRRPv2: the VRRP message only (RFC 3768 §5.3.8).
//   - VRRPv3 over IPv6: the RFC 8200 §8.1 pseudo-header (source, destination,
//     32-bit upper-layer length, 24 zero bits, next header 112) followed by
//     the message (RFC 5798 §5.2.8, RFC 9568 §5.2.8).
//   - VRRPv3 over IPv4: either the message only (RFC 9568 §5.2.8, keepalived's
//     v3_checksum_as_v2) or an IPv4 pseudo-header (source, destination, zero,
//     protocol 112, 16-bit length) followed by the message (RFC 5798 §5.2.8
//     as read by keepalived, tcpdump and Wireshark). See [ChecksumForm].

// checksumOffset is the position of the Checksum field in the VRRP header
// (RFC 3768 §5.1, RFC 5798 §5.1).
const checksumOffset = 6

// sum adds b to the running 32-bit one's complement accumulator s, 16 bits
// at a time in network byte order; an odd final byte is padded with zero
// (RFC 1071 §4.1).
func sum(s uint32, b []byte) uint32 {
	n := len(b) &^ 1
	for i := 0; i < n; i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
		// Fold early so that long inputs cannot overflow the accumulator.
		if s >= 0x8000_0000 {
			s = s&0xffff + s>>16
		}
	}
	if len(b)&1 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

// fold folds the carries of s into 16 bits and returns its one's
// complement, the value written into a checksum field. A message whose
// checksum field is correct folds to zero.
func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// pseudoHeaderSum returns the one's complement sum of the pseudo-header for
// a VRRP message of length n sent from src to dst. For IPv4 this is the
// RFC 768-style header {src, dst, 0, 112, uint16 length}; for IPv6 the
// RFC 8200 §8.1 header {src, dst, uint32 length, 0, 0, 0, 112}. Both
// reduce to the same sum of the addresses, the protocol number and the
// length; only the address width differs. src and dst must be of the same
// family.
func pseudoHeaderSum(src, dst netip.Addr, n int) uint32 {
	var s uint32
	if src.Is4() {
		a, b := src.As4(), dst.As4()
		s = sum(s, a[:])
		s = sum(s, b[:])
	} else {
		a, b := src.As16(), dst.As16()
		s = sum(s, a[:])
		s = sum(s, b[:])
	}
	// The 32-bit IPv6 length splits into two 16-bit words; for IPv4 the
	// high word is zero because n never exceeds 16 bits here.
	s += uint32(n>>16) + uint32(n&0xffff)
	s += IPProtocol
	return s
}

// usesPseudoHeader reports whether a message of version v sent over the
// family of src carries a pseudo-header in form f (RFC 3768 §5.3.8,
// RFC 5798 §5.2.8, RFC 9568 §5.2.8).
func usesPseudoHeader(v Version, src netip.Addr, f ChecksumForm) bool {
	switch {
	case v == Version2:
		return false
	case !src.Is4():
		return true
	default:
		return f == ChecksumPseudoHeader
	}
}

// checksum returns the checksum of the message b (whose checksum field may
// hold anything) for version v sent from src to dst in form f.
func checksum(v Version, b []byte, src, dst netip.Addr, f ChecksumForm) uint16 {
	var s uint32
	if usesPseudoHeader(v, src, f) {
		s = pseudoHeaderSum(src, dst, len(b))
	}
	s = sum(s, b[:checksumOffset])
	s = sum(s, b[checksumOffset+2:])
	return fold(s)
}

// verifyChecksum reports whether the checksum field of the message b is
// correct for version v sent from src to dst in form f.
func verifyChecksum(v Version, b []byte, src, dst netip.Addr, f ChecksumForm) bool {
	var s uint32
	if usesPseudoHeader(v, src, f) {
		s = pseudoHeaderSum(src, dst, len(b))
	}
	return fold(sum(s, b)) == 0
}
