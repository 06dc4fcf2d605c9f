//go:build linux

package steer_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/ebpf/sklookup"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
	"github.com/nlb-dev/nlb/lb/steer"
	"github.com/nlb-dev/nlb/lb/steer/nft"
)

const (
	apiPort   = 6443
	proxyPort = 6444

	// childEnv makes the test binary a helper process (see TestMain)
	// that attaches the mode named by its value and waits to be killed.
	childEnv = "NLB_STEER_TEST_CHILD"
	// childLife bounds the helper's life if nobody kills it.
	childLife = 60 * time.Second

	ioTimeout = 3 * time.Second
	// linkRelease bounds the wait for the kernel to release a killed
	// process's BPF link (its release may be deferred to a work queue).
	linkRelease = 3 * time.Second

	// Bytes the accepting sides write, telling who accepted.
	markProxy  = 'P' // the proxy's listener on the holder
	markAPI    = 'A' // the stand-in API server on the holder
	markThird  = 'T' // the stand-in API server on the third host
	markChild  = 'C' // the helper process's proxy listener
	markClosed = 0   // no byte: the connection failed
)

func vip4() netip.Addr { return netip.MustParseAddr("192.0.2.100") }
func vip6() netip.Addr { return netip.MustParseAddr("2001:db8::100") }

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(m.Run())
}

// child runs in the holder's namespace (started through ip netns exec):
// it listens on the proxy port, attaches, reports and waits to be killed.
func child(mode string) int {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp", fmt.Sprintf(":%d", proxyPort))
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte{markChild})
			c.Close()
		}
	}()
	s, err := steer.Attach(steer.Config{
		Mode: mode, VIPs: []netip.Addr{vip4(), vip6()}, Port: apiPort, ProxyPort: proxyPort,
		Listeners: []*net.TCPListener{ln.(*net.TCPListener)},
	})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("attached", s.Mode())
	time.Sleep(childLife)
	return 2
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// listenIn opens a plain-TCP listener on addr in h's namespace whose
// accepted connections get the byte mark and are closed.
func listenIn(t *testing.T, h *netlab.Host, addr string, mark byte) *net.TCPListener {
	t.Helper()
	var ln net.Listener
	if err := h.Run(func() error {
		var lc net.ListenConfig
		lc.SetMultipathTCP(false)
		var err error
		ln, err = lc.Listen(context.Background(), "tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("%s: listen %s: %v", h.Name, addr, err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetWriteDeadline(time.Now().Add(ioTimeout))
			_, _ = c.Write([]byte{mark})
			c.Close()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.(*net.TCPListener)
}

// who connects from h to dst and returns the byte the accepting side
// wrote, or markClosed if the connection failed.
func who(t *testing.T, h *netlab.Host, dst netip.Addr) byte {
	t.Helper()
	var c net.Conn
	err := h.Run(func() error {
		var err error
		c, err = net.DialTimeout("tcp", netip.AddrPortFrom(dst, apiPort).String(), ioTimeout)
		return err
	})
	if err != nil {
		t.Logf("%s -> %v: %v", h.Name, dst, err)
		return markClosed
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		t.Logf("%s -> %v: read: %v", h.Name, dst, err)
		return markClosed
	}
	return b[0]
}

func expect(t *testing.T, what string, h *netlab.Host, dst netip.Addr, want byte) {
	t.Helper()
	if got := who(t, h, dst); got != want {
		t.Errorf("%s: %s -> %v:%d accepted by %q, want %q", what, h.Name, dst, apiPort, got, want)
	}
}

func ipCmd(t *testing.T, h *netlab.Host, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", h.NS}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s %s: %v\n%s", h.NS, strings.Join(args, " "), err, out)
	}
}

func addVIPs(t *testing.T, h *netlab.Host) {
	t.Helper()
	ipCmd(t, h, "addr", "add", vip4().String()+"/32", "dev", h.IfName)
	ipCmd(t, h, "addr", "add", vip6().String()+"/128", "dev", h.IfName, "nodad")
}

func delVIPs(t *testing.T, h *netlab.Host) {
	t.Helper()
	ipCmd(t, h, "addr", "del", vip4().String()+"/32", "dev", h.IfName)
	ipCmd(t, h, "addr", "del", vip6().String()+"/128", "dev", h.IfName)
}

// pointVIPs makes client send to the VIPs' new holder at once, as a
// gratuitous ARP / unsolicited NA would.
func pointVIPs(t *testing.T, client, holder *netlab.Host) {
	t.Helper()
	for _, v := range []netip.Addr{vip4(), vip6()} {
		if err := client.SetNeighbor(v, holder.MAC); err != nil {
			t.Fatal(err)
		}
	}
}

func nsPath(h *netlab.Host) string { return "/run/netns/" + h.NS }

// lab is the topology of the traffic tests: h1 holds the VIPs and runs
// the proxy listener (:6444) and a stand-in API server (:6443); h2 is a
// client; h3 is another controller with an API server stand-in and no
// steering.
type lab struct {
	holder, client, third *netlab.Host
	proxy                 *net.TCPListener
}

func newLab(t *testing.T) lab {
	l := netlab.NewT(t, "", netlab.Options{Hosts: 3})
	lb := lab{holder: l.Hosts[0], client: l.Hosts[1], third: l.Hosts[2]}
	lb.proxy = listenIn(t, lb.holder, fmt.Sprintf(":%d", proxyPort), markProxy)
	listenIn(t, lb.holder, fmt.Sprintf(":%d", apiPort), markAPI)
	listenIn(t, lb.third, fmt.Sprintf(":%d", apiPort), markThird)
	addVIPs(t, lb.holder)
	return lb
}

func (lb lab) config(t *testing.T, mode string) steer.Config {
	return steer.Config{
		Mode: mode, VIPs: []netip.Addr{vip4(), vip6()}, Port: apiPort, ProxyPort: proxyPort,
		Listeners: []*net.TCPListener{lb.proxy}, NetNS: nsPath(lb.holder), Logger: testLogger(t),
	}
}

func requireSKLookup(t *testing.T) {
	t.Helper()
	if err := sklookup.Supported(); err != nil {
		if os.Getenv(netlab.PrivilegedEnv) == "1" && !errors.Is(err, sklookup.ErrNotSupported) {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// TestSteering runs the traffic scenario of the package doc for each
// method, IPv4 and IPv6.
func TestSteering(t *testing.T) {
	for _, mode := range []string{steer.ModeSKLookup, steer.ModeNFTables} {
		t.Run(mode, func(t *testing.T) {
			netlab.Require(t)
			if mode == steer.ModeSKLookup {
				requireSKLookup(t)
			}
			lb := newLab(t)
			h1, h2, h3 := lb.holder, lb.client, lb.third
			vips := []netip.Addr{vip4(), vip6()}

			// Before steering, the VIP reaches the API server.
			for _, v := range vips {
				expect(t, "unsteered", h2, v, markAPI)
			}
			s, err := steer.Attach(lb.config(t, mode))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if s.Mode() != mode {
				t.Fatalf("Mode() = %q, want %q", s.Mode(), mode)
			}
			for _, v := range vips {
				expect(t, "remote to VIP", h2, v, markProxy)
				expect(t, "local to VIP", h1, v, markProxy)
			}
			for _, a := range []netip.Addr{h1.Addr4, h1.Addr6} {
				expect(t, "remote to node address", h2, a, markAPI)
				expect(t, "local to node address", h1, a, markAPI)
			}

			// The VIPs move to h3, which steers nothing: its API server
			// answers, though h1 keeps its steering.
			delVIPs(t, h1)
			addVIPs(t, h3)
			pointVIPs(t, h2, h3)
			for _, v := range vips {
				expect(t, "VIP on a host without steering", h2, v, markThird)
			}
			// Back on h1, the steering that stayed installed applies again.
			delVIPs(t, h3)
			addVIPs(t, h1)
			pointVIPs(t, h2, h1)
			for _, v := range vips {
				expect(t, "VIP back on the holder", h2, v, markProxy)
			}

			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			for _, v := range vips {
				expect(t, "after Close", h2, v, markAPI)
				expect(t, "local after Close", h1, v, markAPI)
			}
			assertNothing(t, nsPath(h1))
		})
	}
}

func links(t *testing.T, ns string) int {
	t.Helper()
	ids, err := sklookup.Links(ns)
	if err != nil {
		t.Fatal(err)
	}
	return len(ids)
}

func tables(t *testing.T, ns string) nft.Counts {
	t.Helper()
	n, err := nft.Count(ns)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// oneNFT is one set of nftables steering for one IPv4 and one IPv6 VIP.
var oneNFT = nft.Counts{Tables: 2, Chains: 4, Rules: 4}

func assertNothing(t *testing.T, ns string) {
	t.Helper()
	if n := links(t, ns); n != 0 {
		t.Errorf("%d sk_lookup links of nlb left", n)
	}
	if n := tables(t, ns); n != (nft.Counts{}) {
		t.Errorf("nftables left: %+v", n)
	}
}

// startChild runs the helper process in h's namespace, waits until it
// has attached mode, and returns it.
func startChild(t *testing.T, h *netlab.Host, mode string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := h.Exec(t.Context(), exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	cmd.Stderr = t.Output()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(s)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case l := <-line:
		if l != "attached "+mode {
			t.Fatalf("helper: %q", l)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("helper did not attach in 30s")
	}
	return cmd
}

// kill SIGKILLs the helper and reaps it.
func kill(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper ended with %v, want SIGKILL", err)
	}
}

// TestCrashSKLookup: the link of a SIGKILLed process disappears with it;
// Attach replaces any earlier link, even one of a live process, and closing
// a replaced Steering does not disturb the one that replaced it.
func TestCrashSKLookup(t *testing.T) {
	netlab.Require(t)
	requireSKLookup(t)
	l := netlab.NewT(t, "", netlab.Options{Hosts: 2})
	h1, h2 := l.Hosts[0], l.Hosts[1]
	ns := nsPath(h1)
	listenIn(t, h1, fmt.Sprintf(":%d", apiPort), markAPI)
	addVIPs(t, h1)

	c := startChild(t, h1, steer.ModeSKLookup)
	if n := links(t, ns); n != 1 {
		t.Fatalf("helper attached: %d links, want 1", n)
	}
	expect(t, "steered to the helper", h2, vip4(), markChild)
	kill(t, c)
	nlbtest.Eventually(t, linkRelease, "the helper's link released after SIGKILL", func() error {
		if n := links(t, ns); n != 0 {
			return fmt.Errorf("%d links left", n)
		}
		return nil
	})
	expect(t, "after SIGKILL", h2, vip4(), markAPI)

	lb := lab{holder: h1, client: h2}
	lb.proxy = listenIn(t, h1, fmt.Sprintf(":%d", proxyPort), markProxy)
	s1, err := steer.Attach(lb.config(t, steer.ModeSKLookup))
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := steer.Attach(lb.config(t, steer.ModeSKLookup))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if n := links(t, ns); n != 1 {
		t.Fatalf("after two Attach: %d links, want 1", n)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	if n := links(t, ns); n != 1 {
		t.Fatalf("after closing the replaced Steering: %d links, want 1", n)
	}
	expect(t, "after closing the replaced Steering", h2, vip4(), markProxy)
	// A closed listener leaves the SOCKMAP: the API server answers.
	lb.proxy.Close()
	expect(t, "proxy listener closed", h2, vip4(), markAPI)
	expect(t, "proxy listener closed", h2, vip6(), markAPI)
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	assertNothing(t, ns)
	expect(t, "after Close", h2, vip4(), markAPI)
}

// TestCrashNFTables: a SIGKILLed process leaves its tables; the next Attach
// replaces them with exactly one set; Attach in sklookup mode removes them;
// Close removes everything.
func TestCrashNFTables(t *testing.T) {
	netlab.Require(t)
	l := netlab.NewT(t, "", netlab.Options{Hosts: 2})
	h1, h2 := l.Hosts[0], l.Hosts[1]
	ns := nsPath(h1)
	listenIn(t, h1, fmt.Sprintf(":%d", apiPort), markAPI)
	addVIPs(t, h1)

	c := startChild(t, h1, steer.ModeNFTables)
	if n := tables(t, ns); n != oneNFT {
		t.Fatalf("helper attached: %+v, want %+v", n, oneNFT)
	}
	kill(t, c)
	if n := tables(t, ns); n != oneNFT {
		t.Fatalf("after SIGKILL: %+v, want the helper's %+v", n, oneNFT)
	}
	// The leftover rules redirect to a port nobody listens on now.
	expect(t, "leftover rules, no proxy", h2, vip4(), markClosed)

	lb := lab{holder: h1, client: h2}
	lb.proxy = listenIn(t, h1, fmt.Sprintf(":%d", proxyPort), markProxy)
	s1, err := steer.Attach(lb.config(t, steer.ModeNFTables))
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	if n := tables(t, ns); n != oneNFT {
		t.Fatalf("after Attach over the leftovers: %+v, want %+v", n, oneNFT)
	}
	s2, err := steer.Attach(lb.config(t, steer.ModeNFTables))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if n := tables(t, ns); n != oneNFT {
		t.Fatalf("after a second Attach: %+v, want %+v", n, oneNFT)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	if n := tables(t, ns); n != oneNFT {
		t.Fatalf("after closing the replaced Steering: %+v, want %+v", n, oneNFT)
	}
	expect(t, "nftables steering", h2, vip4(), markProxy)
	expect(t, "nftables steering", h2, vip6(), markProxy)

	if err := sklookup.Supported(); err == nil {
		s3, err := steer.Attach(lb.config(t, steer.ModeSKLookup))
		if err != nil {
			t.Fatal(err)
		}
		defer s3.Close()
		if n := tables(t, ns); n != (nft.Counts{}) {
			t.Errorf("sklookup Attach left nftables: %+v", n)
		}
		if n := links(t, ns); n != 1 {
			t.Errorf("sklookup Attach: %d links, want 1", n)
		}
		expect(t, "sklookup after nftables", h2, vip4(), markProxy)
		if err := s3.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	assertNothing(t, ns)
	expect(t, "after Close", h2, vip4(), markAPI)
}

// TestAutoMode: auto picks sk_lookup where the kernel has it, and
// nftables when there is no listener to hand connections to.
func TestAutoMode(t *testing.T) {
	netlab.Require(t)
	lb := newLab(t)
	ns := nsPath(lb.holder)

	cfg := lb.config(t, steer.ModeAuto)
	want := steer.ModeSKLookup
	if err := sklookup.Supported(); err != nil {
		want = steer.ModeNFTables
	}
	s, err := steer.Attach(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Mode() != want {
		t.Errorf("auto chose %q, want %q", s.Mode(), want)
	}
	expect(t, "auto", lb.client, vip4(), markProxy)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// sk_lookup refuses a listener that cannot take the IPv4 VIP (an
	// IPV6_V6ONLY one, here in another namespace for want of a free port
	// on the holder): auto says so and falls back to nftables, which
	// redirects to the holder's proxy port.
	v6only := listenIn6Only(t, lb.third)
	var logs netlab.SyncBuffer
	cfg.Listeners = []*net.TCPListener{v6only}
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s, err = steer.Attach(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Mode() != steer.ModeNFTables {
		t.Errorf("auto with an unusable listener chose %q, want nftables", s.Mode())
	}
	if !strings.Contains(logs.String(), "falling back to nftables") || !strings.Contains(logs.String(), "no listener accepts IPv4") {
		t.Errorf("fallback not logged with its reason:\n%s", logs.String())
	}
	expect(t, "auto fallen back", lb.client, vip4(), markProxy)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	cfg.Mode = "" // the same as auto
	cfg.Listeners = nil
	cfg.Logger = testLogger(t)
	s, err = steer.Attach(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Mode() != steer.ModeNFTables {
		t.Errorf("auto without listeners chose %q, want nftables", s.Mode())
	}
	expect(t, "auto without listeners", lb.client, vip6(), markProxy)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	assertNothing(t, ns)
}

// listenIn6Only opens an IPV6_V6ONLY listener on the proxy port in h's
// namespace.
func listenIn6Only(t *testing.T, h *netlab.Host) *net.TCPListener {
	t.Helper()
	var ln net.Listener
	if err := h.Run(func() error {
		var lc net.ListenConfig
		lc.SetMultipathTCP(false)
		var err error
		ln, err = lc.Listen(context.Background(), "tcp6", fmt.Sprintf("[::]:%d", proxyPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}
