package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"time"
)

// Wire-format constants (RFC 3768 §5.1, RFC 5798 §5.1).
const (
	// headerLen is the fixed part of every advertisement: version/type,
	// VRID, priority, count, auth type (v2) or reserved bits and Max Adver
	// Int (v3), and the checksum.
	headerLen = 8
	// authDataLen is the VRRPv2 Authentication Data trailer, present in
	// every v2 advertisement whatever the Auth Type (RFC 3768 §5.1,
	// §5.3.10).
	authDataLen = 8
	// typeAdvertisement is the only VRRP message type (RFC 3768 §5.3.2,
	// RFC 5798 §5.2.2).
	typeAdvertisement = 1
	// maxAddresses is the largest Count IP Addrs the 8-bit field can carry
	// (RFC 3768 §5.3.5).
	maxAddresses = 255
	// centisecond is the unit of the VRRPv3 Max Adver Int (RFC 5798 §5.2.7).
	centisecond = 10 * time.Millisecond
	// maxV2Interval is the largest 8-bit Adver Int in seconds (RFC 3768
	// §5.3.7).
	maxV2Interval = 255 * time.Second
	// maxV3Interval is the largest 12-bit Max Adver Int, 4095 centiseconds
	// (RFC 5798 §5.2.7, RFC 9568 erratum 8301).
	maxV3Interval = 4095 * centisecond
)

// Marshal encodes a for sending from src to dst and returns the VRRP
// message, the payload of the IP packet.
//
// The checksum is computed per version and family: VRRPv2 over the message
// only (RFC 3768 §5.3.8); VRRPv3 over IPv6 with the RFC 8200 §8.1
// pseudo-header; VRRPv3 over IPv4 per form, with an IPv4 pseudo-header for
// [ChecksumPseudoHeader] (keepalived's default) or over the message only
// for [ChecksumMessageOnly] (RFC 9568 §5.2.8). For VRRPv3 the family of src
// (which dst must share) selects the address family; IPv4-mapped IPv6
// addresses are treated as IPv4. For VRRPv2 src and dst are not used and
// may be the zero Addr, but must be IPv4 if set.
//
// Marshal returns an error, and never panics, if the version is not 2 or
// 3, the VRID is 0, there are no addresses or more than 255, an address is
// not of the carrying family (VRRPv2 is IPv4 only), the interval cannot be
// represented (VRRPv2: whole seconds 1-255; VRRPv3: a multiple of 10ms from
// 10ms to 40.95s), or a VRRPv3 advertisement carries authentication.
//
// VRRPv2 Auth Type and Authentication Data are written as given, so any
// Auth Type received by [ParseAdvertisement] can be encoded again.
func (a *Advertisement) Marshal(src, dst netip.Addr, form ChecksumForm) ([]byte, error) {
	return a.AppendMarshal(nil, src, dst, form)
}

// AppendMarshal is [Advertisement.Marshal] appending the message to b. It
// does not allocate when b has enough spare capacity: 16+4n bytes for
// VRRPv2, 8+4n for VRRPv3 over IPv4 and 8+16n for VRRPv3 over IPv6, n
// being the number of addresses. On error b is returned unchanged.
func (a *Advertisement) AppendMarshal(b []byte, src, dst netip.Addr, form ChecksumForm) ([]byte, error) {
	if a == nil {
		return b, errors.New("vrrp: marshal of nil advertisement")
	}
	src, dst = src.Unmap(), dst.Unmap()
	n, err := a.validate(src, dst, form)
	if err != nil {
		return b, fmt.Errorf("vrrp: marshal VRRPv%d advertisement: %w", a.Version, err)
	}

	start := len(b)
	b = slices.Grow(b, n)[:start+n]
	m := b[start:]
	m[0] = byte(a.Version)<<4 | typeAdvertisement // RFC 3768 §5.3.1-5.3.2
	m[1] = a.VRID                                 // RFC 3768 §5.3.3
	m[2] = a.Priority                             // RFC 3768 §5.3.4
	m[3] = uint8(len(a.Addresses))                // RFC 3768 §5.3.5; validate bounds it
	if a.Version == Version2 {
		m[4] = byte(a.AuthType)                // RFC 3768 §5.3.6
		m[5] = uint8(a.Interval / time.Second) // RFC 3768 §5.3.7; validate bounds it
	} else {
		// 4 reserved bits, zero on transmission, then the 12-bit Max
		// Adver Int in centiseconds (RFC 5798 §5.2.6-5.2.7).
		binary.BigEndian.PutUint16(m[4:], uint16(a.Interval/centisecond)&0x0fff)
	}
	m[6], m[7] = 0, 0 // the checksum is computed below

	off := headerLen
	for _, ip := range a.Addresses {
		if ip.Is4() {
			v := ip.As4()
			off += copy(m[off:], v[:])
		} else {
			v := ip.As16()
			off += copy(m[off:], v[:])
		}
	}
	if a.Version == Version2 {
		copy(m[off:], a.AuthData[:]) // RFC 3768 §5.3.10
	}

	binary.BigEndian.PutUint16(m[checksumOffset:], checksum(a.Version, m, src, dst, form))
	return b, nil
}

// validate checks that a can be encoded for sending from src to dst (both
// already unmapped) and returns the encoded length.
func (a *Advertisement) validate(src, dst netip.Addr, form ChecksumForm) (int, error) {
	if a.VRID == 0 {
		// RFC 3768 §5.3.3: the VRID is in the range 1-255.
		return 0, errors.New("VRID 0 is not valid (1-255)")
	}
	if len(a.Addresses) == 0 {
		// RFC 9568 §5.2.5 and erratum 8299: the count MUST be at least 1.
		return 0, errors.New("no addresses")
	}
	if len(a.Addresses) > maxAddresses {
		return 0, fmt.Errorf("%d addresses, at most %d fit in Count IP Addrs", len(a.Addresses), maxAddresses)
	}

	var ipv4 bool
	switch a.Version {
	case Version2:
		// RFC 3768 §5.1: VRRPv2 runs over IPv4 only.
		if (src.IsValid() && !src.Is4()) || (dst.IsValid() && !dst.Is4()) {
			return 0, fmt.Errorf("VRRPv2 runs over IPv4 only, not %v -> %v", src, dst)
		}
		ipv4 = true
		if a.Interval%time.Second != 0 || a.Interval < time.Second || a.Interval > maxV2Interval {
			// RFC 3768 §5.3.7: Adver Int is in whole seconds, 8 bits.
			return 0, fmt.Errorf("interval %v is not whole seconds in 1s-255s", a.Interval)
		}
	case Version3:
		if !src.IsValid() || !dst.IsValid() {
			return 0, fmt.Errorf("VRRPv3 checksum needs source and destination addresses, have %v -> %v", src, dst)
		}
		if src.Is4() != dst.Is4() {
			return 0, fmt.Errorf("mixed families %v -> %v", src, dst)
		}
		if form != ChecksumPseudoHeader && form != ChecksumMessageOnly {
			return 0, fmt.Errorf("unknown checksum form %d", form)
		}
		ipv4 = src.Is4()
		if a.Interval%centisecond != 0 || a.Interval < centisecond || a.Interval > maxV3Interval {
			// RFC 5798 §5.2.7: Max Adver Int is 12 bits of centiseconds;
			// RFC 9568 erratum 8301: 0 is invalid.
			return 0, fmt.Errorf("interval %v is not a multiple of 10ms in 10ms-40.95s", a.Interval)
		}
		if a.AuthType != AuthNone || a.AuthData != [authDataLen]byte{} {
			// RFC 5798 §5.2.5: VRRPv3 has no authentication.
			return 0, errors.New("VRRPv3 carries no authentication")
		}
	default:
		return 0, fmt.Errorf("unsupported version %d", a.Version)
	}

	// RFC 5798 §5.2.9: the addresses are all of the carrying family.
	for i, ip := range a.Addresses {
		if ipv4 && !ip.Is4() {
			return 0, fmt.Errorf("address %d (%v) is not IPv4", i, ip)
		}
		if !ipv4 && !ip.Is6() {
			return 0, fmt.Errorf("address %d (%v) is not IPv6", i, ip)
		}
	}
	return messageLen(a.Version, ipv4, len(a.Addresses)), nil
}

// messageLen returns the length of an advertisement of version v with n
// addresses of the given family (RFC 3768 §5.1, RFC 5798 §5.1).
func messageLen(v Version, ipv4 bool, n int) int {
	switch {
	case v == Version2:
		return headerLen + 4*n + authDataLen
	case ipv4:
		return headerLen + 4*n
	default:
		return headerLen + 16*n
	}
}

// ParseAdvertisement decodes the VRRP message b (the IP payload) received
// from src to dst and verifies its checksum.
//
// For VRRPv3 the family of the addresses comes from src (src.Is4(), an
// IPv4-mapped IPv6 address counting as IPv4) and dst must be of the same
// family: over IPv6 the checksum includes the RFC 8200 §8.1 pseudo-header;
// over IPv4 both forms are accepted, the keepalived pseudo-header form of
// RFC 5798 §5.2.8 and the message-only form of RFC 9568 §5.2.8. For VRRPv2
// the checksum covers the message only (RFC 3768 §5.3.8) and src and dst
// are not used unless they are IPv6, which is an error.
//
// Bytes beyond the length given by Count IP Addrs are ignored, as
// keepalived does for Ethernet minimum-frame padding; they are not covered
// by the checksum.
//
// ParseAdvertisement returns an error wrapping [io.ErrUnexpectedEOF] if b
// is shorter than its Count IP Addrs requires (for VRRPv2 including the 8
// bytes of Authentication Data), and an error if the version is not 2 or
// 3, the type is not ADVERTISEMENT, the checksum is wrong, or the VRID,
// count or interval is 0. It does not apply an instance's receive rules (TTL,
// VRID, authentication): that is [Filter.Check]'s job.
func ParseAdvertisement(b []byte, src, dst netip.Addr) (*Advertisement, error) {
	a, _, err := parse(b, src, dst)
	if err != nil {
		return nil, fmt.Errorf("vrrp: parse advertisement: %w", err)
	}
	return a, nil
}

// parse is ParseAdvertisement, also returning the reason a receiver drops
// the message. Its errors carry no "vrrp:" prefix so that callers can
// wrap them.
func parse(b []byte, src, dst netip.Addr) (*Advertisement, DropReason, error) {
	if len(b) < headerLen {
		return nil, DropShort, fmt.Errorf("%d bytes, header needs %d: %w", len(b), headerLen, io.ErrUnexpectedEOF)
	}
	src, dst = src.Unmap(), dst.Unmap()

	v := Version(b[0] >> 4)
	var ipv4 bool
	switch v {
	case Version2:
		// RFC 3768 §5.1: VRRPv2 runs over IPv4 only.
		if (src.IsValid() && !src.Is4()) || (dst.IsValid() && !dst.Is4()) {
			return nil, DropVersion, fmt.Errorf("VRRPv2 over IPv6 (%v -> %v)", src, dst)
		}
		ipv4 = true
	case Version3:
		if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
			return nil, DropMalformed, fmt.Errorf("VRRPv3 needs source and destination of one family to verify the checksum, have %v -> %v", src, dst)
		}
		ipv4 = src.Is4()
	default:
		// RFC 3768 §7.1, RFC 5798 §7.1: unknown version.
		return nil, DropVersion, fmt.Errorf("unsupported version %d", v)
	}
	if t := b[0] & 0x0f; t != typeAdvertisement {
		// RFC 3768 §5.3.2, RFC 5798 §5.2.2: unknown types MUST be discarded.
		return nil, DropType, fmt.Errorf("type %d is not ADVERTISEMENT (1)", t)
	}

	count := int(b[3])
	if count == 0 {
		// RFC 9568 §5.2.5 and erratum 8299: a count of 0 is ignored.
		return nil, DropNoAddresses, errors.New("Count IP Addrs is 0")
	}
	n := messageLen(v, ipv4, count)
	if len(b) < n {
		// RFC 3768 §7.1: the packet MUST be complete, auth data included.
		return nil, DropShort, fmt.Errorf("%d bytes, %d addresses need %d: %w", len(b), count, n, io.ErrUnexpectedEOF)
	}
	// keepalived tolerates padding after the message; so do we. The
	// checksum covers the message only.
	b = b[:n]

	// RFC 3768 §7.1, RFC 5798 §7.1: the checksum MUST be verified. Over
	// IPv4 VRRPv3 accepts both forms (see ChecksumForm).
	if !verifyChecksum(v, b, src, dst, ChecksumPseudoHeader) &&
		(v != Version3 || !ipv4 || !verifyChecksum(v, b, src, dst, ChecksumMessageOnly)) {
		return nil, DropChecksum, fmt.Errorf("bad checksum %#04x from %v to %v", binary.BigEndian.Uint16(b[checksumOffset:]), src, dst)
	}

	if b[1] == 0 {
		// RFC 3768 §5.3.3, RFC 5798 §5.2.3: the VRID is in the range 1-255.
		return nil, DropVRID, errors.New("VRID 0")
	}
	a := &Advertisement{
		Version:   v,
		VRID:      b[1],
		Priority:  b[2],
		Addresses: make([]netip.Addr, count),
	}
	off := headerLen
	for i := range a.Addresses {
		if ipv4 {
			a.Addresses[i] = netip.AddrFrom4([4]byte(b[off : off+4]))
			off += 4
		} else {
			a.Addresses[i] = netip.AddrFrom16([16]byte(b[off : off+16]))
			off += 16
		}
	}
	if v == Version2 {
		a.AuthType = AuthType(b[4])                    // RFC 3768 §5.3.6
		a.Interval = time.Duration(b[5]) * time.Second // RFC 3768 §5.3.7
		a.AuthData = [authDataLen]byte(b[off:])        // RFC 3768 §5.3.10
	} else {
		// RFC 5798 §5.2.5: the reserved bits are ignored on reception.
		a.Interval = time.Duration(binary.BigEndian.Uint16(b[4:])&0x0fff) * centisecond
	}
	if a.Interval == 0 {
		// RFC 9568 erratum 8301 (Max Adver Int 0 MUST be discarded); a
		// VRRPv2 Adver Int of 0 can match no configuration either.
		return nil, DropMalformed, errors.New("advertisement interval is 0")
	}
	return a, "", nil
}
