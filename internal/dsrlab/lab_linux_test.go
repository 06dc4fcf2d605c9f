//go:build linux

package dsrlab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/nlb-dev/nlb/ebpf/xdplb"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
	"github.com/nlb-dev/nlb/lb/dsr"
	"github.com/nlb-dev/nlb/lb/maglev"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const (
	apiPort  = 6443
	hashSeed = 0x6b30
	nSources = 16 // client addresses per family
)

// lab is three controllers (h1 runs the load balancer; all three are
// backends) and a client, h4, with nSources addresses per family.
type lab struct {
	t        *testing.T
	net      *netlab.Lab
	lb       *netlab.Host
	backends []*netlab.Host
	client   *netlab.Host
	vips     []netip.Addr
	sources  map[netip.Addr][]netip.Addr // by VIP family: the client's addresses
	svcs     map[netip.Addr]xdplb.Service
	keyHost  map[string]string // maglev key → host name
}

func xdpPassProgram(t *testing.T, name string) *ebpf.Program {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         name,
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func newLab(t *testing.T) *lab {
	nl := netlab.NewT(t, "dsrlab", netlab.Options{Hosts: 4})
	l := &lab{
		t: t, net: nl, lb: nl.Hosts[0], backends: nl.Hosts[:3], client: nl.Hosts[3],
		vips:    []netip.Addr{nl.VIP4(0).Addr(), nl.VIP6(0).Addr()},
		sources: map[netip.Addr][]netip.Addr{},
		svcs:    map[netip.Addr]xdplb.Service{},
		keyHost: map[string]string{},
	}
	// The bridge-side peer of the load balancer's veth runs XDP_PASS, so
	// that the veth delivers what the load balancer sends with XDP_TX.
	pass, err := nl.PassXDPOnPort(l.lb)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pass.Close() })
	// Every controller is a real server: the VIPs on dummyvip0 or lo,
	// ARP for them answered only where they are on the interface.
	for _, h := range l.backends {
		rs, err := dsr.New(dsr.Config{
			VIPs: l.vips, Interfaces: []string{h.IfName},
			StateFile: filepath.Join(t.TempDir(), "dsr.json"),
			Logger:    slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Run(rs.Up); err != nil {
			t.Fatalf("%s: dsr Up: %v", h.Name, err)
		}
		t.Cleanup(func() {
			if err := rs.Down(); err != nil {
				t.Errorf("%s: dsr Down: %v", h.Name, err)
			}
			rs.Close()
		})
		l.serve(h)
	}
	// h1 is the VRRP Master: it holds the VIPs on its interface too (what
	// vrrp/vip does), so it answers ARP and NDP for them.
	l.addAddrs(l.lb, netip.PrefixFrom(l.vips[0], 32), netip.PrefixFrom(l.vips[1], 128))
	// The client's addresses.
	var extra []netip.Prefix
	for i := range nSources {
		a4 := netip.AddrFrom4([4]byte{192, 0, 2, byte(150 + i)})
		a6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 13: 2, 15: byte(i + 1)})
		l.sources[l.vips[0]] = append(l.sources[l.vips[0]], a4)
		l.sources[l.vips[1]] = append(l.sources[l.vips[1]], a6)
		extra = append(extra, netip.PrefixFrom(a4, 24), netip.PrefixFrom(a6, 64))
	}
	l.addAddrs(l.client, extra...)
	// A veth hands its peer packets whose TCP checksum is still to be
	// filled in (CHECKSUM_PARTIAL, the offload a NIC would do); native XDP
	// on the receiving veth drops that state, so a frame it sends on with
	// XDP_TX carries a wrong checksum and the backend drops it. A NIC
	// receives complete checksums from the wire: the client computes its
	// own, as a remote client's would be.
	if err := l.client.TxChecksumOff(); err != nil {
		t.Fatal(err)
	}
	// The services: k0s's defaults (persistence), Maglev over the three.
	var keys []string
	for _, h := range l.backends {
		for _, a := range []netip.Addr{h.Addr4, h.Addr6} {
			k := netip.AddrPortFrom(a, apiPort).String()
			keys = append(keys, k)
			l.keyHost[k] = h.Name
		}
	}
	// The backends' MACs, as the controller will get them: h1's
	// neighbour table, probed (lb/dsr).
	var addrs []netip.Addr
	for _, k := range keys {
		addrs = append(addrs, netip.MustParseAddrPort(k).Addr())
	}
	neigh := dsr.NewNeighbors(l.lb.IfName)
	defer neigh.Close()
	var found []dsr.Neighbor
	err = l.lb.Run(func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		found, err = neigh.Resolve(ctx, addrs)
		return err
	})
	if err != nil {
		t.Fatalf("backends' MACs: %v", err)
	}
	byAddr := map[netip.Addr]dsr.Neighbor{}
	for _, nb := range found {
		byAddr[nb.Addr] = nb
	}
	for _, vip := range l.vips {
		var fam []string
		for _, k := range keys {
			if netip.MustParseAddrPort(k).Addr().Is4() == vip.Is4() {
				fam = append(fam, k)
			}
		}
		tab, err := maglev.New(fam, 1021)
		if err != nil {
			t.Fatal(err)
		}
		svc := xdplb.Service{VIP: vip, Port: apiPort, Persistent: true, Table: tab.Entries(func(string) bool { return true })}
		for _, k := range tab.Backends() {
			h := l.host(l.keyHost[k])
			nb := byAddr[netip.MustParseAddrPort(k).Addr()]
			if nb.MAC.String() != h.MAC.String() || nb.Local != (h == l.lb) {
				t.Fatalf("backend %s resolved to %+v, want %s's MAC %s", k, nb, h.Name, h.MAC)
			}
			svc.Backends = append(svc.Backends, xdplb.Backend{Addr: nb.Addr, MAC: nb.MAC, Local: nb.Local})
		}
		l.svcs[vip] = svc
	}
	return l
}

func (l *lab) host(name string) *netlab.Host {
	for _, h := range l.net.Hosts {
		if h.Name == name {
			return h
		}
	}
	l.t.Fatalf("no host %s", name)
	return nil
}

func (l *lab) addAddrs(h *netlab.Host, ps ...netip.Prefix) {
	l.t.Helper()
	err := h.Run(func() error {
		ln, err := netlink.LinkByIndex(h.Index)
		if err != nil {
			return err
		}
		for _, p := range ps {
			bits := 32
			if p.Addr().Is6() {
				bits = 128
			}
			a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}}
			if p.Addr().Is6() {
				a.Flags = unix.IFA_F_NODAD
			}
			if err := netlink.AddrAdd(ln, a); err != nil {
				return fmt.Errorf("add %s: %w", p, err)
			}
		}
		return nil
	})
	if err != nil {
		l.t.Fatalf("%s: %v", h.Name, err)
	}
}

// serve answers every connection to VIP:6443 on h with h's name.
func (l *lab) serve(h *netlab.Host) {
	for _, vip := range l.vips {
		ln, err := h.Listen("tcp", netip.AddrPortFrom(vip, apiPort).String())
		if err != nil {
			l.t.Fatalf("%s: listen on %s: %v", h.Name, vip, err)
		}
		l.t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				// The greeting, then an echo until the client closes
				// (a connection that stays open across a restart).
				go func() {
					defer c.Close()
					c.SetDeadline(time.Now().Add(2 * time.Minute))
					fmt.Fprintf(c, "%s %s\n", h.Name, c.RemoteAddr())
					io.Copy(c, io.LimitReader(c, 1<<20))
				}()
			}
		}()
	}
}

// request connects from src to vip:6443 and returns the server's name and
// the client address it saw.
func (l *lab) request(src, vip netip.Addr) (string, string, error) {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	var c net.Conn
	err := l.client.Run(func() (err error) {
		c, err = d.DialContext(context.Background(), "tcp", netip.AddrPortFrom(vip, apiPort).String())
		return err
	})
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	if got := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap(); got != vip {
		return "", "", fmt.Errorf("connected to %s, not the VIP", got)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", "", fmt.Errorf("read: %w", err)
	}
	// Then a segment longer than the part of a packet the tcx program
	// makes linear (TC_PULL): its parse must take the packet's length
	// from the packet, not from the linear part, or the load balancer's
	// own stack gets the segment and resets the connection.
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1200/16)
	if _, err := c.Write(payload); err != nil {
		return "", "", fmt.Errorf("write %d bytes: %w", len(payload), err)
	}
	echo := make([]byte, len(payload))
	if _, err := io.ReadFull(r, echo); err != nil {
		return "", "", fmt.Errorf("echo of %d bytes: %w", len(payload), err)
	}
	if !bytes.Equal(echo, payload) {
		return "", "", errors.New("echo differs from what was sent")
	}
	name, peer, _ := strings.Cut(strings.TrimSpace(line), " ")
	return name, peer, nil
}

// conn is a connection through the VIP that stays open.
type conn struct {
	c       net.Conn
	r       *bufio.Reader
	backend string
}

// open connects from src to vip:6443 and reads the greeting.
func (l *lab) open(src, vip netip.Addr) *conn {
	l.t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	var c net.Conn
	err := l.client.Run(func() (err error) {
		c, err = d.DialContext(context.Background(), "tcp", netip.AddrPortFrom(vip, apiPort).String())
		return err
	})
	if err != nil {
		l.t.Fatalf("%s → %s: %v", src, vip, err)
	}
	l.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		l.t.Fatalf("%s → %s: %v", src, vip, err)
	}
	name, _, _ := strings.Cut(line, " ")
	return &conn{c: c, r: r, backend: name}
}

// echo sends a line on an open connection and wants it back.
func (c *conn) echo(t *testing.T, what string) {
	t.Helper()
	c.c.SetDeadline(time.Now().Add(20 * time.Second))
	msg := what + "\n"
	if _, err := io.WriteString(c.c, msg); err != nil {
		t.Fatalf("%s: connection to %s: write: %v", what, c.backend, err)
	}
	got, err := c.r.ReadString('\n')
	if err != nil || got != msg {
		t.Fatalf("%s: connection to %s: read %q, %v; want %q", what, c.backend, got, err, msg)
	}
}

// openRemote opens one connection per VIP to a backend other than h1.
func (l *lab) openRemote() []*conn {
	l.t.Helper()
	var cs []*conn
	for _, vip := range l.vips {
		for _, src := range l.sources[vip] {
			if l.expected(src, vip) != l.lb.Name {
				c := l.open(src, vip)
				if c.backend == l.lb.Name {
					l.t.Fatalf("%s → %s reached h1, want %s", src, vip, l.expected(src, vip))
				}
				cs = append(cs, c)
				break
			}
		}
	}
	return cs
}

// expected is the backend the Maglev table gives a persistent client.
func (l *lab) expected(src, vip netip.Addr) string {
	svc := l.svcs[vip]
	h := xdplb.FlowHash(netip.AddrPortFrom(src, 1), netip.AddrPortFrom(vip, apiPort), true, hashSeed)
	b := svc.Backends[svc.Table[h%uint32(len(svc.Table))]]
	for _, host := range l.backends {
		if host.Addr4 == b.Addr || host.Addr6 == b.Addr {
			return host.Name
		}
	}
	return "?"
}

func rxPackets(t *testing.T, h *netlab.Host) uint64 {
	t.Helper()
	var n uint64
	err := h.Run(func() error {
		ln, err := netlink.LinkByIndex(h.Index)
		if err != nil {
			return err
		}
		n = ln.Attrs().Statistics.RxPackets
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// attachOptions completes opts for h1.
func (l *lab) attachOptions(opts xdplb.AttachOptions) xdplb.AttachOptions {
	opts.Interface = l.lb.Index
	if len(opts.Modes) == 0 {
		// The order of a NIC's driver: the lab's veth has native XDP,
		// and its peer the program that native XDP_TX on a veth needs
		// (on a veth Attach itself would start with tcx).
		opts.Modes = xdplb.DefaultModes("")
	}
	opts.HashSeed = hashSeed
	opts.MaxServices, opts.MaxBackends, opts.MaxTableSize, opts.FlowTableSize = 4, 8, 1021, 4096
	return opts
}

// attach runs the load balancer on h1 as Master with both services.
func (l *lab) attach(opts xdplb.AttachOptions) *xdplb.Datapath {
	l.t.Helper()
	opts = l.attachOptions(opts)
	var d *xdplb.Datapath
	if err := l.lb.Run(func() (err error) { d, err = xdplb.Attach(opts); return err }); err != nil {
		l.t.Fatalf("Attach: %v", err)
	}
	if !d.Adopted() {
		if err := d.SetMAC(l.lb.MAC); err != nil {
			l.t.Fatal(err)
		}
		for _, vip := range l.vips {
			if err := d.SetService(l.svcs[vip]); err != nil {
				l.t.Fatal(err)
			}
		}
		if err := d.SetMaster(true); err != nil {
			l.t.Fatal(err)
		}
	}
	return d
}

// check sends two requests from every source to each VIP and wants each
// at the backend the Maglev table gives, every backend reached, the
// client's own address seen by the backend, and no reply through h1.
func (l *lab) check(d *xdplb.Datapath, what string) {
	l.t.Helper()
	var before xdplb.Stats
	if d != nil {
		var err error
		if before, err = d.Stats(); err != nil {
			l.t.Fatal(err)
		}
	}
	rx0 := rxPackets(l.t, l.lb)
	conns := 0
	for _, vip := range l.vips {
		reached := map[string]int{}
		for _, src := range l.sources[vip] {
			want := l.expected(src, vip)
			for range 2 {
				got, peer, err := l.request(src, vip)
				if err != nil {
					if d != nil {
						l.diag(d)
					}
					l.t.Fatalf("%s: %s → %s (want %s): %v", what, src, vip, want, err)
				}
				conns++
				if got != want {
					l.t.Errorf("%s: %s → %s reached %s, want %s (Maglev, persistent)", what, src, vip, got, want)
				}
				if ap, err := netip.ParseAddrPort(peer); err != nil || ap.Addr().Unmap() != src {
					l.t.Errorf("%s: %s saw the client as %q, want %s (DR keeps the packet)", what, got, peer, src)
				}
				reached[got]++
			}
		}
		if len(reached) != len(l.backends) {
			l.t.Errorf("%s: %s reached %v, want all of h1, h2, h3", what, vip, reached)
		}
	}
	if d == nil {
		return // no process holds the datapath: no counters to read
	}
	rx := rxPackets(l.t, l.lb) - rx0
	after, err := d.Stats()
	if err != nil {
		l.t.Fatal(err)
	}
	var pkts, syns uint64
	for i, s := range after.Services {
		pkts += s.Packets - before.Services[i].Packets
		syns += s.NewFlows - before.Services[i].NewFlows
	}
	l.t.Logf("%s: %d connections; h1's program handled %d packets (%d new flows), h1 received %d; events %+v",
		what, conns, pkts, syns, rx, after.Events)
	if syns < uint64(conns) {
		l.t.Errorf("%s: %d new flows counted for %d connections", what, syns, conns)
	}
	if n := after.Events.Malformed - before.Events.Malformed; n != 0 {
		l.t.Errorf("%s: %d frames of well-formed connections counted malformed (and passed to the stack)", what, n)
	}
	// Every packet h1 received is a client's packet to a VIP (handled by
	// the program), or ARP/NDP: the replies, as many again, went straight
	// from the backends to the client.
	if slack := uint64(64); rx > pkts+slack {
		l.t.Errorf("%s: h1 received %d packets, its program handled %d: replies went through the load balancer", what, rx, pkts)
	}
}

// diag logs what helps to see where packets went.
func (l *lab) diag(d *xdplb.Datapath) {
	if st, err := d.Stats(); err == nil {
		l.t.Logf("stats: %+v", st)
	}
	for _, h := range l.net.Hosts {
		for _, args := range [][]string{{"neigh"}, {"-s", "link", "show", "dev", h.IfName}} {
			out, _ := h.Exec(context.Background(), "ip", args...).CombinedOutput()
			l.t.Logf("%s: ip %s:\n%s", h.Name, strings.Join(args, " "), out)
		}
	}
}

func TestDRLab(t *testing.T) {
	l := newLab(t)

	t.Run("native", func(t *testing.T) {
		d := l.attach(xdplb.AttachOptions{})
		defer d.Remove()
		if d.Mode() != xdplb.ModeNative {
			t.Fatalf("mode %s, want %s", d.Mode(), xdplb.ModeNative)
		}
		l.t = t
		l.check(d, "native XDP")
	})

	t.Run("pinned-crash-restart", func(t *testing.T) {
		dir := t.TempDir()
		if err := syscall.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
			t.Fatal(err)
		}
		defer syscall.Unmount(dir, syscall.MNT_DETACH)
		opts := xdplb.AttachOptions{PinDir: filepath.Join(dir, "nlb")}
		l.t = t
		d := l.attach(opts)
		t.Cleanup(func() { d.Remove() })
		l.check(d, "pinned")
		// Connections to h2 and h3 that stay open throughout.
		conns := l.openRemote()
		d.Close() // what a SIGKILL leaves: the pins
		// Nobody holds the datapath: it forwards on by its pinned maps.
		for _, c := range conns {
			c.echo(t, "orphaned")
		}
		l.check(nil, "orphaned")
		o := l.attach(opts)
		t.Cleanup(func() { o.Remove() })
		if !o.Adopted() {
			t.Fatal("restart did not adopt the pinned datapath")
		}
		l.check(o, "adopted")
		for _, c := range conns {
			c.echo(t, "adopted")
		}
		// One program on the interface, the adopted one, and none on tcx.
		var x *netlink.LinkXdp
		var tcx *link.QueryResult
		err := l.lb.Run(func() error {
			ln, err := netlink.LinkByIndex(l.lb.Index)
			if err != nil {
				return err
			}
			x = ln.Attrs().Xdp
			tcx, err = link.QueryPrograms(link.QueryOptions{Target: l.lb.Index, Attach: ebpf.AttachTCXIngress})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		info, err := o.Program().Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		if x == nil || !x.Attached || ebpf.ProgramID(x.ProgId) != id || len(tcx.Programs) != 0 {
			t.Errorf("after the restart: XDP %+v, tcx %+v; want the adopted program %d alone", x, tcx.Programs, id)
		}
		if err := o.Remove(); err != nil {
			t.Fatal(err)
		}
	})

	// A real crash: the process that attached the datapath is SIGKILLed.
	t.Run("sigkill", func(t *testing.T) {
		dir := t.TempDir()
		if err := syscall.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
			t.Fatal(err)
		}
		defer syscall.Unmount(dir, syscall.MNT_DETACH)
		opts := l.attachOptions(xdplb.AttachOptions{PinDir: filepath.Join(dir, "nlb")})
		cfg := helperConfig{Attach: opts, MAC: l.lb.MAC}
		for _, vip := range l.vips {
			cfg.Services = append(cfg.Services, l.svcs[vip])
		}
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		cfgFile := filepath.Join(t.TempDir(), "helper.json")
		if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
			t.Fatal(err)
		}
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		p := netlab.NewProcess("lb@h1", filepath.Join(t.TempDir(), "helper.log"), l.lb, exe, helperArg, cfgFile)
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		defer p.Kill()
		nlbtest.Eventually(t, time.Minute, "the helper attached", func() error {
			if !p.Running() {
				return nlbtest.Stop(fmt.Errorf("helper exited: %v\n%s", p.Err(), p.Log()))
			}
			if !strings.Contains(p.Log(), "ready") {
				return errors.New("not ready")
			}
			return nil
		})
		l.t = t
		conns := l.openRemote()
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
		for _, c := range conns {
			c.echo(t, "after SIGKILL")
		}
		l.check(nil, "after SIGKILL")
		d := l.attach(xdplb.AttachOptions{PinDir: opts.PinDir})
		t.Cleanup(func() { d.Remove() })
		if !d.Adopted() || !d.Master() {
			t.Fatalf("adopted %v, Master %v after the SIGKILL; want the pinned Master datapath", d.Adopted(), d.Master())
		}
		l.check(d, "adopted after SIGKILL")
		for _, c := range conns {
			c.echo(t, "adopted after SIGKILL")
		}
		if err := d.Remove(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(opts.PinDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after Remove: %v, want it gone", opts.PinDir, err)
		}
	})

	// Every controller is also a worker: kube-proxy-style NAT rules and
	// conntrack on every packet change nothing for DR, and conntrack on
	// the backends sees the connections the load balancer sent them.
	t.Run("worker-rules", func(t *testing.T) {
		l.t = t
		var news []func() uint64
		for _, h := range l.backends {
			news = append(news, workerRules(t, h, l.backends[1].Addr4.As4()))
		}
		before := make([]uint64, len(news))
		for i, f := range news {
			before[i] = f()
		}
		d := l.attach(xdplb.AttachOptions{})
		defer d.Remove()
		l.check(d, "with worker rules ("+workerRulesString()+")")
		for i, f := range news {
			if n := f() - before[i]; n == 0 {
				t.Errorf("%s: conntrack saw no new connection: the rules are not in the path", l.backends[i].Name)
			}
		}
	})

	// tcx chosen, with no XDP program on the interface: the frames
	// arrive as the client's stack built them, headers linear and
	// payload in pages, so a parse that took the linear part for the
	// packet would pass every segment longer than TC_PULL to the stack.
	t.Run("tcx", func(t *testing.T) {
		l.t = t
		d := l.attach(xdplb.AttachOptions{Modes: []xdplb.Mode{xdplb.ModeTCX}})
		defer d.Remove()
		if d.Mode() != xdplb.ModeTCX {
			t.Fatalf("mode %s, want %s", d.Mode(), xdplb.ModeTCX)
		}
		l.check(d, "tcx")
	})

	t.Run("tcx-fallback", func(t *testing.T) {
		other := xdpPassProgram(t, "other_xdp")
		err := l.lb.Run(func() error {
			return netlink.LinkSetXdpFdWithFlags(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: l.lb.Index}}, other.FD(), 1<<1)
		})
		if err != nil {
			t.Fatal(err)
		}
		defer l.lb.Run(func() error {
			return netlink.LinkSetXdpFdWithFlags(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: l.lb.Index}}, -1, 1<<1)
		})
		l.t = t
		d := l.attach(xdplb.AttachOptions{})
		defer d.Remove()
		if d.Mode() != xdplb.ModeTCX {
			t.Fatalf("mode %s with another XDP program on the interface, want %s", d.Mode(), xdplb.ModeTCX)
		}
		l.check(d, "tcx fallback")
	})
}
