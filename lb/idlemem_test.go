//go:build linux

package lb

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIdleMemory measures the memory one idle proxied connection costs:
// the proxy's RSS growth plus the kernel's slab growth beyond what the same
// number of direct client↔backend connections cost. The proxy runs in a
// child process (this test binary re-executed) so its RSS is its own.
// Opt-in because it opens tens of thousands of sockets:
//
//	NLB_IDLEMEM=10000 go test -run TestIdleMemory -v ./lb
//
// NLB_IDLEMEM_MODE=iocopy measures a plain io.Copy proxy for comparison.
func TestIdleMemory(t *testing.T) {
	switch os.Getenv("NLB_IDLEMEM_CHILD") {
	case "proxy":
		idleMemChild(t)
		return
	case "backend":
		h := newHoldServer(t)
		fmt.Printf("LISTEN %s\n", h.addr)
		time.Sleep(time.Hour)
		return
	}
	n, _ := strconv.Atoi(os.Getenv("NLB_IDLEMEM"))
	if n <= 0 {
		t.Skip("set NLB_IDLEMEM=<connections> to run")
	}
	// Each process holds one socket per connection (the proxy two), so
	// the per-process RLIMIT_NOFILE need not be raised for n ≈ 10,000.
	mode := os.Getenv("NLB_IDLEMEM_MODE")
	_, backend := startChild(t, "backend", "")
	// Direct: the peers' own sockets, to subtract.
	slab0 := slabBytes()
	direct := openIdle(t, backend, n)
	time.Sleep(2 * time.Second)
	directSlab := slabBytes() - slab0
	closeAll(direct)
	time.Sleep(2 * time.Second)

	cmd, proxyAddr := startChild(t, "proxy", backend)
	time.Sleep(time.Second)
	rss0 := rssKiB(t, cmd.Process.Pid)
	slab1 := slabBytes()
	conns := openIdle(t, proxyAddr, n)
	// Let the child's GC shrink stacks and return pooled pipes.
	time.Sleep(5 * time.Second)
	rss := rssKiB(t, cmd.Process.Pid) - rss0
	proxSlab := slabBytes() - slab1
	fds := countFDs(t, cmd.Process.Pid)
	kern := proxSlab - directSlab
	per := float64(rss*1024+kern) / float64(n)
	t.Logf("mode=%q conns=%d: proxy RSS +%d KiB (%.0f B/conn); kernel slab objects +%d KiB beyond the same number of direct connections (%.0f B/conn); proxy fds %d; total %.0f B = %.1f KiB per idle proxied connection",
		mode, n, rss, float64(rss)*1024/float64(n), kern>>10, float64(kern)/float64(n), fds, per, per/1024)
	closeAll(conns)
}

func startChild(t *testing.T, role, backend string) (*exec.Cmd, string) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleMemory$", "-test.v", "-test.timeout=0")
	cmd.Env = append(os.Environ(), "NLB_IDLEMEM_CHILD="+role, "NLB_IDLEMEM_BACKEND="+backend)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	var addr string
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "LISTEN "); ok {
			addr = a
			break
		}
	}
	go io.Copy(os.Stderr, out)
	if addr == "" {
		t.Fatalf("%s child did not report its address", role)
	}
	return cmd, addr
}

func idleMemChild(t *testing.T) {
	backend := os.Getenv("NLB_IDLEMEM_BACKEND")
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("NLB_IDLEMEM_MODE") == "iocopy" {
		fmt.Printf("LISTEN %s\n", ln.Addr())
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
		go gcLoop()
		time.Sleep(time.Hour)
		return
	}
	p, err := New(Config{Listen: []string{"127.0.0.1:0"}, Backends: []string{backend},
		MaxConnections: 1 << 20, HealthCheck: HealthCheck{Type: CheckNone}},
		Options{Listen: func(context.Context, string) (*net.TCPListener, error) { return ln, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Listen(context.Background()); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("LISTEN %s\n", ln.Addr())
	go gcLoop()
	p.Serve(context.Background())
}

// gcLoop stands in for the GC cycles a long-running daemon gets anyway.
func gcLoop() {
	for i := 0; ; i++ {
		time.Sleep(time.Second)
		runtime.GC()
		debug.FreeOSMemory()
		if i%5 == 4 {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			fmt.Fprintf(os.Stderr, "child: goroutines %d heap inuse %d KiB stack inuse %d KiB sys %d KiB\n",
				runtime.NumGoroutine(), m.HeapInuse>>10, m.StackInuse>>10, m.Sys>>10)
		}
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

func openIdle(t *testing.T, addr string, n int) []net.Conn {
	conns := make([]net.Conn, 0, n)
	req, resp := make([]byte, 100), make([]byte, 1000)
	failures := 0
	for len(conns) < n {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Write(req)
			_, err = io.ReadFull(c, resp)
		}
		if err != nil {
			// Bursts of thousands of connects occasionally meet a full
			// accept queue; a few retries are fine for a memory figure.
			if c != nil {
				c.Close()
			}
			if failures++; failures > n/100+10 {
				t.Fatalf("conn %d: %v", len(conns), err)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		conns = append(conns, c)
	}
	if failures > 0 {
		t.Logf("%d connects retried", failures)
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

func rssKiB(t *testing.T, pid int) int64 {
	return procKiB(t, fmt.Sprintf("/proc/%d/status", pid), "VmRSS")
}

func countFDs(t *testing.T, pid int) int {
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// slabBytes returns the bytes held by allocated slab objects (active
// objects × object size, summed over /proc/slabinfo; this counts the
// sockets, files, dentries, inodes and epoll items a connection holds and
// not the partly empty slab pages that /proc/meminfo's Slab adds), or 0
// when /proc/slabinfo is unreadable (not root).
func slabBytes() int64 {
	b, err := os.ReadFile("/proc/slabinfo")
	if err != nil {
		return 0
	}
	var sum int64
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || strings.HasPrefix(l, "#") || f[0] == "slabinfo" {
			continue
		}
		objs, _ := strconv.ParseInt(f[1], 10, 64)
		size, _ := strconv.ParseInt(f[3], 10, 64)
		sum += objs * size
	}
	return sum
}
