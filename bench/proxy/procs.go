package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a process of the bench: the backend, a proxy or the load
// generator. It runs in its own process group, is killed with SIGKILL if
// the bench dies (Pdeathsig), and stop kills the whole group.
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

func startChild(ctx context.Context, name, path string, args ...string) (*child, error) {
	cmd := exec.CommandContext(ctx, path, args...)
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

func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the process has ended, with its error.
func (c *child) exited() (bool, error) {
	select {
	case <-c.done:
		return true, c.err
	default:
		return false, nil
	}
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
	if ok, _ := c.exited(); ok {
		return
	}
	_ = syscall.Kill(-c.pid(), syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
		<-c.done
	}
}

// freePort returns a loopback port that was free a moment ago. It is
// taken below Linux's default ephemeral range (32768-60999): a port in
// that range may be held by a client socket in TIME_WAIT, which makes a
// later bind fail even with SO_REUSEADDR.
func freePort() (int, error) {
	const lo, hi = 20000, 32000
	var err error
	for range 100 {
		port := lo + rand.IntN(hi-lo)
		var ln net.Listener
		if ln, err = net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			ln.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port in %d-%d: %w", lo, hi, err)
}

// proxy is the implementation under test: the address the load generator
// dials and the process to measure (nil for direct).
type proxy struct {
	impl string
	addr string
	proc *child
}

func (p *proxy) pid() int {
	if p.proc == nil {
		return 0
	}
	return p.proc.pid()
}

func (p *proxy) stop() {
	if p.proc != nil {
		p.proc.stop()
	}
}

// haproxyConfig renders the HAProxy configuration. See bench/README.md for
// why each line is there.
func haproxyConfig(listen, backend string, threads, maxconn int, splice, extra string) string {
	var ex strings.Builder
	for l := range strings.SplitSeq(extra, ";") {
		if l = strings.TrimSpace(l); l != "" {
			ex.WriteString("    " + l + "\n")
		}
	}
	return fmt.Sprintf(`global
    nbthread %[3]d
    maxconn %[4]d
    # Pipes are taken only while a splice is in flight (16 at most here);
    # the default, maxconn/4, would make HAProxy demand more fds than
    # RLIMIT_NOFILE may allow.
    maxpipes 256
%[5]s    # no logging, no stats socket: nothing the other implementations do either

defaults
    mode tcp
    timeout connect 5s
    timeout client 1m
    timeout server 1m
%[6]s
frontend bench
    bind %[1]s
    maxconn %[4]d
    default_backend bench

backend bench
    server s1 %[2]s
`, listen, backend, threads, maxconn, ex.String(), spliceOptions(splice))
}

// spliceOptions renders --haproxy-splice as defaults lines.
func spliceOptions(mode string) string {
	switch mode {
	case "auto":
		return "    option splice-auto\n"
	case "off":
		return "    no option splice-auto\n"
	default: // "always"
		return "    option splice-request\n    option splice-response\n"
	}
}

// startProxy starts impl in front of backend and waits until it accepts.
func startProxy(ctx context.Context, cfg *config, impl, backend string, nlbArgs ...string) (*proxy, error) {
	if impl == implDirect {
		return &proxy{impl: impl, addr: backend}, nil
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	p := &proxy{impl: impl, addr: listen}
	readyURL := ""
	switch impl {
	case implHAProxy:
		file := filepath.Join(cfg.tmp, "haproxy.cfg")
		maxconn := cfg.idleConns + 100
		if err := os.WriteFile(file, []byte(haproxyConfig(listen, backend, cfg.haproxyThreads, maxconn, cfg.haproxySplice, cfg.haproxyTune)), 0o644); err != nil {
			return nil, err
		}
		p.proc, err = startChild(ctx, "haproxy", cfg.haproxy, "-f", file, "-db")
	case implNLB:
		aport, perr := freePort()
		if perr != nil {
			return nil, perr
		}
		admin := fmt.Sprintf("127.0.0.1:%d", aport)
		readyURL = "http://" + admin + "/readyz"
		args := append([]string{"proxy", "--listen", listen, "--backend", backend, "--admin", admin}, nlbArgs...)
		p.proc, err = startChild(ctx, "nlb", cfg.nlb, args...)
	default:
		return nil, fmt.Errorf("unknown implementation %q", impl)
	}
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, p, readyURL); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// waitReady polls until the proxy's listen port accepts and, when readyURL
// is set, /readyz answers 200. If the port accepts but /readyz never
// answers 200, it proceeds after readyzGrace with a warning on stderr.
func waitReady(ctx context.Context, p *proxy, readyURL string) error {
	const (
		limit       = 15 * time.Second
		readyzGrace = 3 * time.Second
		poll        = 20 * time.Millisecond
	)
	hc := &http.Client{Timeout: 500 * time.Millisecond}
	start := time.Now()
	var portSince time.Time
	lastErr := errors.New("not polled")
	for i := 0; time.Since(start) < limit && i < int(limit/poll); i++ {
		if done, err := p.proc.exited(); done {
			return fmt.Errorf("%s exited during startup: %v: %s", p.impl, err, p.proc.stderr)
		}
		if portSince.IsZero() {
			if c, err := net.DialTimeout("tcp4", p.addr, 200*time.Millisecond); err == nil {
				c.Close()
				portSince = time.Now()
			} else {
				lastErr = err
			}
		}
		if !portSince.IsZero() {
			if readyURL == "" {
				return nil
			}
			resp, err := hc.Get(readyURL)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
				err = fmt.Errorf("%s: %s", readyURL, resp.Status)
			}
			lastErr = err
			if time.Since(portSince) > readyzGrace {
				fmt.Fprintf(os.Stderr, "bench: %s accepts but %v; going on\n", p.impl, err)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
	return fmt.Errorf("%s not ready after %v: %v (stderr: %s)", p.impl, limit, lastErr, p.proc.stderr)
}
