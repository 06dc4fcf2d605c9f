//go:build linux

package sklookup

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

func listen(t *testing.T, network, addr string) *net.TCPListener {
	t.Helper()
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(t.Context(), network, addr)
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

func TestKeyOfByteOrder(t *testing.T) {
	// The address words hold the address bytes in memory order, like
	// bpf_sk_lookup.local_ip4/ip6 (network byte order).
	k := keyOf(netip.MustParseAddr("192.0.2.100"), 6443)
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], k.Addr[0])
	if b != [4]byte{192, 0, 2, 100} || k.Addr[1] != 0 || k.Port != 6443 || k.Family != unix.AF_INET {
		t.Errorf("IPv4 key = %+v (bytes %v)", k, b)
	}
	k = keyOf(netip.MustParseAddr("2001:db8::100"), 6443)
	var b16 [16]byte
	for i, w := range k.Addr {
		binary.NativeEndian.PutUint32(b16[4*i:], w)
	}
	if netip.AddrFrom16(b16) != netip.MustParseAddr("2001:db8::100") || k.Family != unix.AF_INET6 {
		t.Errorf("IPv6 key = %+v", k)
	}
}

func TestVIPKeysValidation(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.100")
	many := make([]netip.Addr, MaxVIPs+1)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
	}
	for _, tc := range []struct {
		name string
		vips []netip.Addr
		port uint16
		want string
	}{
		{"no port", []netip.Addr{v4}, 0, "port 0"},
		{"no VIPs", nil, 6443, "no VIPs"},
		{"too many", many, 6443, "at most"},
		{"zero addr", []netip.Addr{{}}, 6443, "invalid VIP"},
		{"unspecified", []netip.Addr{netip.IPv6Unspecified()}, 6443, "invalid VIP"},
		{"multicast", []netip.Addr{netip.MustParseAddr("224.0.0.18")}, 6443, "invalid VIP"},
		{"zone", []netip.Addr{netip.MustParseAddr("fe80::1%eth0")}, 6443, "invalid VIP"},
	} {
		if _, err := vipKeys(tc.vips, tc.port); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	// Duplicates (also as IPv4-mapped IPv6) collapse into one key.
	keys, err := vipKeys([]netip.Addr{v4, netip.AddrFrom16(v4.As16()), v4}, 6443)
	if err != nil || len(keys) != 1 || keys[0].Family != unix.AF_INET {
		t.Errorf("duplicates: %+v, %v", keys, err)
	}
}

func TestListenerSlots(t *testing.T) {
	dual := listen(t, "tcp", "[::]:0") // AF_INET6 without V6ONLY (a wildcard "tcp" listener)
	v6only := listen(t, "tcp6", "[::1]:0")
	v4 := listen(t, "tcp4", "127.0.0.1:0")
	k4 := keyOf(netip.MustParseAddr("192.0.2.100"), 6443)
	k6 := keyOf(netip.MustParseAddr("2001:db8::100"), 6443)

	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	var mlc net.ListenConfig
	mlc.SetMultipathTCP(true)
	mptcp, err := mlc.Listen(t.Context(), "tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mptcp.Close()
	dialer, err := net.Dial("tcp4", v4.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer dialer.Close()

	for _, tc := range []struct {
		name string
		ls   []syscall.Conn
		keys []vipKey
		want string // "" for success
		v4   bool   // a listener in the IPv4 slot
	}{
		{"dual-stack takes both", []syscall.Conn{dual}, []vipKey{k4, k6}, "", false},
		{"v4 and v6only", []syscall.Conn{v4, v6only}, []vipKey{k4, k6}, "", true},
		{"v6only cannot take IPv4", []syscall.Conn{v6only}, []vipKey{k4}, "no listener accepts IPv4", false},
		{"v4 cannot take IPv6", []syscall.Conn{v4}, []vipKey{k6}, "no AF_INET6 listener", true},
		{"two v6", []syscall.Conn{dual, v6only}, []vipKey{k6}, "second AF_INET6", false},
		{"none", nil, []vipKey{k4}, "no listeners", false},
		{"nil", []syscall.Conn{nil}, []vipKey{k4}, "nil", false},
		{"udp", []syscall.Conn{udp.(syscall.Conn)}, []vipKey{k4}, "not a TCP socket", false},
		{"connected", []syscall.Conn{dialer.(syscall.Conn)}, []vipKey{k4}, "not listening", false},
		{"mptcp", []syscall.Conn{mptcp.(syscall.Conn)}, []vipKey{k4}, "MPTCP", false},
	} {
		slots, err := listenerSlots(tc.ls, tc.keys)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			} else if (slots[slotV4] != nil) != tc.v4 {
				t.Errorf("%s: IPv4 slot used = %v, want %v", tc.name, slots[slotV4] != nil, tc.v4)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// skLookupCtx is struct bpf_sk_lookup as BPF_PROG_TEST_RUN takes it.
type skLookupCtx struct {
	Cookie         uint64
	Family         uint32
	Protocol       uint32
	RemoteIP4      uint32
	RemoteIP6      [4]uint32
	RemotePort     uint32
	LocalIP4       uint32
	LocalIP6       [4]uint32
	LocalPort      uint32
	IngressIfindex uint32
	Pad            uint32 // the struct is 8-byte aligned: 72 bytes
}

func cookie(t *testing.T, c syscall.Conn) uint64 {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v uint64
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		v, gerr = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_COOKIE)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	return v
}

// TestProgramDecisions runs the loaded program on crafted lookups with
// BPF_PROG_TEST_RUN (Linux 5.14), without attaching it anywhere: the
// context's cookie comes back as the chosen socket's, or 0.
func TestProgramDecisions(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("NLB_PRIVILEGED") == "1" {
			t.Fatal("requires root (NLB_PRIVILEGED=1)")
		}
		t.Skip("requires root")
	}
	if err := Supported(); err != nil {
		if os.Getenv("NLB_PRIVILEGED") == "1" && !errors.Is(err, ErrNotSupported) {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	vip4 := netip.MustParseAddr("192.0.2.100")
	vip6 := netip.MustParseAddr("2001:db8::100")
	other4 := netip.MustParseAddr("192.0.2.11")

	run := func(t *testing.T, ls []syscall.Conn, family, proto uint32, local netip.Addr, port uint16) uint64 {
		t.Helper()
		keys, err := vipKeys([]netip.Addr{vip4, vip6}, 6443)
		if err != nil {
			t.Fatal(err)
		}
		slots, err := listenerSlots(ls, nil)
		if err != nil {
			t.Fatal(err)
		}
		var l Link
		if err := loadSklookupObjects(&l.objs, nil); err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if err := l.fill(keys, slots); err != nil {
			t.Fatal(err)
		}
		k := keyOf(local, port)
		in := skLookupCtx{Family: family, Protocol: proto, LocalPort: uint32(port)}
		in.LocalIP4 = k.Addr[0]
		if family == unix.AF_INET6 {
			in.LocalIP6 = k.Addr
			in.LocalIP4 = 0
		}
		var out skLookupCtx
		ret, err := l.objs.NlbSkLookup.Run(&ebpf.RunOptions{Context: in, ContextOut: &out})
		if errors.Is(err, ebpf.ErrNotSupported) {
			t.Skip("BPF_PROG_TEST_RUN for sk_lookup:", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		if ret != 1 {
			t.Errorf("returned %d, want SK_PASS", ret)
		}
		return out.Cookie
	}

	dual := listen(t, "tcp", "[::]:0")
	v4 := listen(t, "tcp4", "127.0.0.1:0")
	v6only := listen(t, "tcp6", "[::1]:0")
	cDual, cV4, cV6 := cookie(t, dual), cookie(t, v4), cookie(t, v6only)

	for _, tc := range []struct {
		name   string
		ls     []syscall.Conn
		family uint32
		proto  uint32
		local  netip.Addr
		port   uint16
		want   uint64
	}{
		{"IPv4 VIP to dual-stack", []syscall.Conn{dual}, unix.AF_INET, unix.IPPROTO_TCP, vip4, 6443, cDual},
		{"IPv6 VIP to dual-stack", []syscall.Conn{dual}, unix.AF_INET6, unix.IPPROTO_TCP, vip6, 6443, cDual},
		{"IPv4 VIP to AF_INET first", []syscall.Conn{v4, v6only}, unix.AF_INET, unix.IPPROTO_TCP, vip4, 6443, cV4},
		{"IPv6 VIP to AF_INET6", []syscall.Conn{v4, v6only}, unix.AF_INET6, unix.IPPROTO_TCP, vip6, 6443, cV6},
		{"IPv4 VIP, only v6only listener", []syscall.Conn{v6only}, unix.AF_INET, unix.IPPROTO_TCP, vip4, 6443, 0},
		{"IPv6 VIP, only AF_INET listener", []syscall.Conn{v4}, unix.AF_INET6, unix.IPPROTO_TCP, vip6, 6443, 0},
		{"node address", []syscall.Conn{dual}, unix.AF_INET, unix.IPPROTO_TCP, other4, 6443, 0},
		{"other port", []syscall.Conn{dual}, unix.AF_INET, unix.IPPROTO_TCP, vip4, 6444, 0},
		{"UDP", []syscall.Conn{dual}, unix.AF_INET, unix.IPPROTO_UDP, vip4, 6443, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := run(t, tc.ls, tc.family, tc.proto, tc.local, tc.port); got != tc.want {
				t.Errorf("chosen socket cookie %d, want %d (dual %d, v4 %d, v6only %d)", got, tc.want, cDual, cV4, cV6)
			}
		})
	}
}
