//go:build linux

package vip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Raw rtnetlink requests for what vishvananda/netlink does not offer: the
// IFA_PROTO mark on addresses, RFC 6724 address labels and the IPv4
// promote_secondaries setting. They go through one socket kept in osState,
// opened in the caller's network namespace on first use, so that later
// calls from any goroutine (the watcher's) reach the same namespace.

// Attributes and values x/sys/unix does not define.
const (
	ifaProto = 11 // IFA_PROTO (u8), include/uapi/linux/if_addr.h

	// IPV4_DEVCONF_PROMOTE_SECONDARIES, include/uapi/linux/ip.h; the
	// IFLA_INET_CONF array holds IPV4_DEVCONF_* - 1 at each index.
	devconfPromoteSecondaries = 20

	dumpRetries = 3 // a dump interrupted by a concurrent change is retried

	lifetimeForever = ^uint32(0) // INFINITY_LIFE_TIME in IFA_CACHEINFO
)

// rtnl is a NETLINK_ROUTE socket for raw requests.
type rtnl struct{ sh *nl.SocketHandle }

func openRTNL() (*rtnl, error) {
	s, err := nl.Subscribe(unix.NETLINK_ROUTE) // no groups: a plain request socket
	if err != nil {
		return nil, err
	}
	return &rtnl{sh: &nl.SocketHandle{Socket: s}}, nil
}

func (r *rtnl) close() { r.sh.Close() }

func (r *rtnl) request(typ, flags int) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(typ, flags)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: r.sh}
	return req
}

// dump runs a dump request built by mk, retrying when the kernel reports
// that the dump was interrupted by a change.
func (r *rtnl) dump(mk func() *nl.NetlinkRequest, resType uint16) ([][]byte, error) {
	var err error
	for range dumpRetries {
		var msgs [][]byte
		msgs, err = mk().Execute(unix.NETLINK_ROUTE, resType)
		if err == nil {
			return msgs, nil
		}
		if !errors.Is(err, nl.ErrDumpInterrupted) {
			return nil, err
		}
	}
	return nil, err
}

// addrs lists every address of every interface, both families.
func (r *rtnl) addrs() ([]addrEntry, error) {
	msgs, err := r.dump(func() *nl.NetlinkRequest {
		req := r.request(unix.RTM_GETADDR, unix.NLM_F_DUMP)
		req.AddData(nl.NewIfAddrmsg(unix.AF_UNSPEC))
		return req
	}, unix.RTM_NEWADDR)
	if err != nil {
		return nil, err
	}
	out := make([]addrEntry, 0, len(msgs))
	for _, b := range msgs {
		if e, ok := parseAddr(b); ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// parseAddr decodes one RTM_NEWADDR message: struct ifaddrmsg and its
// attributes. IFA_LOCAL is the local address; IPv6 sends IFA_ADDRESS alone.
func parseAddr(b []byte) (addrEntry, bool) {
	if len(b) < unix.SizeofIfAddrmsg {
		return addrEntry{}, false
	}
	m := nl.DeserializeIfAddrmsg(b)
	attrs, err := nl.ParseRouteAttr(b[unix.SizeofIfAddrmsg:])
	if err != nil {
		return addrEntry{}, false
	}
	e := addrEntry{index: int(m.Index), flags: uint32(m.Flags), scope: m.Scope}
	var local, address []byte
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.IFA_LOCAL:
			local = a.Value
		case unix.IFA_ADDRESS:
			address = a.Value
		case unix.IFA_FLAGS:
			if len(a.Value) >= 4 {
				e.flags = nl.NativeEndian().Uint32(a.Value)
			}
		case ifaProto:
			if len(a.Value) >= 1 {
				e.proto, e.hasProto = a.Value[0], true
			}
		}
	}
	if local == nil {
		local = address
	}
	ip, ok := netip.AddrFromSlice(local)
	if !ok {
		return addrEntry{}, false
	}
	e.prefix = netip.PrefixFrom(ip.Unmap(), int(m.Prefixlen))
	return e, e.prefix.IsValid()
}

// newAddr describes an address to add.
type newAddr struct {
	index     int
	prefix    netip.Prefix
	flags     uint32
	broadcast bool // IPv4 below /31: add the directed broadcast
	// valid is the valid lifetime in seconds, 0 for forever. The
	// preferred lifetime equals it, unless deprecated makes it 0.
	valid      uint32
	deprecated bool
}

// addAddr adds a, or updates it in place (NLM_F_REPLACE: lifetimes,
// IFA_PROTO, and for IPv6 the flags) when the same address and prefix
// length exist: an update never removes the address, so it keeps
// answering throughout. The kernel adds a missing address whatever the
// flags (it ignores the absence of NLM_F_CREATE for addresses).
func (r *rtnl) addAddr(a newAddr) error {
	req := r.request(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK)
	ip := a.prefix.Addr()
	family := unix.AF_INET
	if ip.Is6() {
		family = unix.AF_INET6
	}
	msg := nl.NewIfAddrmsg(family)
	msg.Prefixlen = uint8(a.prefix.Bits())
	msg.Flags = uint8(a.flags)
	msg.Scope = scopeUniverse
	msg.Index = uint32(a.index)
	req.AddData(msg)
	raw := ip.AsSlice()
	req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, raw))
	req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, raw))
	if a.broadcast && ip.Is4() && a.prefix.Bits() < 31 {
		b := ip.As4()
		host := ^uint32(0) >> a.prefix.Bits()
		binary.BigEndian.PutUint32(b[:], binary.BigEndian.Uint32(b[:])|host)
		req.AddData(nl.NewRtAttr(unix.IFA_BROADCAST, b[:]))
	}
	req.AddData(nl.NewRtAttr(unix.IFA_FLAGS, nl.Uint32Attr(a.flags)))
	if a.valid != 0 || a.deprecated {
		valid := a.valid
		if valid == 0 {
			valid = lifetimeForever
		}
		preferred := valid
		if a.deprecated {
			preferred = 0
		}
		ci := make([]byte, unix.SizeofIfaCacheinfo)
		nl.NativeEndian().PutUint32(ci[0:], preferred) // ifa_prefered
		nl.NativeEndian().PutUint32(ci[4:], valid)     // ifa_valid
		req.AddData(nl.NewRtAttr(unix.IFA_CACHEINFO, ci))
	}
	req.AddData(nl.NewRtAttr(ifaProto, []byte{AddrProto}))
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return needsNetAdmin(err)
}

// delAddr deletes the address e exactly (address, prefix length,
// interface). An address already gone is not an error.
func (r *rtnl) delAddr(e addrEntry) error {
	req := r.request(unix.RTM_DELADDR, unix.NLM_F_ACK)
	ip := e.prefix.Addr()
	family := unix.AF_INET
	if ip.Is6() {
		family = unix.AF_INET6
	}
	msg := nl.NewIfAddrmsg(family)
	msg.Prefixlen = uint8(e.prefix.Bits())
	msg.Index = uint32(e.index)
	req.AddData(msg)
	raw := ip.AsSlice()
	req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, raw))
	req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, raw))
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	if errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) {
		return nil
	}
	return needsNetAdmin(err)
}

// needsNetAdmin names the capability in an EPERM from an rtnetlink change:
// the kernel refuses every request but a GET without CAP_NET_ADMIN
// (rtnetlink_rcv_msg).
func needsNetAdmin(err error) error {
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("changing addresses needs CAP_NET_ADMIN: %w", err)
	}
	return err
}

// CheckPermission reports an error naming CAP_NET_ADMIN when the process
// lacks it in its effective set (capget(2); it changes nothing). Listing
// addresses needs no capability, so without this check a Manager passes
// Check and Remove at start-up and fails only at its first Add, when the
// instance is already Master and announcing the VIPs it cannot add.
func CheckPermission() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("vip: capget: %w", err)
	}
	if data[unix.CAP_NET_ADMIN/32].Effective&(1<<(unix.CAP_NET_ADMIN%32)) == 0 {
		return fmt.Errorf("vip: adding the VIPs needs CAP_NET_ADMIN: %w", unix.EPERM)
	}
	return nil
}

// ifAddrLblMsg is struct ifaddrlblmsg (include/uapi/linux/if_addrlabel.h),
// the header of RTM_{NEW,DEL,GET}ADDRLABEL.
type ifAddrLblMsg struct {
	family    uint8
	prefixLen uint8
	flags     uint8
	index     uint32
}

// Len implements nl.NetlinkRequestData.
func (m *ifAddrLblMsg) Len() int { return unix.SizeofIfAddrlblmsg }

// Serialize implements nl.NetlinkRequestData: family, reserved,
// prefixlen, flags, index, seq.
func (m *ifAddrLblMsg) Serialize() []byte {
	b := make([]byte, unix.SizeofIfAddrlblmsg)
	b[0], b[2], b[3] = m.family, m.prefixLen, m.flags
	nl.NativeEndian().PutUint32(b[4:], m.index)
	return b
}

// addrLabel is one entry of the kernel's RFC 6724 policy table.
type addrLabel struct {
	prefix netip.Prefix
	index  int // 0: every interface
	label  uint32
}

// labelRequest builds an RTM_NEWADDRLABEL or RTM_DELADDRLABEL. The kernel
// wants IFAL_LABEL on deletion too, though it matches on the prefix, its
// length and the interface alone (net/ipv6/addrlabel.c ip6addrlbl_newdel).
func (r *rtnl) labelRequest(typ, flags int, l addrLabel) *nl.NetlinkRequest {
	req := r.request(typ, flags)
	req.AddData(&ifAddrLblMsg{family: unix.AF_INET6, prefixLen: uint8(l.prefix.Bits()), index: uint32(l.index)})
	a := l.prefix.Addr().As16()
	req.AddData(nl.NewRtAttr(unix.IFAL_ADDRESS, a[:]))
	req.AddData(nl.NewRtAttr(unix.IFAL_LABEL, nl.Uint32Attr(l.label)))
	return req
}

// addLabel installs or replaces a label, as `ip addrlabel add`.
func (r *rtnl) addLabel(l addrLabel) error {
	_, err := r.labelRequest(unix.RTM_NEWADDRLABEL, unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK, l).
		Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// delLabel deletes a label; one already gone is not an error.
func (r *rtnl) delLabel(l addrLabel) error {
	if l.label == reservedLabel {
		l.label = 0 // refused even on deletion, and not matched on
	}
	_, err := r.labelRequest(unix.RTM_DELADDRLABEL, unix.NLM_F_ACK, l).Execute(unix.NETLINK_ROUTE, 0)
	if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// labels lists the IPv6 address label table.
func (r *rtnl) labels() ([]addrLabel, error) {
	msgs, err := r.dump(func() *nl.NetlinkRequest {
		req := r.request(unix.RTM_GETADDRLABEL, unix.NLM_F_DUMP)
		req.AddData(&ifAddrLblMsg{family: unix.AF_INET6})
		return req
	}, unix.RTM_NEWADDRLABEL)
	if err != nil {
		return nil, err
	}
	var out []addrLabel
	for _, b := range msgs {
		if len(b) < unix.SizeofIfAddrlblmsg {
			continue
		}
		l := addrLabel{index: int(nl.NativeEndian().Uint32(b[4:]))}
		bits := int(b[2])
		attrs, err := nl.ParseRouteAttr(b[unix.SizeofIfAddrlblmsg:])
		if err != nil {
			continue
		}
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.IFAL_ADDRESS:
				if ip, ok := netip.AddrFromSlice(a.Value); ok {
					l.prefix = netip.PrefixFrom(ip, bits)
				}
			case unix.IFAL_LABEL:
				if len(a.Value) >= 4 {
					l.label = nl.NativeEndian().Uint32(a.Value)
				}
			}
		}
		if l.prefix.IsValid() {
			out = append(out, l)
		}
	}
	return out, nil
}

// promoteSecondaries reads the interface's own IPv4 promote_secondaries
// from the IFLA_AF_SPEC / AF_INET / IFLA_INET_CONF array of RTM_GETLINK
// (net/ipv4/devinet.c inet_fill_link_af).
func (r *rtnl) promoteSecondaries(index int) (bool, error) {
	req := r.request(unix.RTM_GETLINK, 0)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return false, err
	}
	for _, b := range msgs {
		if len(b) < unix.SizeofIfInfomsg {
			continue
		}
		conf, ok := inetConf(b[unix.SizeofIfInfomsg:])
		if ok && len(conf) >= 4*devconfPromoteSecondaries {
			return nl.NativeEndian().Uint32(conf[4*(devconfPromoteSecondaries-1):]) != 0, nil
		}
	}
	return false, fmt.Errorf("no IPv4 settings for interface %d", index)
}

// inetConf finds IFLA_AF_SPEC / AF_INET / IFLA_INET_CONF in link attributes.
func inetConf(b []byte) ([]byte, bool) {
	find := func(b []byte, typ uint16) ([]byte, bool) {
		attrs, err := nl.ParseRouteAttr(b)
		if err != nil {
			return nil, false
		}
		for _, a := range attrs {
			if a.Attr.Type&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER) == typ {
				return a.Value, true
			}
		}
		return nil, false
	}
	spec, ok := find(b, unix.IFLA_AF_SPEC)
	if !ok {
		return nil, false
	}
	inet, ok := find(spec, unix.AF_INET)
	if !ok {
		return nil, false
	}
	return find(inet, unix.IFLA_INET_CONF)
}

// setPromoteSecondaries sets the interface's IPv4 promote_secondaries with
// RTM_SETLINK (net/ipv4/devinet.c inet_set_link_af), which needs no
// writable /proc/sys.
func (r *rtnl) setPromoteSecondaries(index int, on bool) error {
	req := r.request(unix.RTM_SETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	v := uint32(0)
	if on {
		v = 1
	}
	spec := nl.NewRtAttr(unix.IFLA_AF_SPEC|unix.NLA_F_NESTED, nil)
	inet := spec.AddRtAttr(unix.AF_INET|unix.NLA_F_NESTED, nil)
	conf := inet.AddRtAttr(unix.IFLA_INET_CONF|unix.NLA_F_NESTED, nil)
	conf.AddRtAttr(devconfPromoteSecondaries, nl.Uint32Attr(v))
	req.AddData(spec)
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// kernelHasAddrProto reports whether the running kernel is 5.18 or later,
// the first to keep IFA_PROTO. It is asked only when no dumped address
// carries the attribute (the kernel marks ::1 and link-local addresses
// itself, so a dump usually answers first).
func kernelHasAddrProto() bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	return releaseAtLeast(unix.ByteSliceToString(u.Release[:]), 5, 18)
}
