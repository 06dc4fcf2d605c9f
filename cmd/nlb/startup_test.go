//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
)

// startupHang bounds a process that must exit by itself: a safety limit
// against the hang of issue 10 item 4, not a timing assertion.
const startupHang = time.Minute

// takePort binds a free loopback port and keeps it bound until the test
// ends; it returns the address.
func takePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// freePort returns a loopback address nobody listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

// mustFailStart runs cmd, which must exit by itself with a non-zero code
// and an error on stderr that contains every string of want.
func mustFailStart(t *testing.T, cmd *exec.Cmd, want ...string) {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(startupHang):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%v hung after a failed start (killed after %v); output:\n%s", cmd.Args, startupHang, tail(stderr.String()))
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() <= 0 {
		t.Fatalf("%v: exit %v, want a non-zero exit code; output:\n%s", cmd.Args, err, tail(stderr.String()))
	}
	// The last line is main's "nlb: <error>".
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	last := lines[len(lines)-1]
	for _, w := range want {
		if !strings.Contains(last, w) {
			t.Errorf("%v: error %q does not say %q", cmd.Args, last, w)
		}
	}
}

const inUse = "address already in use"

// TestStartupPortTakenProxy: `nlb proxy` exits with an error naming the
// flag and the address when its listen or admin port is taken, including
// the issue's reproduction (--admin equal to --listen).
func TestStartupPortTakenProxy(t *testing.T) {
	bin := nlbBinary(t)
	backend := freePort(t) // never dialled
	taken := takePort(t)
	for _, tc := range []struct {
		name   string
		args   []string
		expect []string
	}{
		{"listen", []string{"--listen", taken, "--admin", freePort(t)}, []string{"--listen", taken, inUse}},
		{"admin", []string{"--listen", freePort(t), "--admin", taken}, []string{"--admin", taken, inUse}},
		{"admin is listen", func() []string { a := freePort(t); return []string{"--listen", a, "--admin", a} }(), []string{"--admin", inUse}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"proxy", "--backend", backend, "--log-format", "text"}, tc.args...)
			mustFailStart(t, exec.Command(bin, args...), tc.expect...)
		})
	}
}

// TestStartupPortTakenClient: `nlb client` exits with an error naming the
// listener, its flag and the address when the API server, konnectivity or
// admin port is taken.
func TestStartupPortTakenClient(t *testing.T) {
	bin := nlbBinary(t)
	dir := t.TempDir()
	ca := newTestCA(t, "startup-ca")
	_, certPEM, keyPEM := ca.issue(t, "worker", true)
	kc := filepath.Join(dir, "kubelet.conf")
	writeKubeconfig(t, kc, "https://"+freePort(t), ca.CertPEM, certPEM, keyPEM) // never reached
	taken := takePort(t)
	_, takenPort, _ := net.SplitHostPort(taken)
	port := func() string { _, p, _ := net.SplitHostPort(freePort(t)); return p }
	for _, tc := range []struct {
		name   string
		args   []string
		expect []string
	}{
		{"apiserver", []string{"--api-port", takenPort, "--konnectivity-port", port()}, []string{"--api-port", taken, inUse}},
		{"konnectivity", []string{"--api-port", port(), "--konnectivity-port", takenPort}, []string{"--konnectivity-port", taken, inUse}},
		{"admin", []string{"--api-port", port(), "--konnectivity-port", port(), "--admin", taken}, []string{"--admin", taken, inUse}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"client", "--kubeconfig", kc, "--cache-file", "", "--bind", "127.0.0.1", "--log-format", "text"}, tc.args...)
			mustFailStart(t, exec.Command(bin, args...), tc.expect...)
		})
	}
}

// TestStartupPortTakenController: `nlb controller` (VRRP in a namespace
// lab) exits with an error when its proxy or admin port is taken, or its
// steering cannot be set up, each after the proxy had bound its listener;
// and no VIP stays behind.
func TestStartupPortTakenController(t *testing.T) {
	netlab.Require(t)
	lab := netlab.NewT(t, "", netlab.Options{Hosts: 1})
	h := lab.Hosts[0]
	vip := lab.VIP4(0)
	conf := controllerConf(h.IfName, nlbtest.K0sConfig{}, controllerVRRP(vip))
	// take binds addr inside the host's namespace, as the process will,
	// until the subtest ends.
	take := func(t *testing.T, addr string) {
		t.Helper()
		var ln net.Listener
		if err := h.Run(func() error {
			var err error
			ln, err = net.Listen("tcp", addr)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
	}
	proxyAddr := netip.AddrPortFrom(h.Addr4, 6444).String()
	const admin = "127.0.0.1:9700"
	for _, tc := range []struct {
		name   string
		taken  string
		args   []string
		expect []string
	}{
		{"proxy", proxyAddr, []string{"--listen", proxyAddr}, []string{"--listen", proxyAddr, inUse}},
		{"admin", admin, nil, []string{"admin", admin, inUse}},
		// Not a port taken, but the same path: the proxy is listening.
		{"steering", "", []string{"--listen", netip.AddrPortFrom(h.Addr4, 6445).String()}, []string{"steer", "not on proxy port"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.taken != "" {
				take(t, tc.taken)
			}
			path := filepath.Join(t.TempDir(), "k0s.yaml")
			writeConfig(t, path, string(conf))
			args := append([]string{"controller", "--config", path, "--admin", admin,
				"--local-api-server", netip.AddrPortFrom(h.Addr4, 6443).String(), "--log-format", "text"}, tc.args...)
			mustFailStart(t, h.Exec(context.Background(), nlbBinary(t), args...), tc.expect...)
			if err := hasVIP(h, vip, false)(); err != nil {
				t.Errorf("after the failed start: %v", err)
			}
		})
	}
}

// TestSignalWhileDialling: SIGTERM ends `nlb proxy` at once while a
// client waits for a backend within its dial budget, even with an hour of
// budget and of shutdown timeout: a stopping proxy starts no new dial
// round. (The start-up itself is short; main's signal context is in place
// before it, and Serve returns at once on a cancelled context.)
func TestSignalWhileDialling(t *testing.T) {
	bin := nlbBinary(t)
	listen, admin := freePort(t), freePort(t)
	conf := filepath.Join(t.TempDir(), "proxy.yaml")
	writeConfig(t, conf, "dialBudget: 1h\nshutdownTimeout: 1h\n")
	cmd := exec.Command(bin, "proxy", "--config", conf, "--listen", listen, "--backend", fullBacklog(t),
		"--admin", admin, "--log-format", "text")
	var out netlab.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
	})
	// Bounded waits for events: the proxy serves, then a client has
	// failed its first round and waits for the next.
	var c net.Conn
	nlbtest.Eventually(t, startupHang, "nlb proxy listening", func() error {
		var err error
		if c, err = net.Dial("tcp", listen); err != nil {
			return fmt.Errorf("%w\n%s", err, tail(out.String()))
		}
		return nil
	})
	defer c.Close()
	nlbtest.Eventually(t, startupHang, "the client waiting for a second round", func() error {
		if !strings.Contains(metricsText(admin), "nlb_proxy_dial_waited_total 1") {
			return fmt.Errorf("not yet\n%s", tail(out.String()))
		}
		return nil
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		if waitErr != nil {
			t.Errorf("exit after SIGTERM: %v\n%s", waitErr, tail(out.String()))
		}
	case <-time.After(startupHang):
		t.Fatalf("nlb proxy did not end on SIGTERM within %v\n%s", startupHang, tail(out.String()))
	}
}

// metricsText returns the admin server's /metrics, or "" on an error.
func metricsText(admin string) string {
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + admin + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// fullBacklog returns the address of a loopback listener whose accept
// queue is full (backlog 0, one connection never accepted): SYNs to it
// are dropped, as to a blackholed host.
func fullBacklog(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	c, err := net.Dial("tcp", addr) // fills the queue
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return addr
}
