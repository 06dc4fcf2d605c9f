package vrrp

import (
	"context"
	"net/netip"
	"time"
)

// Version is the VRRP protocol version, carried in the high nibble of the
// first byte of an advertisement (RFC 3768 §5.3.1, RFC 5798 §5.2.1).
type Version uint8

// The protocol versions nlb speaks.
const (
	// Version2 is VRRPv2 (RFC 3768): IPv4 only, whole-second intervals,
	// optional PASS authentication.
	Version2 Version = 2
	// Version3 is VRRPv3 (RFC 5798, RFC 9568): IPv4 and IPv6, centisecond
	// intervals, no authentication.
	Version3 Version = 3
)

// AuthType is the VRRPv2 Auth Type field (RFC 3768 §5.3.6).
type AuthType uint8

// VRRPv2 authentication types.
const (
	// AuthNone carries no authentication (RFC 3768 §5.3.6).
	AuthNone AuthType = 0
	// AuthPassword is the simple text password of RFC 2338 §5.3.6.1
	// (keepalived's "auth_type PASS"): up to 8 bytes, zero padded, in the
	// Authentication Data field.
	AuthPassword AuthType = 1
)

// ChecksumForm selects how a VRRPv3 checksum over IPv4 is computed.
// RFC 5798 §5.2.8 (and keepalived by default) includes an IPv4
// pseudo-header; RFC 9568 §5.2.8 covers the VRRP message only
// (keepalived's v3_checksum_as_v2). VRRPv2 never uses a pseudo-header and
// VRRPv3 over IPv6 always does, whatever the form.
type ChecksumForm uint8

// Checksum forms for VRRPv3 over IPv4.
const (
	// ChecksumPseudoHeader is the keepalived-compatible form, the default.
	ChecksumPseudoHeader ChecksumForm = iota
	// ChecksumMessageOnly is the RFC 9568 form.
	ChecksumMessageOnly
)

// Protocol numbers and groups (RFC 3768 §5.2.2, §5.2.4; RFC 5798 §5.1.1.2,
// §5.1.2.2).
const (
	// IPProtocol is the IP protocol number (IPv6 next header) of VRRP.
	IPProtocol = 112
	// TTL is the only IPv4 TTL / IPv6 hop limit a multicast advertisement
	// may carry (RFC 3768 §5.2.3, RFC 5798 §5.1.1.3 and §5.1.2.3).
	TTL = 255
)

// MulticastGroup returns the group advertisements are sent to: 224.0.0.18
// for IPv4 (RFC 3768 §5.2.2) or ff02::12 for IPv6 (RFC 5798 §5.1.2.2).
func MulticastGroup(ipv6 bool) netip.Addr {
	if ipv6 {
		return netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 15: 0x12})
	}
	return netip.AddrFrom4([4]byte{224, 0, 0, 18})
}

// Advertisement is one VRRP ADVERTISEMENT message, the IP payload of a
// protocol-112 packet.
//
// VRRPv2 (RFC 3768 §5.1):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   Auth Type   |   Adver Int   |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                         IP Address (1)                        |
//	|                            ...                                |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                     Authentication Data (1)                   |
//	|                     Authentication Data (2)                   |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// VRRPv3 (RFC 5798 §5.1, RFC 9568 §5.1):
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|(rsvd) |     Max Adver Int     |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       IPvX Address(es)                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type Advertisement struct {
	// Version is 2 or 3.
	Version Version
	// VRID is the Virtual Router Identifier, 1-255 (RFC 3768 §5.3.3).
	VRID uint8
	// Priority is the sender's priority: 255 for the address owner, 1-254
	// for backups, 0 for a master that is releasing (RFC 3768 §5.3.4).
	Priority uint8
	// Interval is the advertisement interval: Adver Int in whole seconds
	// for VRRPv2 (RFC 3768 §5.3.7), Max Adver Int in centiseconds for
	// VRRPv3 (RFC 5798 §5.2.6).
	Interval time.Duration
	// AuthType is the VRRPv2 Auth Type; always AuthNone for VRRPv3.
	AuthType AuthType
	// AuthData is the VRRPv2 Authentication Data: the zero-padded password
	// for AuthPassword, zero otherwise. Unused for VRRPv3.
	AuthData [8]byte
	// Addresses are the virtual addresses, all of the carrying IP family
	// (RFC 5798 §5.2.9).
	Addresses []netip.Addr
}

// PacketInfo is what the socket layer reports about a received packet,
// from the IP header and ancillary data.
type PacketInfo struct {
	// Src is the IP source address: the sender's primary address.
	Src netip.Addr
	// Dst is the IP destination address: the multicast group, or the
	// local address for unicast.
	Dst netip.Addr
	// TTL is the IPv4 TTL or IPv6 hop limit; -1 if unknown.
	TTL int
	// IfIndex is the index of the receiving interface; 0 if unknown.
	IfIndex int
}

// Conn sends and receives advertisements. It is the seam between the pure
// protocol code and the raw protocol-112 socket; package socket implements
// it on Linux and tests use in-memory fakes.
type Conn interface {
	// ReadFrom reads one VRRP message (the IP payload, without the IP
	// header) into b and reports what the IP layer knew about it. It blocks
	// until a packet arrives or the Conn is closed.
	ReadFrom(b []byte) (n int, info PacketInfo, err error)
	// WriteTo sends one VRRP message to dst: the multicast group or a
	// unicast peer. The Conn sets TTL / hop limit 255 and the source
	// address the instance was configured with.
	WriteTo(b []byte, dst netip.Addr) error
	// Close unblocks ReadFrom and releases the socket.
	Close() error
}

// Effects are the operating-system side effects of a state change. Each
// func may be nil in tests that do not care. They are called from the
// instance's goroutine only, one at a time.
type Effects struct {
	// AddVIPs configures the virtual addresses on the interface. A
	// lifetime above 0 is their valid lifetime: the kernel removes them
	// by itself when it runs out, so that a Master that is killed or
	// stopped does not keep them (see [VIPLifetime]); RefreshVIPs
	// restarts it. 0 keeps them until RemoveVIPs (the instance passes 0
	// when RefreshVIPs is nil).
	AddVIPs func(ctx context.Context, lifetime time.Duration) error
	// RefreshVIPs restarts the valid lifetime of the addresses AddVIPs
	// configured: lifetime from now, changed in place (the addresses are
	// never removed and added again). A Master calls it with its adverts
	// (see [VIPLifetime]). nil: the addresses get no lifetime.
	RefreshVIPs func(ctx context.Context, lifetime time.Duration) error
	// RemoveVIPs removes the virtual addresses from the interface. It
	// must succeed when they are already absent.
	RemoveVIPs func(ctx context.Context) error
	// Announce sends one gratuitous ARP (IPv4) or unsolicited Neighbor
	// Advertisement (IPv6) for every virtual address (RFC 3768 §6.4.2,
	// RFC 5798 §6.4.2).
	Announce func(ctx context.Context) error
}
