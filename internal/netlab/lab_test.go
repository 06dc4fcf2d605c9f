//go:build linux

package netlab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSanitize(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"TestFoo/bar_baz", "testfoobarba"},
		{"", ""},
		{"a-b", "ab"},
	} {
		if got := sanitize(tt.in); got != tt.want {
			t.Errorf("sanitize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLabAddressesNoIO(t *testing.T) {
	l := &Lab{}
	if want, got := netip.MustParsePrefix("192.0.2.100/24"), l.VIP4(0); want != got {
		t.Errorf("VIP4(0) = %v, want %v", got, want)
	}
	if want, got := netip.MustParsePrefix("2001:db8::1:7/64"), l.VIP6(7); want != got {
		t.Errorf("VIP6(7) = %v, want %v", got, want)
	}
}

func netnsList(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	return string(out)
}

// reach connects over TCP from one host to dst, an address of another.
func reach(from, to *Host, dst netip.Addr) error {
	var ln net.Listener
	if err := to.Run(func() error {
		var err error
		addr := dst
		if dst.IsLinkLocalUnicast() {
			addr = dst.WithZone(to.IfName)
		}
		ln, err = net.Listen("tcp", net.JoinHostPort(addr.String(), "0"))
		return err
	}); err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	target := netip.AddrPortFrom(dst, uint16(port)).String()
	if dst.IsLinkLocalUnicast() {
		target = net.JoinHostPort(dst.WithZone(from.IfName).String(), fmt.Sprint(port))
	}
	return from.Run(func() error {
		c, err := net.DialTimeout("tcp", target, 3*time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

func TestLabLifecycle(t *testing.T) {
	Require(t)
	l, err := New("self", Options{Hosts: 3, Segments: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })

	if got := len(l.Hosts); got != 3 {
		t.Fatalf("hosts = %d, want 3", got)
	}
	list := netnsList(t)
	for _, ns := range []string{l.Switch, l.Hosts[0].NS, l.Hosts[2].NS} {
		if !strings.Contains(list, ns) {
			t.Errorf("namespace %s missing from ip netns list:\n%s", ns, list)
		}
	}
	h1, h2 := l.Hosts[0], l.Hosts[1]
	if want := netip.MustParseAddr("192.0.2.11"); h1.Addr4 != want {
		t.Errorf("h1 Addr4 = %v, want %v", h1.Addr4, want)
	}
	if want := netip.MustParseAddr("2001:db8::12"); h2.Addr6 != want {
		t.Errorf("h2 Addr6 = %v, want %v", h2.Addr6, want)
	}
	if want := netip.MustParsePrefix("198.51.100.12/24"); h2.Links[1].Addr4 != want {
		t.Errorf("h2 segment 1 = %v, want %v", h2.Links[1].Addr4, want)
	}
	for _, h := range l.Hosts {
		if len(h.IfName) > 15 || len(h.Links[1].Port) > 15 {
			t.Errorf("interface name too long: %q / %q", h.IfName, h.Links[1].Port)
		}
		if !h.LinkLocal.IsLinkLocalUnicast() || len(h.MAC) != 6 {
			t.Errorf("%s: link-local %v, MAC %v", h.Name, h.LinkLocal, h.MAC)
		}
		ok, err := h.HasAddr(h.Links[0].Addr6)
		if err != nil || !ok {
			t.Errorf("%s: HasAddr(%v) = %v, %v", h.Name, h.Links[0].Addr6, ok, err)
		}
	}

	for _, dst := range []netip.Addr{h2.Addr4, h2.Addr6, h2.Links[1].Addr4.Addr(), h2.LinkLocal} {
		if err := reach(h1, h2, dst); err != nil {
			t.Errorf("h1 to %v: %v", dst, err)
		}
	}

	// ARP probe: h2 answers for its own address with its MAC.
	mac, err := h1.ARPProbe(h2.Addr4, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if mac.String() != h2.MAC.String() {
		t.Errorf("ARP reply from %v, want %v", mac, h2.MAC)
	}
	if got, err := h1.Neighbor(h2.Addr4); err != nil || got.String() != h2.MAC.String() {
		t.Errorf("h1 neighbour %v = %v, %v; want %v", h2.Addr4, got, err, h2.MAC)
	}

	// Isolation keeps the carrier but drops traffic; LinkDown drops both.
	if err := h2.Isolate(); err != nil {
		t.Fatal(err)
	}
	if _, err := h1.ARPProbe(h2.Addr4, 300*time.Millisecond); err == nil {
		t.Error("isolated host answered ARP")
	}
	if err := h2.Reconnect(); err != nil {
		t.Fatal(err)
	}
	if _, err := h1.ARPProbe(h2.Addr4, 2*time.Second); err != nil {
		t.Errorf("after Reconnect: %v", err)
	}
	if err := h2.LinkDown(); err != nil {
		t.Fatal(err)
	}
	if _, err := h1.ARPProbe(h2.Addr4, 300*time.Millisecond); err == nil {
		t.Error("host with link down answered ARP")
	}
	if err := h2.LinkUp(); err != nil {
		t.Fatal(err)
	}
	if err := reach(h1, h2, h2.Addr6); err != nil {
		t.Errorf("IPv6 after LinkUp: %v", err)
	}

	// A process left running is killed by Close.
	sleeper := h1.Exec(context.Background(), "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sleeper.Wait() }()

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("process in the lab survived Close")
	}
	if list := netnsList(t); strings.Contains(list, l.ID) {
		t.Errorf("namespaces left after Close:\n%s", list)
	}
}

func TestRunRestoresNamespace(t *testing.T) {
	l := NewT(t, "", Options{Hosts: 1})
	h := l.Hosts[0]
	var inside bool
	for range 20 {
		if err := h.Run(func() error {
			var err error
			inside, err = h.HasAddr(h.Links[0].Addr4)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if !inside {
		t.Fatal("HasAddr false")
	}
	// The calling goroutine's namespace is unchanged: the root namespace
	// has no lab interface.
	if _, err := exec.Command("ip", "link", "show", h.IfName).CombinedOutput(); err == nil {
		t.Errorf("%s visible outside the lab", h.IfName)
	}
}

// TestHostCommand: Command runs in the host's namespace (its interface
// is there), and a failure names the host and the command and carries
// what it printed.
func TestHostCommand(t *testing.T) {
	l := NewT(t, "", Options{Hosts: 1})
	h := l.Hosts[0]
	if err := h.Command(context.Background(), "ip", "link", "show", h.IfName); err != nil {
		t.Fatalf("ip link show %s in %s: %v", h.IfName, h.Name, err)
	}
	err := h.Command(context.Background(), "ip", "link", "show", "nlb-no-such-link")
	if err == nil || !strings.Contains(err.Error(), h.Name+": ip link show nlb-no-such-link") || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("failing command: %v, want the host, the command line and its output", err)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	// Options are checked before anything is created: no root needed.
	for _, o := range []Options{{Hosts: MaxHosts + 1}, {Hosts: -1}, {Segments: MaxSegments + 1}} {
		if _, err := New("bad", o); err == nil {
			t.Errorf("New accepted %+v", o)
		}
	}
}

func TestBuildNLB(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := BuildNLB(t)
	if out, err := exec.Command(bin, "--help").CombinedOutput(); len(out) == 0 {
		t.Errorf("%s --help: %v, no output", bin, err)
	}
}

// TestDialerAndRemoveAddr: a Host's Dialer connects inside its namespace
// (a listener on h1's loopback is reached from h1 and refused from h2),
// and RemoveAddr removes an address, tolerating one that is gone.
func TestDialerAndRemoveAddr(t *testing.T) {
	Require(t)
	l := NewT(t, "dial", Options{Hosts: 2})
	h1, h2 := l.Hosts[0], l.Hosts[1]
	ln, err := h1.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ctx := context.Background()
	c, err := h1.Dialer(5*time.Second)(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial from h1: %v", err)
	}
	c.Close()
	if c, err := h2.Dialer(5*time.Second)(ctx, "tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("h2 reached a listener on h1's loopback")
	}

	vip := l.VIP4(1)
	if out, err := exec.Command("ip", "-n", h1.NS, "addr", "add", vip.String(), "dev", h1.IfName).CombinedOutput(); err != nil {
		t.Fatalf("add %s: %v: %s", vip, err, out)
	}
	for range 2 { // the second time there is nothing to remove
		if err := h1.RemoveAddr(vip); err != nil {
			t.Fatal(err)
		}
		if has, err := h1.HasAddr(vip); err != nil || has {
			t.Fatalf("h1 holds %s after RemoveAddr: %v, %v", vip, has, err)
		}
	}
}

// TestProcess: a Process runs in its host's namespace, logs across
// restarts, reports how each run ended (Err, Wait), and stops on SIGTERM
// (Stop) or SIGKILL (Kill).
func TestProcess(t *testing.T) {
	Require(t)
	l := NewT(t, "proc", Options{Hosts: 1})
	h := l.Hosts[0]
	log := filepath.Join(t.TempDir(), "p.log")
	p := NewProcess("sleeper", log, h, "sh", "-c", "ip -brief addr show dev "+h.IfName+"; exec sleep 60")
	t.Cleanup(func() { _ = p.Kill() })
	for run := 1; run <= 2; run++ {
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		if !p.Running() || p.Err() != nil {
			t.Fatalf("run %d: running %v, err %v", run, p.Running(), p.Err())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for strings.Count(p.Log(), h.Addr4.String()) < run {
			if Sleep(ctx, 10*time.Millisecond) != nil {
				t.Fatalf("run %d: the process did not see its host's address:\n%s", run, p.Log())
			}
		}
		cancel()
		if run == 1 {
			if err := p.Stop(10 * time.Second); err != nil {
				t.Errorf("Stop: %v", err)
			}
		} else if err := p.Kill(); err != nil {
			t.Errorf("Kill: %v", err)
		}
		if p.Running() || p.Err() == nil {
			t.Errorf("run %d: after the signal running %v, err %v", run, p.Running(), p.Err())
		}
	}
	if n := strings.Count(p.Log(), "=== netlab: start sleeper"); n != 2 {
		t.Errorf("%d start lines in the log, want 2:\n%s", n, p.Log())
	}
	fail := NewProcess("fail", log, h, "sh", "-c", "exit 3")
	if err := fail.Start(); err != nil {
		t.Fatal(err)
	}
	if err := fail.Wait(30 * time.Second); err == nil || fail.Err() == nil {
		t.Errorf("exit 3: Wait %v, Err %v", err, fail.Err())
	}
}
