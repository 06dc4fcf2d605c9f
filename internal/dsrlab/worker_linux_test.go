//go:build linux

package dsrlab

import (
	"fmt"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// What a worker brings to a controller+worker node, in nftables as
// kube-proxy's nftables mode writes it: a Service address DNATed to an
// endpoint, masquerade of marked packets, and conntrack on every packet
// (a rule on ct state). The service address is a documentation one.
const (
	svcIP   = "198.51.100.1"
	svcPort = 443
	kpMark  = 0x4000
)

// nftConn opens nftables in h's namespace.
func nftConn(t *testing.T, h *netlab.Host) *nftables.Conn {
	t.Helper()
	ns, err := netns.GetFromName(h.NS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// workerRules installs the rules in h and returns a func that reads how
// many new connections conntrack saw there.
func workerRules(t *testing.T, h *netlab.Host, endpoint [4]byte) func() uint64 {
	t.Helper()
	c := nftConn(t, h)
	nat := c.AddTable(&nftables.Table{Name: "nlbkube", Family: nftables.TableFamilyIPv4})
	pre := c.AddChain(&nftables.Chain{Name: "services", Table: nat, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
	c.AddRule(&nftables.Rule{Table: nat, Chain: pre, Exprs: []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{198, 51, 100, 1}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(svcPort)},
		&expr.Immediate{Register: 1, Data: binaryutil.NativeEndian.PutUint32(kpMark)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
		&expr.Immediate{Register: 1, Data: endpoint[:]},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(apiPort)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2},
	}})
	post := c.AddChain(&nftables.Chain{Name: "masquerade", Table: nat, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	c.AddRule(&nftables.Rule{Table: nat, Chain: post, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(kpMark), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(kpMark)},
		&expr.Masq{},
	}})
	filter := c.AddTable(&nftables.Table{Name: "nlbkubefilter", Family: nftables.TableFamilyINet})
	input := c.AddChain(&nftables.Chain{Name: "input", Table: filter, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter})
	c.AddRule(&nftables.Rule{Table: filter, Chain: input, Exprs: []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		&expr.Counter{},
	}})
	if err := c.Flush(); err != nil {
		t.Fatalf("%s: nftables: %v", h.Name, err)
	}
	return func() uint64 {
		rules, err := c.GetRules(filter, input)
		if err != nil {
			t.Fatalf("%s: nftables: %v", h.Name, err)
		}
		for _, r := range rules {
			for _, e := range r.Exprs {
				if ctr, ok := e.(*expr.Counter); ok {
					return ctr.Packets
				}
			}
		}
		t.Fatalf("%s: no counter", h.Name)
		return 0
	}
}

// String names the rules for logs.
func workerRulesString() string {
	return fmt.Sprintf("DNAT %s:%d, masquerade of mark %#x, ct state new counted", svcIP, svcPort, kpMark)
}
