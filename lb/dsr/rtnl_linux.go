//go:build linux

package dsr

import (
	"errors"
	"net/netip"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Raw rtnetlink address requests, for the IFA_PROTO mark that
// vishvananda/netlink does not offer.

const ifaProto = 11 // IFA_PROTO (u8), include/uapi/linux/if_addr.h

type rtnl struct{ sh *nl.SocketHandle }

func openRTNL() (*rtnl, error) {
	s, err := nl.Subscribe(unix.NETLINK_ROUTE) // no groups: a request socket
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

// addrEntry is one address of the namespace.
type addrEntry struct {
	index  int
	prefix netip.Prefix
	proto  uint8
}

// addrs lists every address of every interface, both families, retrying
// a dump a concurrent change interrupted.
func (r *rtnl) addrs() ([]addrEntry, error) {
	var (
		msgs [][]byte
		err  error
	)
	for range 3 {
		req := r.request(unix.RTM_GETADDR, unix.NLM_F_DUMP)
		req.AddData(nl.NewIfAddrmsg(unix.AF_UNSPEC))
		if msgs, err = req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWADDR); !errors.Is(err, nl.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	var out []addrEntry
	for _, b := range msgs {
		if len(b) < unix.SizeofIfAddrmsg {
			continue
		}
		m := nl.DeserializeIfAddrmsg(b)
		attrs, err := nl.ParseRouteAttr(b[unix.SizeofIfAddrmsg:])
		if err != nil {
			continue
		}
		e := addrEntry{index: int(m.Index)}
		var local, address []byte
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.IFA_LOCAL:
				local = a.Value
			case unix.IFA_ADDRESS:
				address = a.Value
			case ifaProto:
				if len(a.Value) >= 1 {
					e.proto = a.Value[0]
				}
			}
		}
		if local == nil {
			local = address
		}
		ip, ok := netip.AddrFromSlice(local)
		if !ok {
			continue
		}
		e.prefix = netip.PrefixFrom(ip.Unmap(), int(m.Prefixlen))
		out = append(out, e)
	}
	return out, nil
}

func family(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// addVIP adds a as a host address (/32, /128) on index, marked with
// AddrProto; IPv6 without DAD. Adding it again is not an error.
func (r *rtnl) addVIP(index int, a netip.Addr) error {
	req := r.request(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK)
	msg := nl.NewIfAddrmsg(family(a))
	msg.Prefixlen = uint8(a.BitLen())
	msg.Scope = unix.RT_SCOPE_UNIVERSE
	msg.Index = uint32(index)
	var flags uint32
	if a.Is6() {
		flags = unix.IFA_F_NODAD
	}
	msg.Flags = uint8(flags)
	req.AddData(msg)
	raw := a.AsSlice()
	req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, raw))
	req.AddData(nl.NewRtAttr(unix.IFA_ADDRESS, raw))
	req.AddData(nl.NewRtAttr(unix.IFA_FLAGS, nl.Uint32Attr(flags)))
	req.AddData(nl.NewRtAttr(ifaProto, []byte{AddrProto}))
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// delAddr deletes e exactly; an address already gone is not an error.
func (r *rtnl) delAddr(e addrEntry) error {
	req := r.request(unix.RTM_DELADDR, unix.NLM_F_ACK)
	ip := e.prefix.Addr()
	msg := nl.NewIfAddrmsg(family(ip))
	msg.Prefixlen = uint8(e.prefix.Bits())
	msg.Index = uint32(e.index)
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFA_LOCAL, ip.AsSlice()))
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	if errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENODEV) {
		return nil
	}
	return err
}
