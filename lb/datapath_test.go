//go:build linux

package lb

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestListenerOptionsInherited checks what the accept path relies on:
// keepalive, TCP_USER_TIMEOUT and TCP_NODELAY set on a listener from
// defaultListen reach the connections it accepts.
func TestListenerOptionsInherited(t *testing.T) {
	cfg := Config{KeepAlive: KeepAlive{Idle: Duration(37 * time.Second), Interval: Duration(7 * time.Second), Count: 4},
		UserTimeout: Duration(12345 * time.Millisecond)}
	ln, err := defaultListen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := setSockopts(ln, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := setNoDelay(ln); err != nil {
		t.Fatal(err)
	}
	c := dial(t, ln.Addr().String())
	defer c.Close()
	a, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	rc, err := a.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name       string
		level, opt int
		v          int
	}{
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 37},
		{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 7},
		{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 4},
		{"TCP_USER_TIMEOUT", unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 12345},
		{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
	}
	rc.Control(func(fd uintptr) {
		for _, w := range want {
			v, err := unix.GetsockoptInt(int(fd), w.level, w.opt)
			if err != nil || v != w.v {
				t.Errorf("accepted connection: %s = %d (%v), want %d", w.name, v, err, w.v)
			}
		}
	})
}

// loopModes runs a test with one event loop and with two (connections
// then spread over both by whichever loop accepts first).
var loopModes = []struct {
	name  string
	loops int
}{{"loops-1", 1}, {"loops-2", 2}}

func withLoops(n int) func(*Proxy) { return func(p *Proxy) { p.nloops = n } }

// TestSmallMessagesNotSpliced: request/response traffic below the buffer
// size stays on read/write, byte for byte, and a half-close after it
// passes through.
func TestSmallMessagesNotSpliced(t *testing.T) {
	for _, m := range loopModes {
		t.Run(m.name, func(t *testing.T) {
			p := startProxy(t, Config{Backends: []string{echoServer(t)}}, Options{}, withLoops(m.loops))
			c := dial(t, p.addr)
			for i := range 300 {
				msg := make([]byte, 1+(i*997)%(bufSize-1)) // 1 B .. bufSize-1
				rand.Read(msg)
				if _, err := c.Write(msg); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(c, got); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("message %d (%d bytes) differs", i, len(msg))
				}
			}
			c.CloseWrite()
			if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
				t.Fatalf("after half-close: %d bytes, %v", len(rest), err)
			}
			if n := p.spliced.Load(); n != 0 {
				t.Errorf("%d bytes spliced for messages below %d bytes", n, bufSize)
			}
		})
	}
}

// TestSwitchBetweenMessagesAndBulk alternates bulk transfers (spliced) and
// small messages on one connection; every byte must arrive in order, and
// the half-close must pass through from either mode.
func TestSwitchBetweenMessagesAndBulk(t *testing.T) {
	for _, m := range loopModes {
		for _, endBulk := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/end-bulk=%v", m.name, endBulk), func(t *testing.T) {
				p := startProxy(t, Config{Backends: []string{echoServer(t)}}, Options{}, withLoops(m.loops))
				c := dial(t, p.addr)
				var sent []byte
				for round := range 6 {
					size := 100 + round
					if round%2 == 0 || (endBulk && round == 5) {
						size = 3<<20 + round*4099
					}
					msg := make([]byte, size)
					rand.Read(msg)
					sent = append(sent, msg...)
					errc := make(chan error, 1)
					go func() { _, err := c.Write(msg); errc <- err }()
					got := make([]byte, size)
					if _, err := io.ReadFull(c, got); err != nil {
						t.Fatalf("round %d: %v", round, err)
					}
					if err := <-errc; err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, msg) {
						t.Fatalf("round %d: %d bytes differ", round, size)
					}
				}
				c.CloseWrite()
				if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
					t.Fatalf("after half-close: %d bytes, %v", len(rest), err)
				}
				if p.spliced.Load() == 0 {
					t.Error("bulk transfers were never spliced")
				}
				waitFor(t, "connection released", func() bool { return p.Status().Active == 0 })
				st := p.Status().Backends[0]
				if st.BytesIn != uint64(len(sent)) || st.BytesOut != uint64(len(sent)) {
					t.Errorf("counted %d in, %d out, want %d each", st.BytesIn, st.BytesOut, len(sent))
				}
			})
		}
	}
}

// inLoop runs fn on pc's loop and waits for it: the loop owns the
// connection's sockets.
func inLoop(t *testing.T, pc *proxyConn, fn func()) {
	t.Helper()
	done := make(chan struct{})
	if !pc.l.post(func() { fn(); close(done) }) {
		t.Fatal("loop stopped")
	}
	<-done
}

// onlyConn returns the proxy's one connection.
func onlyConn(t *testing.T, p *Proxy) *proxyConn {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.conns) != 1 {
		t.Fatalf("%d proxied connections, want 1", len(p.conns))
	}
	for c := range p.conns {
		return c
	}
	return nil
}

// TestSocketOptionsOnLiveConnections: a connection that outlives tuneAfter
// has keepalive and TCP_USER_TIMEOUT on both of the proxy's sockets.
func TestSocketOptionsOnLiveConnections(t *testing.T) {
	p := startProxy(t, Config{Backends: []string{echoServer(t)}, UserTimeout: Duration(4321 * time.Millisecond)}, Options{})
	c := dial(t, p.addr)
	if err := roundTrip(c, "hello"); err != nil {
		t.Fatal(err)
	}
	pc := onlyConn(t, p.Proxy)
	opts := func(side int) (ka, ut, nd int) {
		inLoop(t, pc, func() {
			fd := pc.fd[side]
			ka, _ = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE)
			ut, _ = unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
			nd, _ = unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY)
		})
		return ka, ut, nd
	}
	if ka, ut, nd := opts(sideClient); ka != 1 || ut != 4321 || nd != 1 {
		t.Errorf("client side: SO_KEEPALIVE %d, TCP_USER_TIMEOUT %d, TCP_NODELAY %d; want 1, 4321, 1 (from the listener)", ka, ut, nd)
	}
	if _, _, nd := opts(sideServer); nd != 1 {
		t.Errorf("backend side: TCP_NODELAY %d, want 1 from the start", nd)
	}
	waitFor(t, "backend side tuned", func() bool {
		ka, ut, _ := opts(sideServer)
		return ka == 1 && ut == 4321
	})
	if err := roundTrip(c, "still works"); err != nil {
		t.Fatal(err)
	}
}

// TestLoopbackCongestionControl: both of the proxy's sockets of a
// loopback connection (accepted on a loopback listener, dialled to a
// loopback backend) use Config.LoopbackCongestionControl, "system" leaves
// them with the system's default, and an algorithm the kernel refuses
// leaves the default too without costing the connection.
func TestLoopbackCongestionControl(t *testing.T) {
	def, err := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
	if err != nil {
		t.Skipf("no system default congestion control to compare with: %v", err)
	}
	system := strings.TrimSpace(string(def))
	for _, tc := range []struct {
		name, cc, want string
	}{
		{"default", "", DefaultLoopbackCongestionControl},
		{"system", SystemCongestionControl, system},
		{"refused", "nosuchalgo", system},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			var mu sync.Mutex
			log := slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
				mu.Lock()
				defer mu.Unlock()
				return logs.Write(b)
			}), nil))
			p := startProxy(t, Config{Backends: []string{echoServer(t)}, LoopbackCongestionControl: tc.cc}, Options{Logger: log})
			for i := range 2 {
				c := dial(t, p.addr)
				if err := roundTrip(c, fmt.Sprintf("hello %d", i)); err != nil {
					t.Fatal(err)
				}
				pc := onlyConn(t, p.Proxy)
				for side, name := range map[int]string{sideClient: "client", sideServer: "backend"} {
					var got string
					var err error
					inLoop(t, pc, func() { got, err = unix.GetsockoptString(pc.fd[side], unix.IPPROTO_TCP, unix.TCP_CONGESTION) })
					if err != nil || got != tc.want {
						t.Errorf("connection %d, %s side: congestion control %q (%v), want %q", i, name, got, err, tc.want)
					}
				}
				c.Close()
				waitFor(t, "connection released", func() bool { return p.Status().Active == 0 })
			}
			mu.Lock()
			refusals := strings.Count(logs.String(), "refused by the kernel")
			mu.Unlock()
			if want := map[bool]int{true: 1, false: 0}[tc.name == "refused"]; refusals != want {
				t.Errorf("%d refusal warnings logged, want %d:\n%s", refusals, want, logs.String())
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// fullListener returns the address of a listening socket whose accept
// queue is full (backlog 0, one connection never accepted): Linux drops
// the SYNs of further connects, so they hang as to a blackholed host.
func fullListener(t *testing.T) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
	dial(t, addr) // fills the queue
	return addr
}

// TestConnectTimeout: the loop's own non-blocking connect gives up on a
// backend that does not answer after ConnectTimeout, marks it suspect and
// goes on to the next one.
func TestConnectTimeout(t *testing.T) {
	hole, live := fullListener(t), echoServer(t)
	p := startProxy(t, Config{Backends: []string{hole, live}, ConnectTimeout: Duration(30 * time.Millisecond)}, Options{})
	for i := range 4 {
		if err := roundTrip(dial(t, p.addr), fmt.Sprint("x", i)); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	st := backendStatus(p.Proxy, hole)
	if !st.Suspect || st.DialFailures != 1 {
		t.Errorf("unanswering backend %+v: want suspect after exactly one dial (then skipped)", st)
	}
	if got := backendStatus(p.Proxy, live).Total; got != 4 {
		t.Errorf("live backend took %d connections, want 4", got)
	}
}

// TestBackendFamiliesAndNames: IPv6 backends are connected by the loop
// itself, backends given by host name through Go's dialer.
func TestBackendFamiliesAndNames(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback")
	}
	ln.Close()
	v6 := echoServer6(t)
	_, port, _ := net.SplitHostPort(echoServer(t))
	name := net.JoinHostPort("localhost", port)
	for _, be := range []string{v6, name} {
		p := startProxy(t, Config{Backends: []string{be}}, Options{})
		for i := range 3 {
			if err := roundTrip(dial(t, p.addr), fmt.Sprint(be, i)); err != nil {
				t.Fatalf("%s: %v", be, err)
			}
		}
		if st := backendStatus(p.Proxy, be); st.Total != 3 || st.DialFailures != 0 {
			t.Errorf("%s: %+v", be, st)
		}
	}
}

func echoServer6(t *testing.T) string {
	return serve(t, "[::1]:0", func(c *net.TCPConn) {
		io.Copy(c, c)
		c.CloseWrite()
	})
}

// TestManyConnectionsTwoLoops: concurrent short and long connections over
// two loops, each checked byte for byte.
func TestManyConnectionsTwoLoops(t *testing.T) {
	p := startProxy(t, Config{Backends: []string{echoServer(t), echoServer(t)}}, Options{}, withLoops(2))
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := range 20 {
				c, err := net.Dial("tcp", p.addr)
				if err != nil {
					errc <- err
					return
				}
				size := 10 + (w*131+i*7919)%(64<<10)
				msg := make([]byte, size)
				rand.Read(msg)
				err = roundTrip(c, string(msg))
				c.Close()
				if err != nil {
					errc <- fmt.Errorf("worker %d conn %d (%d bytes): %w", w, i, size, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	waitFor(t, "all released", func() bool { return p.Status().Active == 0 })
	if n, h := holding(t, p.Proxy); n != 0 || h != 0 {
		t.Errorf("%d connections (%d holding) left", n, h)
	}
	if got := p.Status().Total; got != 16*20 {
		t.Errorf("accepted %d, want %d", got, 16*20)
	}
}

// TestLoopsShareConnections: long-lived connections opened one after
// another are spread evenly over the loops, whichever loop accepts them.
func TestLoopsShareConnections(t *testing.T) {
	p := startProxy(t, Config{Backends: []string{echoServer(t)}}, Options{}, withLoops(2))
	for i := range 8 {
		if err := roundTrip(dial(t, p.addr), fmt.Sprint("c", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, l := range p.loops {
		n := 0
		inLoopOf(t, l, func() {
			for _, c := range l.conns {
				if c != nil {
					n++
				}
			}
		})
		if n != 4 {
			t.Errorf("loop %d serves %d of 8 connections, want 4", i, n)
		}
	}
}

func inLoopOf(t *testing.T, l *loop, fn func()) {
	t.Helper()
	done := make(chan struct{})
	if !l.post(func() { fn(); close(done) }) {
		t.Fatal("loop stopped")
	}
	<-done
}

// TestServerFirstAndEarlyHalfClose: a backend that speaks first still
// gets its handshake completed and its bytes through when the client
// sends nothing, and a client's half-close that arrives before the proxy
// even dialled reaches the backend.
func TestServerFirstAndEarlyHalfClose(t *testing.T) {
	backend := serve(t, "127.0.0.1:0", func(c *net.TCPConn) {
		fmt.Fprint(c, "banner;")
		rest, _ := io.ReadAll(c)
		fmt.Fprintf(c, "got %q;bye", rest)
		c.CloseWrite()
	})
	p := startProxy(t, Config{Backends: []string{backend}}, Options{})
	for i := range 20 {
		c := dial(t, p.addr)
		if i%2 == 0 {
			c.CloseWrite() // before the proxy's first read, mostly
		} else {
			buf := make([]byte, len("banner;"))
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "banner;" {
				t.Fatalf("banner %q, %v", buf, err)
			}
			c.Write([]byte("x"))
			c.CloseWrite()
		}
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatal(err)
		}
		want := `banner;got "";bye`
		if i%2 == 1 {
			want = `got "x";bye`
		}
		if string(got) != want {
			t.Fatalf("connection %d: %q, want %q", i, got, want)
		}
	}
}

// TestProxyConnSize: a proxyConn, most of an idle connection's memory in
// the proxy (issue 13's goal: RSS ≤ 0.6 KiB per idle connection, with the
// garbage collector's headroom), fits the heap's 256-byte size class; the
// next class is 288 bytes.
func TestProxyConnSize(t *testing.T) {
	if n := unsafe.Sizeof(proxyConn{}); n > 256 {
		t.Errorf("proxyConn is %d bytes, want at most 256", n)
	}
}
