//go:build linux

package lb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Idle memory in CI. The full figure, user and kernel memory per idle
// proxied connection against HAProxy's with its goal (≤ 16 KiB), is
// bench/proxy's (`make bench-proxy`, bench/README.md): the kernel part
// (sockets, epoll items) is read from system-wide slab counters, which
// other processes move, so it cannot be asserted on a shared machine.
// What a test can assert is the proxy process's own memory: its RSS after
// a garbage collection, which no other process touches. nlb's is about
// 0.6 KiB per idle connection (the proxyConn and its table entries); a
// buffer kept per connection (16 KiB) or a goroutine pair per connection,
// as an io.Copy proxy has, is well above idleRSSBound.
const (
	idleConns    = 2000            // NLB_IDLEMEM overrides
	idleRSSBound = 4 << 10         // bytes of proxy RSS per idle connection
	idleMemWait  = 2 * time.Minute // bounds each exchange with a child
)

// TestIdleMemory: the proxy's RSS grows by less than idleRSSBound per
// idle proxied connection. The proxy and the backend run in child
// processes (this test binary re-executed), so the RSS is the proxy's
// own; the child collects garbage and reads its RSS when asked, so
// nothing depends on timing.
//
// NLB_IDLEMEM=10000 runs more connections; NLB_IDLEMEM_MODE=iocopy
// measures a plain io.Copy proxy instead, for comparison (it fails the
// bound).
func TestIdleMemory(t *testing.T) {
	switch os.Getenv("NLB_IDLEMEM_CHILD") {
	case "proxy":
		idleMemChild(t)
		return
	case "backend":
		h := newHoldServer(t)
		fmt.Printf("LISTEN %s\n", h.addr)
		io.Copy(io.Discard, os.Stdin) // until the parent goes
		return
	}
	n := idleConns
	if v, err := strconv.Atoi(os.Getenv("NLB_IDLEMEM")); err == nil && v > 0 {
		n = v
	}
	bin := childBinary(t)
	backend := startChild(t, bin, "backend", "")
	proxy := startChild(t, bin, "proxy", backend.addr)
	// Warm up: the first connection allocates the loops' tables.
	warm := openIdle(t, proxy.addr, 1)
	defer closeAll(warm)
	rss0 := proxy.measure(t)
	conns := openIdle(t, proxy.addr, n)
	defer closeAll(conns)
	rss1 := proxy.measure(t)
	per := float64(rss1-rss0) * 1024 / float64(n)
	t.Logf("mode=%q: %d idle connections: proxy RSS %d → %d KiB, %.0f B per connection (bound %d B)",
		os.Getenv("NLB_IDLEMEM_MODE"), n, rss0, rss1, per, idleRSSBound)
	if per > idleRSSBound {
		t.Errorf("the proxy's RSS grew by %.0f B per idle connection, want ≤ %d B", per, idleRSSBound)
	}
}

// child is a child process of TestIdleMemory.
type child struct {
	addr  string
	in    io.WriteCloser
	lines chan string
}

// childBinary returns the test binary the children run: this one, or, in
// a race build, these tests built without the race detector, whose shadow
// memory would be most of the figure.
func childBinary(t *testing.T) string {
	t.Helper()
	if !raceBuild {
		return os.Args[0]
	}
	bin := filepath.Join(t.TempDir(), "lb.test")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("building the tests without -race: %v\n%s", err, out)
	}
	return bin
}

// startChild runs the test binary bin as role and returns once the child
// has reported its listen address. Where bin cannot be executed (the
// tests run under qemu-user, which re-executes nothing), the test skips.
func startChild(t *testing.T, bin, role, backend string) *child {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^TestIdleMemory$", "-test.v", "-test.timeout=0")
	cmd.Env = append(os.Environ(), "NLB_IDLEMEM_CHILD="+role, "NLB_IDLEMEM_BACKEND="+backend)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.ENOEXEC) {
			t.Skipf("cannot run the %s child: %v", role, err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Process.Kill(); cmd.Wait() })
	c := &child{in: in, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	if c.addr = c.await(t, "LISTEN "); c.addr == "" {
		t.Fatalf("%s child did not report its address", role)
	}
	return c
}

// await returns the rest of the child's next line that starts with
// prefix (other lines are its test log), or "" when it exits.
func (c *child) await(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(idleMemWait)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return ""
			}
			if v, found := strings.CutPrefix(l, prefix); found {
				return v
			}
		case <-timeout:
			t.Fatalf("no %q from the child within %v", prefix, idleMemWait)
		}
	}
}

// measure asks the proxy child for its RSS (KiB) after a collection.
func (c *child) measure(t *testing.T) int64 {
	t.Helper()
	if _, err := io.WriteString(c.in, "MEASURE\n"); err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseInt(c.await(t, "RSS "), 10, 64)
	if err != nil {
		t.Fatalf("proxy child's RSS: %v", err)
	}
	return v
}

// idleMemChild is the proxy child: nlb's proxy (or an io.Copy one) in
// front of the backend child. Each MEASURE line on stdin is answered with
// "RSS <KiB>" after the garbage has been collected and returned to the
// system, as a long-running daemon's would be.
func idleMemChild(t *testing.T) {
	backend := os.Getenv("NLB_IDLEMEM_BACKEND")
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("NLB_IDLEMEM_MODE") == "iocopy" {
		go func() {
			for {
				c, err := ln.AcceptTCP()
				if err != nil {
					return
				}
				go func() {
					s, err := net.Dial("tcp", backend)
					if err != nil {
						c.Close()
						return
					}
					go io.Copy(s, c)
					io.Copy(c, s)
				}()
			}
		}()
	} else {
		p, err := New(Config{Listen: []string{"127.0.0.1:0"}, Backends: []string{backend},
			MaxConnections: 1 << 20, HealthCheck: HealthCheck{Type: CheckNone}},
			Options{Listen: func(context.Context, string) (*net.TCPListener, error) { return ln, nil }})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Listen(context.Background()); err != nil {
			t.Fatal(err)
		}
		go p.Serve(context.Background())
	}
	fmt.Printf("LISTEN %s\n", ln.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() != "MEASURE" {
			continue
		}
		runtime.GC()
		debug.FreeOSMemory()
		fmt.Printf("RSS %d\n", procKiB(t, "/proc/self/status", "VmRSS"))
	}
}

// holdServer accepts connections, answers one 100-byte request with a
// 1000-byte reply, then holds the connection open and idle.
type holdServer struct {
	addr  string
	ln    net.Listener
	conns chan net.Conn
}

func newHoldServer(t *testing.T) *holdServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &holdServer{addr: ln.Addr().String(), ln: ln, conns: make(chan net.Conn, 1<<20)}
	t.Cleanup(func() { ln.Close(); h.closeConns() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.conns <- c
			go func() {
				buf := make([]byte, 100)
				if _, err := io.ReadFull(c, buf); err == nil {
					c.Write(make([]byte, 1000))
				}
			}()
		}
	}()
	return h
}

func (h *holdServer) closeConns() {
	for {
		select {
		case c := <-h.conns:
			c.Close()
		default:
			return
		}
	}
}

// openIdle opens n connections to addr, each carrying one request and its
// reply end to end, and leaves them idle.
func openIdle(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	req, resp := make([]byte, 100), make([]byte, 1000)
	for len(conns) < n {
		c, err := net.DialTimeout("tcp", addr, idleMemWait)
		if err == nil {
			c.SetDeadline(time.Now().Add(idleMemWait))
			if _, err = c.Write(req); err == nil {
				_, err = io.ReadFull(c, resp)
			}
			c.SetDeadline(time.Time{})
		}
		if err != nil {
			closeAll(conns)
			t.Fatalf("connection %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	return conns
}

func closeAll(cs []net.Conn) {
	for _, c := range cs {
		c.Close()
	}
}

func procKiB(t *testing.T, file, key string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			f := strings.Fields(v)
			n, _ := strconv.ParseInt(f[0], 10, 64)
			return n
		}
	}
	t.Fatalf("%s: no %s", file, key)
	return 0
}
