//go:build linux

package xdplb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The attach tests run in a netlab namespace with one host, on its veth,
// and pin in a bpffs of their own mounted on a temporary directory (and
// unmounted at the end, which frees whatever a failed test left pinned).

// XDP attach modes as netlink reports them (XDP_ATTACHED_*).
const (
	xdpAttachedDrv = 1
	xdpAttachedSkb = 2
)

// bpffs mounts a bpf filesystem on a new temporary directory.
func bpffs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount bpffs: %v", err)
		}
	})
	return dir
}

func attachHost(t *testing.T) *netlab.Host {
	t.Helper()
	lab := netlab.NewT(t, t.Name(), netlab.Options{Hosts: 1})
	return lab.Hosts[0]
}

// attachIn attaches in the host's namespace.
func attachIn(t *testing.T, h *netlab.Host, opts AttachOptions) *Datapath {
	t.Helper()
	opts.Interface = h.Index
	var d *Datapath
	if err := h.Run(func() (err error) { d, err = Attach(opts); return err }); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// xdpState is what netlink says is attached to the host's XDP hook.
func xdpState(t *testing.T, h *netlab.Host) netlink.LinkXdp {
	t.Helper()
	var x netlink.LinkXdp
	err := h.Run(func() error {
		l, err := netlink.LinkByIndex(h.Index)
		if err != nil {
			return err
		}
		if l.Attrs().Xdp != nil {
			x = *l.Attrs().Xdp
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// tcxPrograms are the IDs of the programs on the host's tcx ingress.
func tcxPrograms(t *testing.T, h *netlab.Host) []ebpf.ProgramID {
	t.Helper()
	var ids []ebpf.ProgramID
	err := h.Run(func() error {
		res, err := link.QueryPrograms(link.QueryOptions{Target: h.Index, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return err
		}
		for _, p := range res.Programs {
			ids = append(ids, p.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func progID(t *testing.T, p *ebpf.Program) ebpf.ProgramID {
	t.Helper()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("no program ID")
	}
	return id
}

func TestAttachModes(t *testing.T) {
	h := attachHost(t)
	for _, tc := range []struct {
		modes []Mode
		want  Mode
		xdp   uint32
	}{
		{nil, ModeTCX, 0}, // on a veth, tcx first (DefaultModes)
		{[]Mode{ModeNative}, ModeNative, xdpAttachedDrv}, // veth has native XDP
		{[]Mode{ModeGeneric, ModeNative}, ModeGeneric, xdpAttachedSkb},
		{[]Mode{ModeTCX}, ModeTCX, 0},
	} {
		d := attachIn(t, h, AttachOptions{Modes: tc.modes})
		if d.Mode() != tc.want || d.Adopted() || len(d.Skipped()) != 0 {
			t.Errorf("Modes %v: mode %s, adopted %v, skipped %v; want %s, not adopted, none skipped", tc.modes, d.Mode(), d.Adopted(), d.Skipped(), tc.want)
		}
		x := xdpState(t, h)
		tcx := tcxPrograms(t, h)
		if tc.xdp != 0 {
			if !x.Attached || x.AttachMode != tc.xdp || ebpf.ProgramID(x.ProgId) != progID(t, d.Program()) || len(tcx) != 0 {
				t.Errorf("Modes %v: XDP hook %+v, tcx %v; want our program in XDP mode %d and no tcx program", tc.modes, x, tcx, tc.xdp)
			}
		} else if x.Attached || len(tcx) != 1 || tcx[0] != progID(t, d.objs.NlbTcLb) {
			t.Errorf("Modes %v: XDP hook %+v, tcx %v; want nothing on XDP and our tcx program %d", tc.modes, x, tcx, progID(t, d.objs.NlbTcLb))
		}
		// Unpinned: closing detaches.
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if x := xdpState(t, h); x.Attached || len(tcxPrograms(t, h)) != 0 {
			t.Errorf("Modes %v: after Close: XDP hook %+v, tcx %v; want nothing attached", tc.modes, x, tcxPrograms(t, h))
		}
	}
	if _, err := Attach(AttachOptions{Interface: h.Index, Modes: []Mode{"xdp-offload"}}); err == nil {
		t.Error("unknown mode accepted")
	}
	if _, err := Attach(AttachOptions{Interface: h.Index, PinDir: t.TempDir()}); err == nil {
		t.Error("a pin directory off bpffs accepted")
	}
}

// TestAttachFallbackTCX: another XDP program holds the interface, attached
// the way a CNI does (netlink, generic mode): both XDP modes fail and the
// load balancer runs as tcx ingress, leaving the other program alone.
func TestAttachFallbackTCX(t *testing.T) {
	h := attachHost(t)
	other, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "other_xdp",
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, xdpPass), asm.Return()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	err = h.Run(func() error {
		return netlink.LinkSetXdpFdWithFlags(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: h.Index}}, other.FD(), 1<<1 /* XDP_FLAGS_SKB_MODE */)
	})
	if err != nil {
		t.Fatal(err)
	}
	otherID := progID(t, other)

	dir := filepath.Join(bpffs(t), "lb")
	d := attachIn(t, h, AttachOptions{PinDir: dir, Modes: DefaultModes("")})
	if d.Mode() != ModeTCX || len(d.Skipped()) != 2 {
		t.Fatalf("mode %s, skipped %v; want %s after native and generic failed", d.Mode(), d.Skipped(), ModeTCX)
	}
	t.Logf("skipped: %v", d.Skipped())
	if x := xdpState(t, h); ebpf.ProgramID(x.ProgId) != otherID {
		t.Errorf("XDP hook %+v, want the other program %d still there", x, otherID)
	}
	if tcx := tcxPrograms(t, h); len(tcx) != 1 || tcx[0] != progID(t, d.objs.NlbTcLb) {
		t.Errorf("tcx ingress %v, want our program alone", tcx)
	}
	if err := d.Remove(); err != nil {
		t.Fatal(err)
	}
	if tcx := tcxPrograms(t, h); len(tcx) != 0 {
		t.Errorf("after Remove: tcx ingress %v, want empty", tcx)
	}
	if x := xdpState(t, h); ebpf.ProgramID(x.ProgId) != otherID {
		t.Errorf("after Remove: XDP hook %+v, want the other program %d untouched", x, otherID)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Remove: %s: %v, want it gone", dir, err)
	}
}

// TestPinAdoptRemove: a pinned datapath outlives its process (Close, as a
// crash leaves it: the kernel keeps what is pinned), keeps forwarding, and
// the next Attach adopts it: the same link (never detached), exactly one
// program, the VRRP state, MAC, services and slots as they were. Remove
// leaves nothing.
func TestPinAdoptRemove(t *testing.T) {
	h := attachHost(t)
	dir := filepath.Join(bpffs(t), "nlb", "eth0")
	opts := AttachOptions{PinDir: dir, Modes: DefaultModes(""), Options: Options{MaxServices: 4, MaxBackends: 8, MaxTableSize: 251, FlowTableSize: 1024, HashSeed: 0x5eed}}
	d := attachIn(t, h, opts)
	if d.Adopted() {
		t.Fatal("first Attach adopted something")
	}
	if err := d.SetMAC(lbMAC[:]); err != nil {
		t.Fatal(err)
	}
	if err := d.SetMaster(true); err != nil {
		t.Fatal(err)
	}
	guard := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}
	if err := d.SetGuardMACs([]net.HardwareAddr{guard}); err != nil {
		t.Fatal(err)
	}
	svc4 := Service{VIP: vip4.Addr(), Port: vip4.Port(), Backends: backends(false, 3, -1), Table: identity(3)}
	svc6 := Service{VIP: vip6.Addr(), Port: vip6.Port(), Backends: backends(true, 3, 1), Table: identity(3), Persistent: true}
	for _, s := range []Service{svc4, svc6} {
		if err := d.SetService(s); err != nil {
			t.Fatal(err)
		}
	}
	// An established flow, pinned to a backend in the flow table.
	client := clientN(client4, 1)
	syn4 := tcpFrame(client, vip4, syn, nil)
	want := beMACs[pick(svc4, client, opts.HashSeed)]
	runWant(t, d.Program(), syn4, want)
	linkID, err := d.LinkID()
	if err != nil {
		t.Fatal(err)
	}
	oldProg := progID(t, d.Program())
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	// The process is gone: the program still runs on the interface.
	if x := xdpState(t, h); !x.Attached || ebpf.ProgramID(x.ProgId) != oldProg {
		t.Fatalf("after Close: XDP hook %+v, want program %d still attached", x, oldProg)
	}

	d2 := attachIn(t, h, opts)
	if !d2.Adopted() || d2.Mode() != ModeNative {
		t.Fatalf("second Attach: adopted %v, mode %s; want the pinned %s datapath adopted", d2.Adopted(), d2.Mode(), ModeNative)
	}
	id2, err := d2.LinkID()
	if err != nil {
		t.Fatal(err)
	}
	if id2 != linkID {
		t.Errorf("link %d after adoption, want the pinned link %d (no detach, no second attachment)", id2, linkID)
	}
	if x := xdpState(t, h); !x.Attached || ebpf.ProgramID(x.ProgId) != progID(t, d2.Program()) {
		t.Errorf("XDP hook %+v, want the new program %d alone", x, progID(t, d2.Program()))
	}
	if !d2.Master() || !bytes.Equal(d2.MAC(), lbMAC[:]) {
		t.Errorf("adopted Master %v, MAC %s; want true, %s", d2.Master(), d2.MAC(), net.HardwareAddr(lbMAC[:]))
	}
	st, err := d2.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Services) != 2 {
		t.Fatalf("adopted services %+v, want 2", st.Services)
	}
	for i, s := range []Service{svc4, svc6} {
		got := st.Services[i]
		if got.VIP != s.VIP || got.Port != s.Port || len(got.Backends) != len(s.Backends) {
			t.Errorf("adopted service %d: %s port %d with %d backends, want %s port %d with %d", i, got.VIP, got.Port, len(got.Backends), s.VIP, s.Port, len(s.Backends))
			continue
		}
		for j, b := range got.Backends {
			if b.Addr != s.Backends[j].Addr {
				t.Errorf("adopted service %s: backend %d is %s, want %s", s.VIP, j, b.Addr, s.Backends[j].Addr)
			}
		}
	}
	if st.Services[0].NewFlows != 1 {
		t.Errorf("adopted counters of %s: %+v, want the one new flow", vip4, st.Services[0].Counters)
	}
	if !d2.guard[[6]byte(guard)] || !d2.extra[[6]byte(guard)] || len(d2.extra) != 1 {
		t.Errorf("adopted guard %v, extra %v; want the backends' MACs and %s as the one extra", d2.guard, d2.extra, guard)
	}
	// The flow goes on to its backend, now from the flow table, and
	// re-applying the same service keeps the slots (no counter reset).
	ack4 := tcpFrame(client, vip4, ack, []byte("x"))
	runWant(t, d2.Program(), ack4, want)
	if err := d2.SetService(svc4); err != nil {
		t.Fatal(err)
	}
	st, err = d2.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// The ACK finds the SYN's flow in the adopted flow table.
	if c := st.Services[0].Counters; c.Packets != 2 || c.NewFlows != 1 || c.Rehashed != 0 {
		t.Errorf("counters of %s after adoption: %+v, want 2 packets, 1 new flow and none re-hashed, counted on across the adoption", vip4, c)
	}

	// A different seed is refused, not silently mixed.
	bad := opts
	bad.HashSeed++
	bad.Interface = h.Index
	if err := h.Run(func() error { _, err := Attach(bad); return err }); err == nil {
		t.Error("Attach with another HashSeed adopted the pinned datapath")
	}
	if x := xdpState(t, h); !x.Attached || ebpf.ProgramID(x.ProgId) != progID(t, d2.Program()) {
		t.Errorf("after the refused Attach: XDP hook %+v, want our program still there", x)
	}

	if d2.Replaced() != nil {
		t.Errorf("the adopting Attach says it replaced the tables: %v", d2.Replaced())
	}
	if err := d2.Close(); err != nil {
		t.Fatal(err)
	}

	// Restarted with another flow table size (or by a version with
	// another map layout): the pinned tables cannot be adopted. Fresh
	// ones replace them and the pinned link switches to the program on
	// them: one program attached throughout, no error.
	resized := opts
	resized.FlowTableSize = 4096
	d3 := attachIn(t, h, resized)
	if d3.Adopted() || d3.Replaced() == nil || !errors.Is(d3.Replaced(), ebpf.ErrMapIncompatible) {
		t.Errorf("Attach with another flow table size: adopted %v, replaced %v; want fresh tables, and why", d3.Adopted(), d3.Replaced())
	}
	if id3, err := d3.LinkID(); err != nil || id3 != linkID {
		t.Errorf("link %d (%v) after replacing the tables, want the pinned link %d", id3, err, linkID)
	}
	if x := xdpState(t, h); !x.Attached || ebpf.ProgramID(x.ProgId) != progID(t, d3.Program()) {
		t.Errorf("XDP hook %+v, want the new program %d alone", x, progID(t, d3.Program()))
	}
	if err := d3.SetMAC(lbMAC[:]); err != nil {
		t.Fatal(err)
	}
	if err := d3.SetMaster(true); err != nil {
		t.Fatal(err)
	}
	if err := d3.SetService(svc4); err != nil {
		t.Fatal(err)
	}
	runWant(t, d3.Program(), ack4, want)
	if st, err := d3.Stats(); err != nil || st.Services[0].Rehashed != 1 {
		t.Errorf("stats %+v (%v) after replacing the tables: want the established flow re-hashed to its backend", st, err)
	}

	if err := d3.Remove(); err != nil {
		t.Fatal(err)
	}
	if x := xdpState(t, h); x.Attached {
		t.Errorf("after Remove: XDP hook %+v, want nothing", x)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Remove: %s: %v, want it gone", dir, err)
	}
}

// TestModeChangeAndRemovePinned: an nlb that now runs another mode removes
// the pinned link of the old one (keeping the tables), and RemovePinned
// clears a datapath whose process is gone.
func TestModeChangeAndRemovePinned(t *testing.T) {
	h := attachHost(t)
	dir := filepath.Join(bpffs(t), "lb")
	opts := AttachOptions{PinDir: dir, Modes: DefaultModes(""), Options: Options{MaxServices: 2, MaxBackends: 4, MaxTableSize: 7, FlowTableSize: 64}}
	d := attachIn(t, h, opts)
	if d.Mode() != ModeNative {
		t.Fatalf("mode %s, want %s", d.Mode(), ModeNative)
	}
	if err := d.SetService(Service{VIP: vip4.Addr(), Port: vip4.Port(), Backends: backends(false, 2, -1), Table: identity(2)}); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	opts.Modes = []Mode{ModeTCX}
	d2 := attachIn(t, h, opts)
	if d2.Mode() != ModeTCX || !d2.Adopted() {
		t.Fatalf("mode %s, adopted %v; want %s with the pinned tables", d2.Mode(), d2.Adopted(), ModeTCX)
	}
	if x := xdpState(t, h); x.Attached {
		t.Errorf("XDP hook %+v after the switch to tcx, want the old mode's program gone", x)
	}
	if tcx := tcxPrograms(t, h); len(tcx) != 1 {
		t.Errorf("tcx ingress %v, want one program", tcx)
	}
	if _, err := os.Stat(filepath.Join(dir, "link-"+string(ModeNative))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the native link's pin: %v, want it removed", err)
	}
	if st, err := d2.Stats(); err != nil || len(st.Services) != 1 {
		t.Errorf("services after the switch: %+v, %v; want the pinned one", st.Services, err)
	}
	if err := d2.Close(); err != nil {
		t.Fatal(err)
	}
	if tcx := tcxPrograms(t, h); len(tcx) != 1 {
		t.Fatalf("tcx ingress %v after Close, want the pinned program running", tcx)
	}

	var rerr error
	if err := h.Run(func() error { rerr = RemovePinned(dir); return nil }); err != nil {
		t.Fatal(err)
	}
	if rerr != nil {
		t.Fatal(rerr)
	}
	if tcx := tcxPrograms(t, h); len(tcx) != 0 {
		t.Errorf("tcx ingress %v after RemovePinned, want empty", tcx)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after RemovePinned: %v, want it gone", dir, err)
	}
	if err := RemovePinned(dir); err != nil {
		t.Errorf("RemovePinned of a missing directory: %v", err)
	}
}

// runWant runs frame through prog and wants it forwarded to be.
func runWant(t *testing.T, prog *ebpf.Program, frame []byte, be [6]byte) {
	t.Helper()
	out := make([]byte, len(frame)+512)
	ro := ebpf.RunOptions{Data: frame, DataOut: out}
	ret, err := prog.Run(&ro)
	if err != nil {
		t.Fatalf("BPF_PROG_RUN: %v", err)
	}
	if w := forwarded(frame, be); ret != xdpTX || !bytes.Equal(ro.DataOut, w) {
		t.Errorf("verdict %d, frame\n%s\nwant XDP_TX to %s", ret, hexdiff(ro.DataOut, w), net.HardwareAddr(be[:]))
	}
}

// tcx verdicts (enum tcx_action_base; TCX_REDIRECT is TC_ACT_REDIRECT).
const (
	tcxNext     = ^uint32(0) // -1
	tcxRedirect = 7
)

// TestTCXProgram runs the tcx program (ModeTCX) through BPF_PROG_RUN: it
// forwards what the XDP program forwards, with the same frame out, as a
// redirect to the interface it came in on, and hands the rest to the next
// program unchanged.
func TestTCXProgram(t *testing.T) {
	svc := Service{VIP: vip4.Addr(), Port: vip4.Port(), Backends: backends(false, 3, 2), Table: identity(3)}
	svc6 := Service{VIP: vip6.Addr(), Port: vip6.Port(), Backends: backends(true, 3, -1), Table: identity(3)}
	l := newLab(t, Options{MaxServices: 2, MaxBackends: 4, MaxTableSize: 7, FlowTableSize: 64}, svc, svc6)
	run := func(frame []byte) (uint32, []byte) {
		t.Helper()
		out := make([]byte, len(frame)+512)
		ro := ebpf.RunOptions{Data: frame, DataOut: out}
		ret, err := l.o.objs.NlbTcLb.Run(&ro)
		if err != nil {
			t.Fatalf("BPF_PROG_RUN: %v", err)
		}
		return ret, ro.DataOut
	}
	forwardedSome, local := 0, 0
	for i := range 12 {
		for _, tc := range []struct {
			s      Service
			client netip.AddrPort
		}{{svc, clientN(client4, i)}, {svc6, clientN(client6, i)}} {
			vip := netip.AddrPortFrom(tc.s.VIP, tc.s.Port)
			f := tcpFrame(tc.client, vip, syn, nil)
			b := pick(tc.s, tc.client, 0)
			ret, out := run(f)
			if tc.s.Backends[b].Local {
				local++
				if ret != tcxNext || !bytes.Equal(out, f) {
					t.Errorf("%s → %s (local backend): verdict %d, want TCX_NEXT and the frame unchanged", tc.client, vip, int32(ret))
				}
				continue
			}
			forwardedSome++
			if w := forwarded(f, beMACs[b]); ret != tcxRedirect || !bytes.Equal(out, w) {
				t.Errorf("%s → %s: verdict %d, frame\n%s\nwant TC_ACT_REDIRECT to %s", tc.client, vip, int32(ret), hexdiff(out, w), net.HardwareAddr(beMACs[b][:]))
			}
		}
	}
	if forwardedSome == 0 || local == 0 {
		t.Errorf("%d forwarded, %d local: the clients do not cover both cases", forwardedSome, local)
	}
	other := tcpFrame(client4, netip.AddrPortFrom(vip4.Addr(), 80), syn, nil)
	if ret, out := run(other); ret != tcxNext || !bytes.Equal(out, other) {
		t.Errorf("non-VIP port: verdict %d, want TCX_NEXT and the frame unchanged", int32(ret))
	}
	if err := l.o.SetMaster(false); err != nil {
		t.Fatal(err)
	}
	f := tcpFrame(clientN(client4, 100), vip4, syn, nil)
	if ret, _ := run(f); ret != tcxNext {
		t.Errorf("Backup: verdict %d, want TCX_NEXT", int32(ret))
	}
}

// TestTCXHeadersNotLinear: a frame whose headers the kernel holds partly
// outside the skb's linear part is pulled and balanced by the tcx program,
// not counted malformed and passed to the stack. A packet socket builds
// such a frame: with a virtio header whose hdr_len is the Ethernet header,
// a frame larger than a page gets only those 14 bytes in the linear part
// (net/packet's packet_snd), and veths and the bridge pass it on as it is.
func TestTCXHeadersNotLinear(t *testing.T) {
	lab := netlab.NewT(t, t.Name(), netlab.Options{Hosts: 2})
	lb, sender := lab.Hosts[0], lab.Hosts[1]
	for _, h := range []*netlab.Host{lb, sender} {
		if err := h.SetMTU(9000); err != nil {
			t.Fatal(err)
		}
	}
	d := attachIn(t, lb, AttachOptions{Modes: []Mode{ModeTCX}})
	if err := d.SetMAC(lb.MAC); err != nil {
		t.Fatal(err)
	}
	if err := d.SetMaster(true); err != nil {
		t.Fatal(err)
	}
	svc := Service{VIP: vip4.Addr(), Port: vip4.Port(), Backends: backends(false, 3, -1), Table: identity(3)}
	if err := d.SetService(svc); err != nil {
		t.Fatal(err)
	}

	f := tcpFrame(client4, vip4, ack|psh, make([]byte, 8000))
	copy(f[0:6], lb.MAC)
	copy(f[6:12], sender.MAC)
	vnet := make([]byte, 10)                    // struct virtio_net_hdr, little endian: no GSO, no checksum
	binary.LittleEndian.PutUint16(vnet[2:], 14) // hdr_len: the Ethernet header
	err := sender.Run(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			return err
		}
		sa := &unix.SockaddrLinklayer{Ifindex: sender.Index, Protocol: htons(unix.ETH_P_IP)}
		return unix.Sendto(fd, append(vnet, f...), 0, sa)
	})
	if err != nil {
		t.Fatalf("send a frame of %d bytes: %v", len(f), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var st Stats
	err = nlbtest.Poll(ctx, 10*time.Millisecond, "the frame through the tcx program", func() error {
		var err error
		if st, err = d.Stats(); err != nil {
			return nlbtest.Stop(err)
		}
		if st.Malformed > 0 || len(st.Services) == 1 && st.Services[0].Packets > 0 {
			return nil
		}
		return errors.New("not yet")
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Malformed != 0 || st.Services[0].Packets != 1 || st.Services[0].Bytes != uint64(len(f)) {
		t.Errorf("events %+v, service %+v; want the frame balanced (1 packet of %d bytes), none malformed", st.Events, st.Services[0].Counters, len(f))
	}
}
