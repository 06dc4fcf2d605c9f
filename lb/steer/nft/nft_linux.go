//go:build linux

package nft

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// TableName is the name of nlb's tables in the ip and ip6 families.
const TableName = "nlb"

// Chain names inside the tables.
const (
	chainPrerouting = "prerouting"
	chainOutput     = "output"
)

// Header offsets of the fields the rules match.
const (
	ip4DaddrOffset = 16 // RFC 791 §3.1: destination address
	ip6DaddrOffset = 24 // RFC 8200 §3: destination address
	tcpDportOffset = 2  // RFC 9293 §3.1: destination port
)

// Config says what to steer where.
type Config struct {
	// NetNS is the path of the network namespace to program, for example
	// /run/netns/NAME; empty means the namespace of the process.
	NetNS string
	// VIPs are the destination addresses to redirect, IPv4 or IPv6.
	VIPs []netip.Addr
	// Port is the destination port to redirect (the API port, 6443).
	Port uint16
	// ProxyPort is the port the connections are redirected to (6444).
	ProxyPort uint16
}

// Rules are nlb's installed tables. Close removes them.
type Rules struct {
	mu      sync.Mutex
	netns   string
	comment string // on every rule: tells this Attach's tables from a later one's
	closed  bool
}

// Counts are what [Count] finds of nlb's tables.
type Counts struct {
	// Tables is the number of tables named TableName (ip and ip6).
	Tables int
	// Chains is the number of chains in them.
	Chains int
	// Rules is the number of rules in those chains.
	Rules int
}

// families are the table families nlb uses.
func families() []nftables.TableFamily {
	return []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6}
}

func (c Config) validate() error {
	if c.Port == 0 || c.ProxyPort == 0 {
		return errors.New("nft: port 0")
	}
	if c.Port == c.ProxyPort {
		return fmt.Errorf("nft: port and proxy port are both %d", c.Port)
	}
	if len(c.VIPs) == 0 {
		return errors.New("nft: no VIPs")
	}
	for _, a := range c.VIPs {
		a = a.Unmap()
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.Zone() != "" {
			return fmt.Errorf("nft: invalid VIP %q", a)
		}
	}
	return nil
}

// Attach replaces nlb's tables in the namespace with ones that redirect
// cfg.VIPs:cfg.Port to cfg.ProxyPort, in one transaction. A family without
// VIPs ends up with no nlb table.
func Attach(cfg Config) (*Rules, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	byFamily := map[nftables.TableFamily][]netip.Addr{}
	seen := map[netip.Addr]bool{}
	for _, a := range cfg.VIPs {
		a = a.Unmap()
		if seen[a] {
			continue
		}
		seen[a] = true
		f := nftables.TableFamilyIPv4
		if a.Is6() {
			f = nftables.TableFamilyIPv6
		}
		byFamily[f] = append(byFamily[f], a)
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("nft: attach: %w", err)
	}
	comment := "nlb steer " + hex.EncodeToString(id[:])
	udata := userdata.AppendString(nil, userdata.TypeComment, comment)
	err := withConn(cfg.NetNS, func(c *nftables.Conn) error {
		for _, f := range families() {
			t := &nftables.Table{Name: TableName, Family: f}
			// Adding first makes the delete valid when the table does
			// not exist; the three steps are one transaction.
			c.AddTable(t)
			c.DelTable(t)
			vips := byFamily[f]
			if len(vips) == 0 {
				continue
			}
			c.AddTable(t)
			for _, ch := range []struct {
				name string
				hook *nftables.ChainHook
			}{{chainPrerouting, nftables.ChainHookPrerouting}, {chainOutput, nftables.ChainHookOutput}} {
				chain := c.AddChain(&nftables.Chain{
					Name:     ch.name,
					Table:    t,
					Type:     nftables.ChainTypeNAT,
					Hooknum:  ch.hook,
					Priority: nftables.ChainPriorityNATDest,
				})
				for _, vip := range vips {
					c.AddRule(&nftables.Rule{Table: t, Chain: chain, Exprs: redirect(vip, cfg.Port, cfg.ProxyPort), UserData: udata})
				}
			}
		}
		return c.Flush()
	})
	if err != nil {
		return nil, fmt.Errorf("nft: attach: %w", err)
	}
	return &Rules{netns: cfg.NetNS, comment: comment}, nil
}

// redirect returns the expressions of
// "meta l4proto tcp ip[6] daddr VIP tcp dport PORT counter redirect to :PROXY".
func redirect(vip netip.Addr, port, proxy uint16) []expr.Any {
	off, n := uint32(ip4DaddrOffset), uint32(4)
	if vip.Is6() {
		off, n = ip6DaddrOffset, 16
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: vip.AsSlice()},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: tcpDportOffset, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.Counter{},
		&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(proxy)},
		// nft_redir: a proto_min register sets NF_NAT_RANGE_PROTO_SPECIFIED.
		&expr.Redir{RegisterProtoMin: 1},
	}
}

// Close deletes nlb's tables (both families) in one transaction, unless a
// later Attach has replaced them: tables whose rules carry another
// Attach's comment are left alone. It may be called more than once.
func (r *Rules) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	err := withConn(r.netns, func(c *nftables.Conn) error {
		n := 0
		for _, f := range families() {
			tables, err := c.ListTablesOfFamily(f)
			if err != nil {
				return fmt.Errorf("list tables: %w", err)
			}
			for _, t := range tables {
				if t.Name != TableName {
					continue
				}
				rules, err := c.GetRules(t, &nftables.Chain{Name: chainPrerouting, Table: t})
				if err != nil {
					return fmt.Errorf("list rules: %w", err)
				}
				if len(rules) > 0 && !r.owns(rules[0]) {
					continue // replaced by a later Attach
				}
				c.DelTable(t)
				n++
			}
		}
		if n == 0 {
			return nil
		}
		return c.Flush()
	})
	if err != nil {
		return fmt.Errorf("nft: close: %w", err)
	}
	return nil
}

func (r *Rules) owns(rule *nftables.Rule) bool {
	got, _ := userdata.GetString(rule.UserData, userdata.TypeComment)
	return got == r.comment
}

// Remove deletes nlb's tables from the namespace at netns (empty: the
// process's) if there are any, and reports how many it deleted. Unlike
// Close it creates nothing on the way, so it is cheap where nftables is
// not in use.
func Remove(netns string) (int, error) {
	n := 0
	err := withConn(netns, func(c *nftables.Conn) error {
		for _, f := range families() {
			tables, err := c.ListTablesOfFamily(f)
			if err != nil {
				return fmt.Errorf("list tables: %w", err)
			}
			for _, t := range tables {
				if t.Name == TableName {
					c.DelTable(t)
					n++
				}
			}
		}
		if n == 0 {
			return nil
		}
		return c.Flush()
	})
	if err != nil {
		return 0, fmt.Errorf("nft: remove: %w", err)
	}
	return n, nil
}

// Count returns how many of nlb's tables, chains and rules exist in the
// namespace at netns (empty: the process's).
func Count(netns string) (Counts, error) {
	var n Counts
	err := withConn(netns, func(c *nftables.Conn) error {
		for _, f := range families() {
			tables, err := c.ListTablesOfFamily(f)
			if err != nil {
				return fmt.Errorf("list tables: %w", err)
			}
			for _, t := range tables {
				if t.Name != TableName {
					continue
				}
				n.Tables++
				chains, err := c.ListChainsOfTableFamily(f)
				if err != nil {
					return fmt.Errorf("list chains: %w", err)
				}
				for _, ch := range chains {
					if ch.Table.Name != TableName {
						continue
					}
					n.Chains++
					rules, err := c.GetRules(t, ch)
					if err != nil {
						return fmt.Errorf("list rules: %w", err)
					}
					n.Rules += len(rules)
				}
			}
		}
		return nil
	})
	if err != nil {
		return Counts{}, fmt.Errorf("nft: count: %w", err)
	}
	return n, nil
}

// withConn calls fn with a netlink connection to nftables in the namespace
// at path (empty: the process's).
func withConn(path string, fn func(*nftables.Conn) error) error {
	var opts []nftables.ConnOption
	if path != "" {
		ns, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("open netns: %w", err)
		}
		defer ns.Close()
		opts = append(opts, nftables.WithNetNSFd(int(ns.Fd())))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return err
	}
	return fn(c)
}
