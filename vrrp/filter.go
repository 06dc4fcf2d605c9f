package vrrp

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// DropReason says why [Filter.Check] discarded an advertisement. The set is
// bounded so that it can label a Prometheus counter.
type DropReason string

// Reasons for discarding a received advertisement (RFC 3768 §7.1,
// RFC 5798 §7.1, RFC 9568 §7.1 and errata).
const (
	// DropShort: the packet is shorter than its header or than its Count
	// IP Addrs requires (RFC 3768 §7.1: "MUST verify that the received
	// packet contains the complete VRRP packet").
	DropShort DropReason = "short"
	// DropVersion: the version is not the instance's, or VRRPv2 arrived
	// over IPv6.
	DropVersion DropReason = "version"
	// DropType: the type is not ADVERTISEMENT (RFC 3768 §5.3.2).
	DropType DropReason = "type"
	// DropTTL: the IPv4 TTL or IPv6 hop limit is not 255 (RFC 3768
	// §5.2.3, RFC 5798 §5.1.1.3, §5.1.2.3).
	DropTTL DropReason = "ttl"
	// DropChecksum: the checksum does not verify in any accepted form.
	DropChecksum DropReason = "checksum"
	// DropVRID: the VRID is not the instance's.
	DropVRID DropReason = "vrid"
	// DropAuth: the VRRPv2 Auth Type or password does not match.
	DropAuth DropReason = "auth"
	// DropInterval: the VRRPv2 Adver Int differs from the instance's
	// (RFC 3768 §7.1).
	DropInterval DropReason = "interval"
	// DropNoAddresses: Count IP Addrs is 0 (RFC 9568 erratum 8299).
	DropNoAddresses DropReason = "no_addresses"
	// DropAddresses: the advertised address list is not the instance's
	// virtual addresses: the count differs, or one of ours is missing, or
	// one listed is not ours. Dropped in every state and at every
	// priority, 255 included: a sender on our VRID that advertises
	// another VIP (another cluster with the same defaults) is not our
	// Master and must not make us release ours. RFC 3768 §7.1 makes the
	// check a MAY and exempts the address owner (priority 255) from the
	// drop; RFC 5798 §7.1 only logs. keepalived up to 2.3.2 (Debian's
	// 2.2.7) drops without the owner exemption, 2.3.3 and later accept;
	// see [Filter.Check].
	DropAddresses DropReason = "addresses"
	// DropPeer: in unicast mode, the source is not a configured peer.
	DropPeer DropReason = "peer"
	// DropMalformed: the message is otherwise invalid, for example a zero
	// interval (RFC 9568 erratum 8301) or VRRPv3 without usable source and
	// destination addresses.
	DropMalformed DropReason = "malformed"
)

// DropError is the error [Filter.Check] returns for a discarded
// advertisement.
type DropError struct {
	// Reason is the bounded reason, suitable as a metric label.
	Reason DropReason
	// Err describes the problem in detail.
	Err error
}

// Error implements error: "vrrp: dropped advertisement (<reason>): <detail>".
func (e *DropError) Error() string {
	if e.Err == nil {
		return "vrrp: dropped advertisement (" + string(e.Reason) + ")"
	}
	return "vrrp: dropped advertisement (" + string(e.Reason) + "): " + e.Err.Error()
}

// Unwrap returns the detailed error.
func (e *DropError) Unwrap() error { return e.Err }

// ReasonOf returns the DropReason of the first [*DropError] in err's chain,
// or "" if there is none.
func ReasonOf(err error) DropReason {
	var de *DropError
	if errors.As(err, &de) {
		return de.Reason
	}
	return ""
}

// drop returns a *DropError.
func drop(r DropReason, format string, args ...any) error {
	return &DropError{Reason: r, Err: fmt.Errorf(format, args...)}
}

// Filter holds what one instance expects of received advertisements and
// applies the receive rules of RFC 3768 §7.1 and RFC 5798 / RFC 9568 §7.1,
// in the order keepalived's vrrp_check_packet does where it matters:
// length, TTL, version, type, checksum, VRID, authentication, interval,
// address list, unicast peer.
//
// A Filter is not modified by Check and may be shared by goroutines that do
// not modify it.
type Filter struct {
	// Version is the instance's VRRP version; other versions are dropped.
	Version Version
	// VRID is the instance's Virtual Router ID; other VRIDs are dropped.
	VRID uint8
	// Interval is the instance's advertisement interval. VRRPv2: an
	// advertisement whose Adver Int differs MUST be discarded (RFC 3768
	// §7.1). VRRPv3: a mismatch is accepted, the Backup adopts the
	// Master's interval (RFC 5798 §6.4.2, §7.1).
	Interval time.Duration
	// AuthType is the VRRPv2 Auth Type the instance expects: AuthNone or
	// AuthPassword. Ignored for VRRPv3.
	AuthType AuthType
	// AuthData is the VRRPv2 PASS password, zero padded to 8 bytes. Used
	// only with AuthPassword.
	AuthData [8]byte
	// Unicast is set in unicast mode: the TTL check is skipped, as
	// keepalived does, and the source must be one of Peers.
	Unicast bool
	// Peers are the unicast peers' addresses; used only in unicast mode.
	Peers []netip.Addr
	// Addresses are the instance's virtual addresses, in any order. An
	// advertisement must list exactly these (DropAddresses). Every
	// instance has at least one, so an empty list matches no
	// advertisement; [NewInstance] fills it from InstanceConfig.Addresses.
	Addresses []netip.Addr
}

// Check validates one received packet, b being the IP payload and info what
// the IP layer reported, and returns the decoded advertisement, or nil and
// a [*DropError] saying why the packet must be discarded.
//
// Check requires the advertised addresses to be the instance's virtual
// addresses, whatever the sender's priority (DropAddresses; see the comment
// in the code), and accepts a VRRPv3 IPv6 advertisement whose first address
// is not link-local, as keepalived sends them (RFC 9568 erratum 8300 is not
// enforced; see the comment in the code).
func (f *Filter) Check(info PacketInfo, b []byte) (*Advertisement, error) {
	if len(b) < headerLen {
		// RFC 3768 §7.1: the packet MUST be complete.
		return nil, drop(DropShort, "%d bytes, header needs %d", len(b), headerLen)
	}
	if !f.Unicast && info.TTL >= 0 && info.TTL != TTL {
		// RFC 3768 §5.2.3 and §7.1, RFC 5798 §5.1.1.3, §5.1.2.3 and §7.1:
		// TTL / hop limit MUST be 255. keepalived skips this for unicast
		// peers, which may be routed.
		return nil, drop(DropTTL, "TTL %d from %v, want %d", info.TTL, info.Src, TTL)
	}
	if v := Version(b[0] >> 4); v != f.Version {
		// RFC 3768 §7.1, RFC 5798 §7.1: version MUST match the configured
		// one (RFC 5798 §8.4 v2/v3 interoperation is not supported).
		return nil, drop(DropVersion, "version %d from %v, want %d", v, info.Src, f.Version)
	}
	if t := b[0] & 0x0f; t != typeAdvertisement {
		// RFC 3768 §5.3.2, RFC 5798 §5.2.2: unknown types MUST be discarded.
		return nil, drop(DropType, "type %d from %v, want %d", t, info.Src, typeAdvertisement)
	}

	// Length, count 0, checksum and zero interval (RFC 3768 §7.1, RFC 5798
	// §7.1, RFC 9568 errata 8299 and 8301).
	a, reason, err := parse(b, info.Src, info.Dst)
	if err != nil {
		return nil, &DropError{Reason: reason, Err: fmt.Errorf("from %v: %w", info.Src, err)}
	}

	if a.VRID != f.VRID {
		// RFC 3768 §7.1, RFC 5798 §7.1: the VRID MUST be configured on the
		// receiving interface.
		return nil, drop(DropVRID, "VRID %d from %v, want %d", a.VRID, info.Src, f.VRID)
	}

	if a.Version == Version2 {
		if a.AuthType != f.AuthType {
			// RFC 3768 §7.1: Auth Type MUST match the configured one.
			return nil, drop(DropAuth, "auth type %d from %v, want %d", a.AuthType, info.Src, f.AuthType)
		}
		switch f.AuthType {
		case AuthNone:
			// RFC 3768 §5.3.10: Authentication Data is ignored on reception.
		case AuthPassword:
			// RFC 2338 §5.3.6.1 simple password, compared in constant time
			// as keepalived does, so the compare leaks no prefix length.
			if subtle.ConstantTimeCompare(a.AuthData[:], f.AuthData[:]) != 1 {
				return nil, drop(DropAuth, "wrong password from %v", info.Src)
			}
		default:
			// IP Authentication Header (RFC 2338 type 2) wraps VRRP in AH,
			// which never reaches this layer; other types are unknown.
			return nil, drop(DropAuth, "unsupported auth type %d from %v", f.AuthType, info.Src)
		}
		if a.Interval != f.Interval {
			// RFC 3768 §7.1: Adver Int MUST match the configured one;
			// keepalived: "to prevent concurrent VRID running => multiple
			// master in 1 VRID".
			return nil, drop(DropInterval, "interval %v from %v, want %v", a.Interval, info.Src, f.Interval)
		}
	}
	// VRRPv3: a Max Adver Int that differs from the configured one is not
	// dropped (RFC 5798 §7.1 SHOULD log; the Backup adopts it, §6.4.2).

	// RFC 5798 §5.2.9 and RFC 9568 erratum 8300 make an IPv6 advertisement
	// whose first address is not link-local invalid. This is deliberately
	// not enforced: keepalived 2.2.7 sends the virtual addresses as
	// configured, and a configuration with only global IPv6 addresses puts
	// a global address first (it logs "the first IPv6 VIP address should be
	// link local" and sends anyway; testdata/golden/keepalived-v3-ipv6.txt).
	// Interoperating with it wins.

	// RFC 3768 §7.1: the receiver "MAY verify that 'Count IP Addrs' and
	// the list of IP Address matches the IP_Addresses configured for the
	// VRID"; on a mismatch it SHOULD log, and MUST drop unless the sender
	// is the address owner (priority 255). RFC 5798 §7.1 (VRRPv3) has the
	// same MAY and only logs. nlb drops every mismatch, v2 and v3, IPv4
	// and IPv6, in every state and at every priority, as keepalived 2.2.7
	// (Debian's, the interop peer) does: its vrrp_check_packet returns
	// VRRP_PACKET_KO on "received an unexpected ip number count" and "ip
	// address associated with VRID %d not present in MASTER advert"
	// (addr_list_err), always in MASTER state and in BACKUP unless
	// skip_check_adv_addr (nlb has no such option), with no owner
	// exemption. Since 2.3.3 (commit 0a82ab55; k0s embeds 2.4.3)
	// keepalived only logs and counts a mismatch, of the count too, and
	// accepts the advert. Dropping is deliberate: the advert comes from
	// another virtual router that shares our VRID (another k0s cluster
	// with the defaults, VRID 51 and the same password), so obeying it
	// makes our Master release a VIP that nobody else then holds; and a
	// stranger claiming priority 255 for somebody else's addresses is
	// exactly the one to refuse.
	if err := f.checkAddresses(a); err != nil {
		return nil, drop(DropAddresses, "from %v (priority %d): %w", info.Src, a.Priority, err)
	}

	if f.Unicast && !f.isPeer(info.Src) {
		// keepalived checks the unicast source against unicast_peer last.
		return nil, drop(DropPeer, "source %v is not a unicast peer", info.Src)
	}
	return a, nil
}

// isPeer reports whether src is one of f.Peers, ignoring IPv6 zones and
// IPv4-mapped forms.
func (f *Filter) isPeer(src netip.Addr) bool {
	src = src.Unmap().WithZone("")
	return src.IsValid() && slices.ContainsFunc(f.Peers, func(p netip.Addr) bool {
		return p.Unmap().WithZone("") == src
	})
}

// checkAddresses reports how a's address list differs from f.Addresses, or
// nil if they are the same list in any order. Both lists are at most 255
// long (Count IP Addrs is 8 bits; NewInstance enforces it for ours), so the
// quadratic compare is bounded.
func (f *Filter) checkAddresses(a *Advertisement) error {
	if len(a.Addresses) != len(f.Addresses) {
		return fmt.Errorf("%d addresses %v, want %d", len(a.Addresses), firstAddresses(a.Addresses), len(f.Addresses))
	}
	// Both directions, so that duplicates on either side cannot hide a
	// foreign address behind an equal count.
	for _, ours := range f.Addresses {
		if !containsAddr(a.Addresses, ours) {
			return fmt.Errorf("our address %v missing from %v", ours, firstAddresses(a.Addresses))
		}
	}
	for _, theirs := range a.Addresses {
		if !containsAddr(f.Addresses, theirs) {
			return fmt.Errorf("address %v is not ours", theirs)
		}
	}
	return nil
}

// sameAddresses reports whether a and b hold the same addresses in any
// order (as sets, with equal lengths), ignoring IPv6 zones and IPv4-mapped
// forms.
func sameAddresses(a, b []netip.Addr) bool {
	f := Filter{Addresses: b}
	return f.checkAddresses(&Advertisement{Addresses: a}) == nil
}

// containsAddr reports whether list holds addr, ignoring IPv6 zones and
// IPv4-mapped forms.
func containsAddr(list []netip.Addr, addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	return slices.ContainsFunc(list, func(x netip.Addr) bool { return x.Unmap().WithZone("") == addr })
}

// firstAddresses returns addrs, shortened to the first few for an error
// message.
func firstAddresses(addrs []netip.Addr) []netip.Addr {
	const show = 4
	if len(addrs) > show {
		return addrs[:show]
	}
	return addrs
}
