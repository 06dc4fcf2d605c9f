//go:build linux

package xdplb

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/nlb-dev/nlb/internal/netlab"
)

// The program's tests run it through BPF_PROG_RUN (Program.Run) with built
// frames in and compare the exact frames out. They need root (CAP_BPF and
// CAP_NET_ADMIN), not a network namespace: BPF_PROG_RUN sends nothing.

// XDP verdicts (enum xdp_action).
const (
	xdpPass = 2
	xdpTX   = 3
)

var (
	vip4    = netip.MustParseAddrPort("192.0.2.100:6443")
	vip6    = netip.MustParseAddrPort("[2001:db8::100]:6443")
	client4 = netip.MustParseAddrPort("198.51.100.7:40001")
	client6 = netip.MustParseAddrPort("[2001:db8:1::7]:40001")
	router4 = netip.MustParseAddr("203.0.113.254")
	router6 = netip.MustParseAddr("2001:db8:ff::1")
)

// backends returns n backends with beMACs; the one at local (if any) is
// this node.
func backends(v6 bool, n, local int) []Backend {
	bs := make([]Backend, n)
	for i := range bs {
		a := netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + i)})
		if v6 {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 2, 15: byte(1 + i)})
		}
		bs[i] = Backend{Addr: a, MAC: net.HardwareAddr(beMACs[i][:]), Local: i == local}
	}
	return bs
}

// identity is a table of n entries with entry i = i: a flow goes to
// backend FlowHash % n, so every backend is reachable and the Go twin of
// the hash is checked by the backend the program picks.
func identity(n int) []uint32 {
	t := make([]uint32, n)
	for i := range t {
		t[i] = uint32(i)
	}
	return t
}

type lab struct {
	t testing.TB
	o *Objects
}

// newLab loads the program as Master with our MAC and the given services.
func newLab(t testing.TB, opts Options, svcs ...Service) *lab {
	t.Helper()
	netlab.Require(t)
	o, err := Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	if err := o.SetMAC(lbMAC[:]); err != nil {
		t.Fatal(err)
	}
	if err := o.SetMaster(true); err != nil {
		t.Fatal(err)
	}
	for _, s := range svcs {
		if err := o.SetService(s); err != nil {
			t.Fatal(err)
		}
	}
	return &lab{t: t, o: o}
}

func (l *lab) run(frame []byte) (uint32, []byte) {
	l.t.Helper()
	out := make([]byte, len(frame)+512)
	opts := ebpf.RunOptions{Data: frame, DataOut: out}
	ret, err := l.o.Program().Run(&opts)
	if err != nil {
		l.t.Fatalf("BPF_PROG_RUN: %v", err)
	}
	return ret, opts.DataOut
}

// wantTX runs frame and wants it sent back out to the backend with MAC be.
func (l *lab) wantTX(name string, frame []byte, be [6]byte) {
	l.t.Helper()
	ret, out := l.run(frame)
	want := forwarded(frame, be)
	if ret != xdpTX || !bytes.Equal(out, want) {
		l.t.Errorf("%s: verdict %d, frame out\n%s\nwant XDP_TX (%d) with\n%s", name, ret, hexdiff(out, want), xdpTX, hexdiff(want, out))
	}
}

// wantPass runs frame and wants it passed unchanged.
func (l *lab) wantPass(name string, frame []byte) {
	l.t.Helper()
	ret, out := l.run(frame)
	if ret != xdpPass || !bytes.Equal(out, frame) {
		l.t.Errorf("%s: verdict %d, frame out\n%s\nwant XDP_PASS (%d) and the frame unchanged", name, ret, hexdiff(out, frame), xdpPass)
	}
}

// hexdiff prints a in hex, marking the bytes that differ from b.
func hexdiff(a, b []byte) string {
	var sb strings.Builder
	for i, c := range a {
		if i > 0 && i%16 == 0 {
			sb.WriteByte('\n')
		}
		mark := ' '
		if i >= len(b) || b[i] != c {
			mark = '*'
		}
		fmt.Fprintf(&sb, "%02x%c", c, mark)
	}
	if len(a) != len(b) {
		fmt.Fprintf(&sb, "\n(%d bytes, the other %d)", len(a), len(b))
	}
	return sb.String()
}

func (l *lab) stats() Stats {
	l.t.Helper()
	st, err := l.o.Stats()
	if err != nil {
		l.t.Fatal(err)
	}
	return st
}

// service returns the stats of vip.
func (l *lab) service(vip netip.AddrPort) ServiceStats {
	l.t.Helper()
	for _, s := range l.stats().Services {
		if netip.AddrPortFrom(s.VIP, s.Port) == vip {
			return s
		}
	}
	l.t.Fatalf("no stats for %s", vip)
	return ServiceStats{}
}

// flow returns the backend slot the flow table holds for client → vip: the
// Go twin of the program's lookup (the set by the 5-tuple's hash, the way
// by its key, the check word verified).
func (l *lab) flow(client, vip netip.AddrPort) (uint32, bool) {
	l.t.Helper()
	h := FlowHash(client, vip, false, l.o.opts.HashSeed)
	idx := uint32(uint64(h) * uint64(l.o.opts.flowSets()) >> 32)
	var set xdplbFlowSet
	if err := l.o.objs.NlbFlows.Lookup(idx, &set); err != nil {
		l.t.Fatal(err)
	}
	k := flowKey(client, vip)
	for _, w := range set.Way {
		if w.Key == k && w.Check == h^w.Backend {
			return w.Backend, true
		}
	}
	return 0, false
}

func flowKey(client, vip netip.AddrPort) xdplbFlowKey {
	k := xdplbFlowKey{Sport: htons(client.Port()), Dport: htons(vip.Port())}
	k.Family = addrKey(&k.Src, client.Addr())
	addrKey(&k.Dst, vip.Addr())
	return k
}

// pick is the backend the Go twin of the program's choice gives.
func pick(s Service, client netip.AddrPort, seed uint32) int {
	h := FlowHash(client, netip.AddrPortFrom(s.VIP, s.Port), s.Persistent, seed)
	return int(s.Table[h%uint32(len(s.Table))])
}

// clientN is the n-th distinct client port (and, every 20000, address) of
// base.
func clientN(base netip.AddrPort, n int) netip.AddrPort {
	a := base.Addr()
	for range n / 20000 {
		a = a.Next()
	}
	return netip.AddrPortFrom(a, uint16(20000+n%20000))
}

func TestSYNAndEstablished(t *testing.T) {
	for _, tc := range []struct {
		name        string
		client, vip netip.AddrPort
	}{
		{"IPv4", client4, vip4},
		{"IPv6", client6, vip6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := Service{VIP: tc.vip.Addr(), Port: tc.vip.Port(), Backends: backends(tc.vip.Addr().Is6(), 7, -1), Table: identity(7)}
			l := newLab(t, Options{HashSeed: 0x5eed}, svc)
			be := pick(svc, tc.client, 0x5eed)
			synF := tcpFrame(tc.client, tc.vip, syn, nil)
			l.wantTX("SYN", synF, beMACs[be])
			if slot, ok := l.flow(tc.client, tc.vip); !ok || slot != uint32(be) {
				t.Errorf("flow table after the SYN: slot %d, %v; want %d", slot, ok, be)
			}
			ackF := tcpFrame(tc.client, tc.vip, ack|psh, []byte("GET /readyz HTTP/1.1\r\n\r\n"))
			l.wantTX("established", ackF, beMACs[be])
			finF := tcpFrame(tc.client, tc.vip, fin|ack, nil)
			l.wantTX("FIN", finF, beMACs[be])

			s := l.service(tc.vip)
			bytes := uint64(len(synF) + len(ackF) + len(finF))
			want := Counters{Packets: 3, Bytes: bytes, NewFlows: 1}
			if s.Counters != want {
				t.Errorf("service counters %+v, want %+v", s.Counters, want)
			}
			for i, b := range s.Backends {
				w := Counters{}
				if i == be {
					w = want
				}
				if b.Counters != w {
					t.Errorf("backend %d (%s) counters %+v, want %+v", i, b.Addr, b.Counters, w)
				}
			}
			if ev := l.stats().Events; ev != (Events{}) {
				t.Errorf("events %+v, want none", ev)
			}
		})
	}
}

// TestHashTwin checks that the program picks, for many flows, the backend
// that FlowHash predicts (7 backends: a wrong hash agrees by chance with
// probability 7^-n), for a plain and a persistent service.
func TestHashTwin(t *testing.T) {
	const seed = 0xfeed
	plain := Service{VIP: vip4.Addr(), Port: vip4.Port(), Backends: backends(false, 7, -1), Table: identity(7)}
	persist := Service{VIP: vip6.Addr(), Port: vip6.Port(), Persistent: true, Backends: backends(true, 7, -1), Table: identity(7)}
	l := newLab(t, Options{HashSeed: seed}, plain, persist)
	seen := map[int]bool{}
	for n := range 64 {
		c := clientN(client4, n*7919)
		be := pick(plain, c, seed)
		seen[be] = true
		l.wantTX(fmt.Sprintf("IPv4 flow %s", c), tcpFrame(c, vip4, syn, nil), beMACs[be])
	}
	if len(seen) != 7 {
		t.Errorf("64 flows reached %d of 7 backends", len(seen))
	}
	clear(seen)
	for n := range 32 {
		// Persistence: every port of one client goes to one backend.
		c := netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 15: byte(n)}), 40000)
		be := pick(persist, c, seed)
		seen[be] = true
		for p := range 3 {
			cp := netip.AddrPortFrom(c.Addr(), uint16(40000+p*1111))
			l.wantTX(fmt.Sprintf("persistent flow %s", cp), tcpFrame(cp, vip6, syn, nil), beMACs[be])
		}
	}
	if len(seen) < 5 {
		t.Errorf("32 persistent clients reached %d of 7 backends", len(seen))
	}
}

func TestNonVIPPasses(t *testing.T) {
	svc4 := Service{VIP: vip4.Addr(), Port: vip4.Port(), Backends: backends(false, 3, -1), Table: identity(3)}
	svc6 := Service{VIP: vip6.Addr(), Port: vip6.Port(), Backends: backends(true, 3, -1), Table: identity(3)}
	l := newLab(t, Options{}, svc4, svc6)
	other4 := netip.MustParseAddrPort("192.0.2.101:6443")
	otherPort := netip.AddrPortFrom(vip4.Addr(), 10250)
	udp := ether(lbMAC, clientMAC, etherIPv4, ipv4(client4.Addr(), vip4.Addr(), 17, nil, 0, make([]byte, 16)))
	arp := ether([6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, clientMAC, etherARP, make([]byte, 28))
	echo := ether(lbMAC, clientMAC, etherIPv4, ipv4(client4.Addr(), vip4.Addr(), 1, nil, 0, []byte{8, 0, 0, 0, 0, 1, 0, 1}))
	vlan := ether(lbMAC, clientMAC, 0x8100, append([]byte{0, 10, 0x08, 0}, tcpFrame(client4, vip4, syn, nil)[14:]...))
	ns := ether(lbMAC, clientMAC, etherIPv6, ipv6(client6.Addr(), vip6.Addr(), 58, nil, []byte{135, 0, 0, 0, 0, 0, 0, 0}))
	for name, f := range map[string][]byte{
		"IPv4 TCP to another address": tcpFrame(client4, other4, syn, nil),
		"IPv4 TCP to another port":    tcpFrame(client4, otherPort, syn, nil),
		"IPv6 TCP to another address": tcpFrame(client6, netip.MustParseAddrPort("[2001:db8::101]:6443"), syn, nil),
		"IPv4 TCP from the VIP":       tcpFrame(vip4, client4, syn|ack, nil),
		"UDP to the VIP":              udp,
		"ARP":                         arp,
		"ICMP echo to the VIP":        echo,
		"VLAN-tagged":                 vlan,
		"ICMPv6 neighbour solicit":    ns,
	} {
		l.wantPass(name, f)
	}
	st := l.stats()
	if st.Events != (Events{}) {
		t.Errorf("events %+v, want none", st.Events)
	}
	for _, s := range st.Services {
		if s.Counters != (Counters{}) {
			t.Errorf("%s counters %+v, want zero", s.VIP, s.Counters)
		}
	}
}

// TestBackupForwardsMisdirected: VIP traffic that reaches a Backup comes
// from a client whose ARP entry still names this node (a VIP move, or two
// Backups taking over at once): it is forwarded by the same tables as the
// Master would, and counted, instead of reaching the local stack, which
// holds the VIP as a real server and would reset other backends' flows.
// A guarded MAC still passes, and a program whose MAC is not set yet
// passes everything. Mutations checked: Backup passing (the old rule),
// the guard checked after the Backup state, the MAC check dropped.
func TestBackupForwardsMisdirected(t *testing.T) {
	svc := Service{VIP: vip4.Addr(), Port: vip4.Port(), Backends: backends(false, 3, -1), Table: identity(3)}
	l := newLab(t, Options{}, svc)
	if err := l.o.SetMaster(false); err != nil {
		t.Fatal(err)
	}
	f := tcpFrame(client4, vip4, syn, nil)
	be := beMACs[pick(svc, client4, 0)]
	l.wantTX("SYN in Backup", f, be)
	l.wantTX("established in Backup", tcpFrame(client4, vip4, ack, nil), be)
	g := tcpFrame(clientN(client4, 1), vip4, ack, nil)
	copy(g[6:12], beMACs[1][:])
	l.wantPass("from a backend in Backup", g)
	if ev := l.stats().Events; ev != (Events{Backup: 2, LoopGuard: 1}) {
		t.Errorf("events %+v, want Backup: 2, LoopGuard: 1", ev)
	}
	// Master: the same forwarding, not counted as Backup.
	if err := l.o.SetMaster(true); err != nil {
		t.Fatal(err)
	}
	l.wantTX("SYN as Master", f, be)
	if ev := l.stats().Events; ev.Backup != 2 {
		t.Errorf("events %+v: Backup counted as Master", ev)
	}

	// Just loaded, no MAC yet: nothing is forwarded.
	o, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := o.SetService(svc); err != nil {
		t.Fatal(err)
	}
	l2 := &lab{t: t, o: o}
	l2.wantPass("SYN before SetMAC", f)
}

func TestLoopGuard(t *testing.T) {
	svc := Service{VIP: vip4.Addr(), Port: vip4.Port(), Backends: backends(false, 3, -1), Table: identity(3)}
	svc6 := Service{VIP: vip6.Addr(), Port: vip6.Port(), Backends: backends(true, 3, -1), Table: identity(3)}
	l := newLab(t, Options{}, svc, svc6)
	peer := [6]byte{0x02, 0, 0, 0, 0, 0x99} // another load balancer, not a backend
	if err := l.o.SetGuardMACs([]net.HardwareAddr{peer[:]}); err != nil {
		t.Fatal(err)
	}
	for i, src := range [][6]byte{beMACs[0], beMACs[2], peer} {
		// Another Master forwarded it (dst = our MAC as a backend), or a
		// backend talks to the VIP: never forwarded again.
		f := tcpFrame(clientN(client4, i), vip4, syn, nil)
		copy(f[6:12], src[:])
		l.wantPass(fmt.Sprintf("IPv4 from %x", src), f)
		f6 := tcpFrame(clientN(client6, i), vip6, ack, nil)
		copy(f6[6:12], src[:])
		l.wantPass(fmt.Sprintf("IPv6 from %x", src), f6)
	}
	if ev := l.stats().Events; ev != (Events{LoopGuard: 6}) {
		t.Errorf("events %+v, want LoopGuard: 6", ev)
	}
	// A backend that leaves leaves the guard; the peer stays.
	svc.Backends, svc.Table = svc.Backends[:1], identity(1)
	svc6.Backends, svc6.Table = svc6.Backends[:1], identity(1)
	for _, s := range []Service{svc, svc6} {
		if err := l.o.SetService(s); err != nil {
			t.Fatal(err)
		}
	}
	f := tcpFrame(client4, vip4, syn, nil)
	copy(f[6:12], beMACs[2][:])
	l.wantTX("from a former backend", f, beMACs[0])
	copy(f[6:12], peer[:])
	l.wantPass("from the peer", f)
	if err := l.o.SetGuardMACs(nil); err != nil {
		t.Fatal(err)
	}
	l.wantTX("from the former peer", f, beMACs[0])
}

func TestLocalBackend(t *testing.T) {
	// Backend 1 is this node; the table sends everything to it.
	svc := Service{VIP: vip4.Addr(), Port: vip4.Port(), Backends: backends(false, 3, 1), Table: []uint32{1, 1, 1}}
	svc6 := Service{VIP: vip6.Addr(), Port: vip6.Port(), Backends: backends(true, 3, 1), Table: []uint32{1}}
	l := newLab(t, Options{}, svc, svc6)
	f := tcpFrame(client4, vip4, syn, nil)
	l.wantPass("IPv4 SYN", f)
	l.wantPass("IPv4 established", tcpFrame(client4, vip4, ack, nil))
	l.wantPass("IPv6 SYN", tcpFrame(client6, vip6, syn, nil))
	if slot, ok := l.flow(client4, vip4); !ok || slot != 1 {
		t.Errorf("flow entry %d, %v; want slot 1", slot, ok)
	}
	s := l.service(vip4)
	if got := s.Backends[1].Counters; got.Packets != 2 || got.NewFlows != 1 {
		t.Errorf("local backend counters %+v, want 2 packets, 1 new flow", got)
	}
	if ev := l.stats().Events; ev != (Events{Local: 3}) {
		t.Errorf("events %+v, want Local: 3", ev)
	}
}

func TestFragmentsPass(t *testing.T) {
	svc := Service{VIP: vip4.Addr(), Port: vip4.Port(), Backends: backends(false, 3, -1), Table: identity(3)}
	svc6 := Service{VIP: vip6.Addr(), Port: vip6.Port(), Backends: backends(true, 3, -1), Table: identity(3)}
	l := newLab(t, Options{}, svc, svc6)
	seg := tcpHeader(client4.Port(), vip4.Port(), ack, nil, make([]byte, 64))
	frag6 := []byte{6, 0, 0, 0, 0, 0, 0, 1} // next TCP, offset 0, M = 0
	frag6MF := []byte{6, 0, 0, 1, 0, 0, 0, 2}
	for name, f := range map[string][]byte{
		"IPv4 first fragment (MF)":       ether(lbMAC, clientMAC, etherIPv4, ipv4(client4.Addr(), vip4.Addr(), 6, nil, 0x2000, seg)),
		"IPv4 last fragment (offset)":    ether(lbMAC, clientMAC, etherIPv4, ipv4(client4.Addr(), vip4.Addr(), 6, nil, 0x0010, seg)),
		"IPv4 ICMP fragment":             ether(lbMAC, clientMAC, etherIPv4, ipv4(router4, vip4.Addr(), 1, nil, 0x2000, seg)),
		"IPv6 atomic fragment":           ether(lbMAC, clientMAC, etherIPv6, ipv6(client6.Addr(), vip6.Addr(), 44, frag6, seg)),
		"IPv6 first fragment":            ether(lbMAC, clientMAC, etherIPv6, ipv6(client6.Addr(), vip6.Addr(), 44, frag6MF, seg)),
		"IPv6 fragment after hop-by-hop": ether(lbMAC, clientMAC, etherIPv6, ipv6(client6.Addr(), vip6.Addr(), 0, append(extHeader(44, 0), frag6...), seg)),
	} {
		l.wantPass(name, f)
	}
	if ev := l.stats().Events; ev != (Events{Fragments: 6}) {
		t.Errorf("events %+v, want Fragments: 6", ev)
	}
	if _, ok := l.flow(client4, vip4); ok {
		t.Error("a fragment created a flow entry")
	}
}

func TestOptionsAndExtensionHeaders(t *testing.T) {
	svc := Service{VIP: vip4.Addr(), Port: vip4.Port(), Backends: backends(false, 7, -1), Table: identity(7)}
	svc6 := Service{VIP: vip6.Addr(), Port: vip6.Port(), Backends: backends(true, 7, -1), Table: identity(7)}
	l := newLab(t, Options{}, svc, svc6)
	seg := tcpHeader(client4.Port(), vip4.Port(), syn, []byte{2, 4, 5, 0xb4, 1, 3, 3, 7}, nil)
	ra := []byte{0x94, 4, 0, 0} // Router Alert
	long := make([]byte, 40)    // the longest options: IHL 15
	long[0], long[1] = 0x07, 39 // Record Route
	be := beMACs[pick(svc, client4, 0)]
	l.wantTX("IPv4 with Router Alert (IHL 6)", ether(lbMAC, clientMAC, etherIPv4, ipv4(client4.Addr(), vip4.Addr(), 6, ra, 0x4000, seg)), be)
	l.wantTX("IPv4 with 40 bytes of options (IHL 15)", ether(lbMAC, clientMAC, etherIPv4, ipv4(client4.Addr(), vip4.Addr(), 6, long, 0x4000, seg)), be)

	seg6 := tcpHeader(client6.Port(), vip6.Port(), syn, nil, nil)
	be6 := beMACs[pick(svc6, client6, 0)]
	hbh := extHeader(60, 0)
	dst := extHeader(6, 2)
	l.wantTX("IPv6 with hop-by-hop and destination options", ether(lbMAC, clientMAC, etherIPv6, ipv6(client6.Addr(), vip6.Addr(), 0, append(hbh, dst...), seg6)), be6)
	l.wantTX("IPv6 with 4 option headers", ether(lbMAC, clientMAC, etherIPv6, ipv6(client6.Addr(), vip6.Addr(), 0,
		bytes.Join([][]byte{extHeader(60, 0), extHeader(60, 1), extHeader(60, 0), extHeader(6, 0)}, nil), seg6)), be6)
	// Beyond what the program skips, and routing headers: the kernel's.
	l.wantPass("IPv6 with 5 option headers", ether(lbMAC, clientMAC, etherIPv6, ipv6(client6.Addr(), vip6.Addr(), 0,
		bytes.Join([][]byte{extHeader(60, 0), extHeader(60, 0), extHeader(60, 0), extHeader(60, 0), extHeader(6, 0)}, nil), seg6)))
	l.wantPass("IPv6 with a routing header", ether(lbMAC, clientMAC, etherIPv6, ipv6(client6.Addr(), vip6.Addr(), 43, extHeader(6, 0), seg6)))
	if ev := l.stats().Events; ev != (Events{}) {
		t.Errorf("events %+v, want none", ev)
	}
}

func TestMalformedPasses(t *testing.T) {
	svc := Service{VIP: vip4.Addr(), Port: vip4.Port(), Backends: backends(false, 3, -1), Table: identity(3)}
	svc6 := Service{VIP: vip6.Addr(), Port: vip6.Port(), Backends: backends(true, 3, -1), Table: identity(3)}
	l := newLab(t, Options{}, svc, svc6)
	good := tcpFrame(client4, vip4, syn, nil)  // 14 + 20 + 20
	good6 := tcpFrame(client6, vip6, syn, nil) // 14 + 40 + 20
	icmp := icmpError(router4, client4, vip4, 3, 4, 1400)
	icmp6 := icmpError(router6, client6, vip6, 2, 0, 1280)
	mod := func(f []byte, fn func([]byte)) []byte {
		f = append([]byte(nil), f...)
		fn(f)
		return f
	}
	cases := map[string][]byte{
		"Ethernet header only":            good[:14],
		"IPv4 header cut":                 good[:14+19],
		"IPv4 TCP header cut":             mod(good[:14+20+19], func(f []byte) { f[17] = 39 }),
		"IPv4 total length beyond frame":  mod(good, func(f []byte) { f[17] = 41 }),
		"IPv4 total length below headers": mod(good, func(f []byte) { f[17] = 39 }),
		"IPv4 IHL 4":                      mod(good, func(f []byte) { f[14] = 0x44 }),
		"IPv4 IHL beyond frame":           mod(good, func(f []byte) { f[14] = 0x4f }),
		"IPv4 version 6 in an IPv4 frame": mod(good, func(f []byte) { f[14] = 0x65 }),
		"TCP data offset 4":               mod(good, func(f []byte) { f[14+20+12] = 0x40 }),
		"TCP options beyond frame":        mod(good, func(f []byte) { f[14+20+12] = 0x60 }),
		"IPv6 header cut":                 good6[:14+39],
		"IPv6 payload length beyond":      mod(good6, func(f []byte) { f[19] = 21 }),
		"IPv6 TCP header cut":             mod(good6[:14+40+19], func(f []byte) { f[19] = 19 }),
		"IPv6 version 4":                  mod(good6, func(f []byte) { f[14] = 0x40 }),
		"IPv6 extension header cut":       ether(lbMAC, clientMAC, etherIPv6, ipv6(client6.Addr(), vip6.Addr(), 0, []byte{6, 0, 1, 2}, nil)),
		"ICMP quote cut in IP header":     mod(icmp[:14+20+8+19], func(f []byte) { f[17] = 8 + 19 }),
		"ICMP quote cut before ports":     mod(icmp[:14+20+8+20+3], func(f []byte) { f[17] = 8 + 23 }),
		"ICMPv6 quote cut":                mod(icmp6[:14+40+8+39], func(f []byte) { f[19] = 8 + 39 }),
	}
	for name, f := range cases {
		l.wantPass(name, f)
	}
	if ev := l.stats().Events; ev != (Events{Malformed: uint64(len(cases))}) {
		t.Errorf("events %+v, want Malformed: %d", ev, len(cases))
	}
	if s := l.service(vip4); s.Counters != (Counters{}) {
		t.Errorf("service counters %+v, want zero", s.Counters)
	}
}

// TestICMPErrors: a "fragmentation needed" or "packet too big" about a VIP
// flow goes to the backend that sent the packet it quotes.
func TestICMPErrors(t *testing.T) {
	for _, tc := range []struct {
		name        string
		client, vip netip.AddrPort
		router      netip.Addr
		typ, code   uint8
	}{
		{"IPv4 fragmentation needed", client4, vip4, router4, 3, 4},
		{"IPv4 port unreachable", client4, vip4, router4, 3, 3},
		{"IPv6 packet too big", client6, vip6, router6, 2, 0},
		{"IPv6 destination unreachable", client6, vip6, router6, 1, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Every new flow goes to backend 2; the established one
			// was on backend 5 before the table changed.
			svc := Service{VIP: tc.vip.Addr(), Port: tc.vip.Port(), Backends: backends(tc.vip.Addr().Is6(), 7, -1), Table: []uint32{5}}
			l := newLab(t, Options{}, svc)
			l.wantTX("SYN", tcpFrame(tc.client, tc.vip, syn, nil), beMACs[5])
			svc.Table = []uint32{2}
			if err := l.o.SetService(svc); err != nil {
				t.Fatal(err)
			}
			l.wantTX("ICMP about the established flow", icmpError(tc.router, tc.client, tc.vip, tc.typ, tc.code, 1400), beMACs[5])
			other := netip.AddrPortFrom(tc.client.Addr(), 50000)
			l.wantTX("ICMP about a flow not in the table", icmpError(tc.router, other, tc.vip, tc.typ, tc.code, 1400), beMACs[2])
			if _, ok := l.flow(other, tc.vip); ok {
				t.Error("an ICMP error created a flow entry")
			}
			otherPort := netip.AddrPortFrom(tc.vip.Addr(), 10250)
			l.wantPass("ICMP about another port", icmpError(tc.router, tc.client, otherPort, tc.typ, tc.code, 1400))
			s := l.service(tc.vip)
			if s.Packets != 3 || s.NewFlows != 1 || s.Rehashed != 0 {
				t.Errorf("service counters %+v, want 3 packets, 1 new flow, none re-hashed", s.Counters)
			}
			if ev := l.stats().Events; ev != (Events{ICMPForwarded: 2}) {
				t.Errorf("events %+v, want ICMPForwarded: 2", ev)
			}
		})
	}
}

// TestFlowTableFirst: an established flow keeps its backend when the
// Maglev table changes; a removed backend's flows are re-hashed; an RST
// that misses is forwarded but not remembered.
func TestFlowTableFirst(t *testing.T) {
	svc := Service{VIP: vip4.Addr(), Port: vip4.Port(), Backends: backends(false, 4, -1), Table: []uint32{0}}
	l := newLab(t, Options{}, svc)
	a, b, a2 := clientN(client4, 1), clientN(client4, 2), clientN(client4, 4)
	l.wantTX("SYN a", tcpFrame(a, vip4, syn, nil), beMACs[0])
	l.wantTX("SYN a2", tcpFrame(a2, vip4, syn, nil), beMACs[0])
	svc.Table = []uint32{1} // backend 0 drains: in Backends, in no entry
	if err := l.o.SetService(svc); err != nil {
		t.Fatal(err)
	}
	l.wantTX("established a, draining backend", tcpFrame(a, vip4, ack, nil), beMACs[0])
	// A SYN opens a flow: Maglev chooses, whatever an earlier
	// connection on the same 5-tuple left in the flow table (a
	// retransmitted SYN was never answered, or its connection never
	// completed: nothing established moves), so a draining backend gets
	// no new connection.
	l.wantTX("SYN again on a2's 5-tuple", tcpFrame(a2, vip4, syn, nil), beMACs[1])
	if f, ok := l.flow(a2, vip4); !ok || f != 1 {
		t.Errorf("a2's flow entry %d %v after its new SYN, want backend slot 1", f, ok)
	}
	l.wantTX("SYN b", tcpFrame(b, vip4, syn, nil), beMACs[1])

	// Backend 0 leaves; the others keep their slots though they move in
	// the list.
	svc.Backends = []Backend{svc.Backends[3], svc.Backends[2], svc.Backends[1]}
	svc.Table = []uint32{1} // backends[1] is beMACs[2]
	if err := l.o.SetService(svc); err != nil {
		t.Fatal(err)
	}
	l.wantTX("established b, backend moved in the list", tcpFrame(b, vip4, ack, nil), beMACs[1])
	l.wantTX("established a, backend removed: re-hashed", tcpFrame(a, vip4, ack, nil), beMACs[2])
	c := clientN(client4, 3)
	l.wantTX("RST c, not in the table", tcpFrame(c, vip4, rst, nil), beMACs[2])
	if _, ok := l.flow(c, vip4); ok {
		t.Error("an RST created a flow entry")
	}
	s := l.service(vip4)
	if s.NewFlows != 4 || s.Rehashed != 2 || s.Packets != 8 {
		t.Errorf("service counters %+v, want 8 packets, 4 new flows, 2 re-hashed", s.Counters)
	}
	if len(s.Backends) != 3 || s.Backends[2].Addr != svc.Backends[2].Addr || s.Backends[2].Packets != 3 {
		t.Errorf("backend stats %+v, want beMACs[1]'s 3 packets last", s.Backends)
	}
}

// TestFlowTableOverfill: with a flow table far smaller than the flows, an
// established flow is evicted; its next packet goes to the same backend
// (Maglev decides the same way while the backends are unchanged) and is
// counted as re-hashed.
func TestFlowTableOverfill(t *testing.T) {
	const size, flows = 256, 4096
	svc := Service{VIP: vip4.Addr(), Port: vip4.Port(), Backends: backends(false, 7, -1), Table: identity(7)}
	l := newLab(t, Options{FlowTableSize: size}, svc)
	want := make([]int, flows)
	for n := range flows {
		c := clientN(client4, n)
		want[n] = pick(svc, c, 0)
		ret, out := l.run(tcpFrame(c, vip4, syn, nil))
		if ret != xdpTX || !bytes.Equal(out[0:6], beMACs[want[n]][:]) {
			t.Fatalf("SYN %d: verdict %d, destination %x; want XDP_TX to %x", n, ret, out[0:6], beMACs[want[n]])
		}
	}
	var evicted []int
	for n := range flows {
		if _, ok := l.flow(clientN(client4, n), vip4); !ok {
			evicted = append(evicted, n)
		}
	}
	if len(evicted) < flows-2*size {
		t.Fatalf("only %d of %d flows evicted from a table of %d", len(evicted), flows, size)
	}
	if evicted[0] != 0 {
		t.Errorf("the first flow was kept, flow %d is the first evicted", evicted[0])
	}
	for i, n := range evicted[:16] {
		c := clientN(client4, n)
		l.wantTX(fmt.Sprintf("evicted established flow %d", n), tcpFrame(c, vip4, ack, nil), beMACs[want[n]])
		if s := l.service(vip4); s.Rehashed != uint64(i+1) || s.NewFlows != flows {
			t.Errorf("after flow %d: counters %+v, want %d re-hashed, %d new", n, s.Counters, i+1, flows)
		}
		if slot, ok := l.flow(c, vip4); !ok || int(slot) != want[n] {
			t.Errorf("flow %d not back in the table (slot %d, %v)", n, slot, ok)
		}
	}
}

func TestNoBackend(t *testing.T) {
	svc := Service{VIP: vip4.Addr(), Port: vip4.Port(), Backends: backends(false, 2, -1), Table: []uint32{NoBackend, NoBackend}}
	empty := Service{VIP: vip6.Addr(), Port: vip6.Port()}
	l := newLab(t, Options{}, svc, empty)
	l.wantPass("all entries NoBackend", tcpFrame(client4, vip4, syn, nil))
	l.wantPass("empty table", tcpFrame(client6, vip6, syn, nil))
	if ev := l.stats().Events; ev != (Events{NoBackend: 2}) {
		t.Errorf("events %+v, want NoBackend: 2", ev)
	}
	// Deleted, the VIP:port is not one any more: passed uncounted.
	if err := l.o.DeleteService(vip4.Addr(), vip4.Port()); err != nil {
		t.Fatal(err)
	}
	l.wantPass("deleted service", tcpFrame(client4, vip4, syn, nil))
	if ev := l.stats().Events; ev != (Events{NoBackend: 2}) {
		t.Errorf("events %+v after delete, want NoBackend: 2", ev)
	}
}

// TestServiceReadded: a VIP:port deleted and added again under another
// service id does not follow flow entries into the slots of the service
// that took its old id.
func TestServiceReadded(t *testing.T) {
	a := Service{VIP: vip4.Addr(), Port: vip4.Port(), Backends: backends(false, 2, -1), Table: []uint32{1}}
	l := newLab(t, Options{}, a)
	l.wantTX("SYN to A", tcpFrame(client4, vip4, syn, nil), beMACs[1])
	if err := l.o.DeleteService(a.VIP, a.Port); err != nil {
		t.Fatal(err)
	}
	// B takes A's id and slot 1 with another MAC; A comes back as id 1.
	b := Service{VIP: vip6.Addr(), Port: vip6.Port(), Backends: []Backend{{Addr: netip.MustParseAddr("2001:db8:2::9"), MAC: beMACs[6][:]}, {Addr: netip.MustParseAddr("2001:db8:2::a"), MAC: beMACs[5][:]}}, Table: []uint32{0}}
	a.Table = []uint32{0}
	for _, s := range []Service{b, a} {
		if err := l.o.SetService(s); err != nil {
			t.Fatal(err)
		}
	}
	l.wantTX("established to A again", tcpFrame(client4, vip4, ack, nil), beMACs[0])
}

func TestLoadErrors(t *testing.T) {
	netlab.Require(t)
	_, err := Load(Options{FlowTableSize: -1, MaxTableSize: maxTableSize + 1})
	if err == nil || !strings.Contains(err.Error(), "FlowTableSize") || !strings.Contains(err.Error(), "MaxTableSize") {
		t.Errorf("Load with bad options: %v", err)
	}
	o, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.SetMaster(true); err == nil {
		t.Error("SetMaster(true) without a MAC succeeded")
	}
	if err := o.SetMAC(net.HardwareAddr{1, 0, 0, 0, 0, 1}); err == nil {
		t.Error("SetMAC of a group address succeeded")
	}
	for i := range DefaultMaxServices {
		s := Service{VIP: vip4.Addr(), Port: uint16(1 + i)}
		if err := o.SetService(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.SetService(Service{VIP: vip6.Addr(), Port: 1}); err == nil || !strings.Contains(err.Error(), "MaxServices") {
		t.Errorf("service beyond MaxServices: %v", err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := o.Stats(); err == nil {
		t.Error("Stats after Close succeeded")
	}
}

// TestFlowTableMemory: the memory shown in nlb status grows with the
// configured flow table size (the array is preallocated).
func TestFlowTableMemory(t *testing.T) {
	netlab.Require(t)
	mem := func(size int) uint64 {
		o, err := Load(Options{FlowTableSize: size})
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		m, err := o.FlowTableMemory()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	small, large := mem(1024), mem(64*1024)
	t.Logf("flow table memory: 1024 entries %d bytes, 65536 entries %d bytes", small, large)
	// 63 times more entries: at least 63 × 8 bytes more per added entry.
	if small == 0 || large < small+63*1024*8 {
		t.Errorf("flow table memory: 1024 entries %d bytes, 65536 entries %d bytes: does not grow with the size", small, large)
	}
}

// sameSet returns n clients of client4's address whose flows to vip4 fall
// in the set of the first, in a table of the given sets.
func sameSet(t *testing.T, o Options, n int) []netip.AddrPort {
	t.Helper()
	o = o.withDefaults()
	set := func(c netip.AddrPort) uint64 {
		return uint64(FlowHash(c, vip4, false, o.HashSeed)) * uint64(o.flowSets()) >> 32
	}
	var out []netip.AddrPort
	for i := 0; i < 1<<20 && len(out) < n; i++ {
		c := clientN(client4, i)
		if len(out) == 0 || set(c) == set(out[0]) {
			out = append(out, c)
		}
	}
	if len(out) < n {
		t.Fatalf("found %d clients in one set, want %d", len(out), n)
	}
	return out
}

// TestFlowTableLRU: a set of the flow table replaces its least recently
// used flow: a flow that had a packet since stays, the oldest goes.
func TestFlowTableLRU(t *testing.T) {
	opts := Options{FlowTableSize: 1024}
	svc := Service{VIP: vip4.Addr(), Port: vip4.Port(), Backends: backends(false, 7, -1), Table: identity(7)}
	l := newLab(t, opts, svc)
	c := sameSet(t, opts, flowWays+2)
	for i := range flowWays {
		l.run(tcpFrame(c[i], vip4, syn, nil))
	}
	// c[0] is the oldest by its SYN; a packet makes it the newest.
	l.wantTX("established c[0]", tcpFrame(c[0], vip4, ack, nil), beMACs[pick(svc, c[0], 0)])
	l.run(tcpFrame(c[flowWays], vip4, syn, nil))   // replaces c[1]
	l.run(tcpFrame(c[flowWays+1], vip4, syn, nil)) // replaces c[2]
	for i, want := range []bool{true, false, false, true, true, true} {
		if _, ok := l.flow(c[i], vip4); ok != want {
			t.Errorf("flow %d of one set in the table: %v, want %v", i, ok, want)
		}
	}
	if s := l.service(vip4); s.Rehashed != 0 || s.NewFlows != flowWays+2 {
		t.Errorf("counters %+v, want %d new flows, none re-hashed", s.Counters, flowWays+2)
	}
}

// TestFlowTableTornEntry: a way whose check word does not match its
// backend (two CPUs replaced it at once) is a miss: the packet goes by
// Maglev, is counted re-hashed, and the way is written again.
func TestFlowTableTornEntry(t *testing.T) {
	svc := Service{VIP: vip4.Addr(), Port: vip4.Port(), Backends: backends(false, 7, -1), Table: identity(7)}
	l := newLab(t, Options{}, svc)
	want := pick(svc, client4, 0)
	l.run(tcpFrame(client4, vip4, syn, nil))
	h := FlowHash(client4, vip4, false, l.o.opts.HashSeed)
	idx := uint32(uint64(h) * uint64(l.o.opts.flowSets()) >> 32)
	var set xdplbFlowSet
	if err := l.o.objs.NlbFlows.Lookup(idx, &set); err != nil {
		t.Fatal(err)
	}
	torn := false
	for i, w := range set.Way {
		if w.Key == flowKey(client4, vip4) {
			set.Way[i].Backend = uint32((want + 1) % 7) // another flow's backend, this flow's check
			torn = true
		}
	}
	if !torn {
		t.Fatal("the SYN's flow is not in its set")
	}
	if err := l.o.objs.NlbFlows.Put(idx, set); err != nil {
		t.Fatal(err)
	}
	l.wantTX("established flow, torn entry", tcpFrame(client4, vip4, ack, nil), beMACs[want])
	if s := l.service(vip4); s.Rehashed != 1 {
		t.Errorf("counters %+v, want the packet re-hashed", s.Counters)
	}
	if slot, ok := l.flow(client4, vip4); !ok || int(slot) != want {
		t.Errorf("flow entry %d %v after the miss, want backend slot %d", slot, ok, want)
	}
}
