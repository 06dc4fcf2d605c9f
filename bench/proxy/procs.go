package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nlb-dev/nlb/internal/benchtool"
	"github.com/nlb-dev/nlb/internal/netlab"
)

// The implementations, in the report's column order.
const (
	implDirect   = "direct"            // the client dials the backend
	implHAProxy1 = "haproxy-nbthread1" // HAProxy 2.6, mode tcp, nbthread 1
	implHAProxy2 = "haproxy-nbthread2" // and nbthread 2
	implNLB      = "nlb"               // nlb proxy, defaults, the system's congestion control
	implNLB1     = "nlb-1loop"         // the same with one event loop (GOMAXPROCS=1)
	implNLBReno  = "nlb-reno"          // nlb proxy's default loopbackCongestionControl (reno): beside, not judged
	implCeiling  = "ceiling"           // ceiling/forward.c, a thread per CPU: the least a user-space forwarder does; not judged
	// ceiling/uring.c: the same on io_uring, request tests only; not judged
	implCeilingUring = "ceiling-uring"
)

var (
	allImpls     = []string{implDirect, implHAProxy1, implHAProxy2, implNLB, implNLB1, implNLBReno, implCeiling, implCeilingUring}
	defaultImpls = []string{implDirect, implHAProxy1, implHAProxy2, implNLB, implNLB1, implCeiling, implCeilingUring}
	haproxies    = []string{implHAProxy1, implHAProxy2}
	ceilings     = []string{implCeiling, implCeilingUring}
)

// What a proxy is started for: the HTTP tests (nginx), the bulk tests
// (the iperf3 servers) or the idle-memory test (the bench's own echo
// backend).
const (
	kindHTTP = "http"
	kindBulk = "bulk"
	kindIdle = "idle"
)

// planOptions are the settings every proxy of a run shares.
type planOptions struct {
	nlb, dir string
	ceilings map[string]string // the ceiling forwarders' binaries by implementation (buildCeiling)
	threads  int               // the ceilings' threads: one per CPU
	maxConn  int               // the idle test's connections, plus room
	// HAProxy's splicing (benchtool.SpliceModes) for the request tests
	// and the idle test, and for the bulk tests: each kind of traffic
	// gets the mode that suits HAProxy best.
	spliceHTTP, spliceBulk string
	haproxyExtra           string
}

// proxyPlan is how one implementation is started for one kind of test.
type proxyPlan struct {
	argv       []string         // nil for direct
	configFile string           // written before the start, if named
	config     string           //
	listen     []int            // ports to wait for
	targets    []netip.AddrPort // what the client dials: one, or bulkStreams for kindBulk
}

// plan is impl's command line and configuration for kind. Every proxy
// listens on proxyAddr. The HTTP tests go to nginx on backends[0]; the
// bulk tests to the iperf3 servers, stream i to server i; the idle test
// to idle.
//
// iperf3 pairs a control connection with its data connections on one
// server, and nlb proxy has one backend set for all its listeners. So nlb
// gets every iperf3 server twice in a row, through the backend host's two
// addresses: its round robin (the order of the list) sends a client's
// control connection and the data connection that follows it to the same
// server, as long as the clients start one after another (the bench waits
// for each client's server to be busy before starting the next). HAProxy
// gets a listener per server, its usual configuration.
func plan(impl, kind string, proxyAddr netip.Addr, backends [2]netip.Addr, idle netip.AddrPort, o planOptions) (proxyPlan, error) {
	var servers []netip.AddrPort // kindHTTP, kindIdle: one; kindBulk: one per stream
	switch kind {
	case kindHTTP:
		servers = []netip.AddrPort{netip.AddrPortFrom(backends[0], portHTTP)}
	case kindBulk:
		for i := range bulkStreams {
			servers = append(servers, netip.AddrPortFrom(backends[0], uint16(portIperf+i)))
		}
	case kindIdle:
		servers = []netip.AddrPort{idle}
	default:
		return proxyPlan{}, fmt.Errorf("unknown kind %q", kind)
	}
	if impl == implDirect {
		return proxyPlan{targets: servers}, nil
	}
	var p proxyPlan
	switch impl {
	case implHAProxy1, implHAProxy2:
		h := benchtool.HAProxy{Threads: 1, MaxConn: o.maxConn, Splice: o.spliceHTTP, Extra: o.haproxyExtra}
		if kind == kindBulk {
			h.Splice = o.spliceBulk
		}
		if impl == implHAProxy2 {
			h.Threads = 2
		}
		port := portProxy
		if kind == kindBulk {
			port = portBulkHAP
		}
		for i, s := range servers {
			l := netip.AddrPortFrom(proxyAddr, uint16(port+i))
			h.Routes = append(h.Routes, benchtool.HAProxyRoute{Listen: l.String(), Servers: []string{s.String()}})
			p.listen = append(p.listen, port+i)
			p.targets = append(p.targets, l)
		}
		p.configFile = filepath.Join(o.dir, impl+"-"+kind+".cfg")
		p.config = h.Config()
		p.argv = []string{"haproxy", "-db", "-f", p.configFile}
	case implCeiling, implCeilingUring:
		if impl == implCeilingUring && kind != kindHTTP {
			return proxyPlan{}, fmt.Errorf("%s runs the request tests only", impl)
		}
		// HAProxy's layout: a listener per server, the same ports.
		port := portProxy
		if kind == kindBulk {
			port = portBulkHAP
		}
		p.argv = []string{o.ceilings[impl], "-t", fmt.Sprint(max(1, o.threads))}
		if kind == kindBulk {
			p.argv = append(p.argv, "-s")
		}
		for i, s := range servers {
			l := netip.AddrPortFrom(proxyAddr, uint16(port+i))
			p.argv = append(p.argv, l.String()+"="+s.String())
			p.listen = append(p.listen, port+i)
			p.targets = append(p.targets, l)
		}
	case implNLB, implNLB1, implNLBReno:
		port := portProxy
		if kind == kindBulk {
			port = portBulkNLB
		}
		l := netip.AddrPortFrom(proxyAddr, uint16(port))
		p.listen = []int{port}
		for range servers {
			p.targets = append(p.targets, l)
		}
		// No health checks (HAProxy runs none, and a check's connect
		// would be a client to iperf3); room for the idle connections.
		p.config = fmt.Sprintf("healthCheck:\n  type: none\nmaxConnections: %d\n", o.maxConn)
		if impl != implNLBReno {
			p.config += "loopbackCongestionControl: system\n"
		}
		p.configFile = filepath.Join(o.dir, impl+"-"+kind+".yaml")
		if impl == implNLB1 {
			// nlb runs one event loop per GOMAXPROCS (lb/doc.go); it
			// has no setting of its own for their number.
			p.argv = []string{"env", "GOMAXPROCS=1"}
		}
		p.argv = append(p.argv, o.nlb, "proxy", "--config", p.configFile, "--admin", "", "--listen", l.String())
		for _, s := range servers {
			p.argv = append(p.argv, "--backend", s.String())
			if kind == kindBulk {
				p.argv = append(p.argv, "--backend", netip.AddrPortFrom(backends[1], s.Port()).String())
			}
		}
	default:
		return proxyPlan{}, fmt.Errorf("unknown implementation %q", impl)
	}
	return p, nil
}

// proxy is a started implementation.
type proxy struct {
	impl    string
	proc    *netlab.Process // nil for direct
	targets []netip.AddrPort
}

func (p *proxy) pid() int {
	if p.proc == nil {
		return 0
	}
	return p.proc.Pid()
}

func (p *proxy) stop() {
	if p.proc != nil {
		_ = p.proc.Stop(10 * time.Second)
	}
}

// startProxy starts impl on t's proxy host for kind and waits until it
// listens (without connecting to it).
func startProxy(ctx context.Context, t *topology, impl, kind string, idle netip.AddrPort, o planOptions) (*proxy, error) {
	pl, err := plan(impl, kind, t.proxyAddr, t.backendAddrs, idle, o)
	if err != nil {
		return nil, err
	}
	p := &proxy{impl: impl, targets: pl.targets}
	if pl.argv == nil {
		return p, nil
	}
	if pl.configFile != "" {
		if err := os.WriteFile(pl.configFile, []byte(pl.config), 0o644); err != nil {
			return nil, err
		}
	}
	p.proc = netlab.NewProcess(impl+"@"+t.name, filepath.Join(o.dir, impl+"-"+t.name+".log"), t.proxy, pl.argv...)
	if err := p.proc.Start(); err != nil {
		return nil, err
	}
	for _, port := range pl.listen {
		if err := waitListening(ctx, p.proc, port); err != nil {
			p.stop()
			return nil, err
		}
	}
	return p, nil
}

// child is a process of the bench whose stdout is read line by line: the
// idle test's own backend and load generator (this binary, re-executed in
// a host's namespace). It leads its own process group, dies with the bench
// (Pdeathsig), and stop kills the whole group.
type child struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *tail
	done   chan struct{}
	err    error // valid after done
}

// tail keeps the last bytes written to it, for error messages.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailSize = 4096

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailSize {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-tailSize:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// startChild starts cmd (not yet started) with its stdin and stdout as
// pipes.
func startChild(name string, cmd *exec.Cmd) (*child, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	c := &child{name: name, cmd: cmd, stderr: &tail{}, done: make(chan struct{})}
	cmd.Stderr = c.stderr
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.stdout = bufio.NewReader(out)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// readLine reads one stdout line within d.
func (c *child) readLine(ctx context.Context, d time.Duration) (string, error) {
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := c.stdout.ReadString('\n')
		ch <- res{strings.TrimSpace(s), err}
	}()
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			<-c.done
			return "", fmt.Errorf("%s: %v (exit: %v; stderr: %s)", c.name, r.err, c.err, c.stderr)
		}
		return r.s, nil
	case <-tm.C:
		return "", fmt.Errorf("%s: no output within %v (stderr: %s)", c.name, d, c.stderr)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// stop closes stdin, sends SIGTERM to the process group, and SIGKILL if it
// has not exited within 3 s.
func (c *child) stop() {
	c.stdin.Close()
	select {
	case <-c.done:
		return
	default:
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}
