package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
	"github.com/nlb-dev/nlb/lb"
)

// pcNamedServer is a loopback backend that answers every connection with
// its name and a newline, then echoes: a client learns which backend took
// it.
func pcNamedServer(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				io.WriteString(c, name+"\n")
				io.Copy(c, c)
			})
		}
	})
	return ln.Addr().String()
}

// pcConn is a client connection through the proxy and the name of the
// backend that took it.
type pcConn struct {
	net.Conn
	backend string
}

// pcDial connects through the proxy, reads the backend's name and checks
// that the connection echoes. The connection is closed when the test ends
// (before the proxy stops).
func pcDial(t *testing.T, addr string) *pcConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var name []byte
	one := make([]byte, 1)
	for len(name) < 32 {
		if _, err := c.Read(one); err != nil {
			t.Fatalf("reading the backend's name through the proxy: %v", err)
		}
		if one[0] == '\n' {
			break
		}
		name = append(name, one[0])
	}
	c.SetDeadline(time.Time{})
	pc := &pcConn{Conn: c, backend: string(name)}
	if err := pc.echo("hello"); err != nil {
		t.Fatal(err)
	}
	return pc
}

// echo sends msg and expects it back.
func (c *pcConn) echo(msg string) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo %q, want %q", buf, msg)
	}
	return nil
}

// pcProxy is `nlb proxy` run in-process by runProxy.
type pcProxy struct {
	admin  string
	stderr *netlab.SyncBuffer
}

// pcStart runs runProxy with args plus --admin on a free loopback port and
// --log-format text, waits until its admin server answers with a listener,
// and stops it when the test ends.
func pcStart(t *testing.T, args ...string) *pcProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := ln.Addr().String()
	ln.Close()
	p := &pcProxy{admin: admin, stderr: &netlab.SyncBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	args = append(slices.Clone(args), "--admin", admin, "--log-format", "text")
	go func() { done <- runProxy(ctx, args, io.Discard, p.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("proxy: %v", err)
			}
		case <-time.After(40 * time.Second):
			t.Error("proxy did not stop")
		}
		if t.Failed() {
			t.Logf("proxy log:\n%s", p.stderr.String())
		}
	})
	waitFor(t, 10*time.Second, "the proxy's admin server and listener", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("proxy exited: %v\n%s", err, p.stderr.String())
		default:
		}
		return len(p.status().Listeners) > 0
	})
	return p
}

func (p *pcProxy) status() lb.Status {
	var s lb.Status
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.admin + "/status")
	if err != nil {
		return s
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&s)
	return s
}

// addr is the proxy's (first) listen address.
func (p *pcProxy) addr(t *testing.T) string {
	t.Helper()
	l := p.status().Listeners
	if len(l) == 0 {
		t.Fatal("the proxy has no listener")
	}
	return l[0]
}

// liveBackends returns the sorted addresses of the configured (not
// removed) backends.
func liveBackends(s lb.Status) []string {
	var a []string
	for _, b := range s.Backends {
		if !b.Removed {
			a = append(a, b.Address)
		}
	}
	slices.Sort(a)
	return a
}

func pcBackend(s lb.Status, addr string) lb.BackendStatus {
	for _, b := range s.Backends {
		if b.Address == addr {
			return b
		}
	}
	return lb.BackendStatus{}
}

// writeConfig replaces name's content at once (write and rename), so that
// a reload never reads half a file.
func writeConfig(t *testing.T, name, content string) {
	t.Helper()
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
}

// catchSIGHUP keeps SIGHUP from killing the test process: a SIGHUP sent
// before runProxy registered its own handler would otherwise end the
// whole test binary. It stops when the test ends.
func catchSIGHUP(t *testing.T) {
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, syscall.SIGHUP)
	t.Cleanup(func() { signal.Stop(ch) })
}

// reloadUntil sends SIGHUP to the process until cond holds (runProxy may
// not have registered its handler when the first one arrives; a reload
// of the same file twice is harmless), one every 10 looks of
// nlbtest.Eventually, for at most 10 s.
func reloadUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	looks := 0
	nlbtest.Eventually(t, 10*time.Second, "sending SIGHUP until "+what, func() error {
		if looks%10 == 0 {
			if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
				return nlbtest.Stop(err)
			}
		}
		looks++
		return nlbtest.Holds(cond)()
	})
}

// TestProxyCommandConfigAndFlags: `nlb proxy --config FILE --backend ...`
// takes its settings from the file (leastConnections, maxConnections)
// and its backends from the command line, never the file's; a SIGHUP
// re-reads the file and the flags still apply.
func TestProxyCommandConfigAndFlags(t *testing.T) {
	catchSIGHUP(t)
	a, b := pcNamedServer(t, "a"), pcNamedServer(t, "b")
	cfgFile := filepath.Join(t.TempDir(), "proxy.yaml")
	// The file's own backends are documentation addresses: the flags
	// replace them, so they are never dialled.
	writeConfig(t, cfgFile, `backends: ["192.0.2.10:6443", "192.0.2.11:6443"]
balance: leastConnections
maxConnections: 77
connectTimeout: 300ms
healthCheck: {type: none}
shutdownTimeout: 2s
`)
	p := pcStart(t, "--config", cfgFile, "--backend", a, "--backend", b, "--listen", "127.0.0.1:0")
	st := p.status()
	want := []string{a, b}
	slices.Sort(want)
	if got := liveBackends(st); !slices.Equal(got, want) {
		t.Fatalf("backends %v, want the command line's %v", got, want)
	}
	if st.MaxConnections != 77 {
		t.Errorf("max_connections %d, want the file's 77", st.MaxConnections)
	}

	// Least-connections: four held connections split 2/2; after the two
	// on a close, both new ones go to a (0 and 1 active against b's 2).
	// Round robin would send them to a and then b.
	addr := p.addr(t)
	var conns []*pcConn
	for range 4 {
		conns = append(conns, pcDial(t, addr))
	}
	n := map[string]int{}
	for _, c := range conns {
		n[c.backend]++
	}
	if n["a"] != 2 || n["b"] != 2 {
		t.Fatalf("four connections went %v, want 2 each", n)
	}
	for _, c := range conns {
		if c.backend == "a" {
			c.Close()
		}
	}
	waitFor(t, 10*time.Second, "a's connections released", func() bool { return pcBackend(p.status(), a).Active == 0 })
	var got []string
	for range 2 {
		got = append(got, pcDial(t, addr).backend)
	}
	if !slices.Equal(got, []string{"a", "a"}) {
		t.Errorf("with a idle and b holding 2, new connections went to %v, want [a a] (leastConnections from the file)", got)
	}

	// SIGHUP: the file's new settings apply, its backends still do not.
	writeConfig(t, cfgFile, `backends: ["192.0.2.12:6443"]
balance: leastConnections
maxConnections: 88
healthCheck: {type: none}
shutdownTimeout: 2s
`)
	reloadUntil(t, "max_connections 88", func() bool { return p.status().MaxConnections == 88 })
	if got := liveBackends(p.status()); !slices.Equal(got, want) {
		t.Errorf("backends after SIGHUP %v, want the command line's %v", got, want)
	}
	for i, c := range conns {
		if c.backend == "b" {
			if err := c.echo("after reload"); err != nil {
				t.Errorf("connection %d across the reload: %v", i, err)
			}
		}
	}
}

// TestProxyCommandReload: with the backends in the file, SIGHUP swaps them
// for the file's new list without dropping a connection made before;
// an invalid file on SIGHUP keeps the running configuration and the proxy
// keeps serving.
func TestProxyCommandReload(t *testing.T) {
	catchSIGHUP(t)
	a, b, c := pcNamedServer(t, "a"), pcNamedServer(t, "b"), pcNamedServer(t, "c")
	cfgFile := filepath.Join(t.TempDir(), "proxy.yaml")
	conf := func(backends ...string) string {
		q := make([]string, len(backends))
		for i, x := range backends {
			q[i] = fmt.Sprintf("%q", x)
		}
		// A long drain: the connection to a removed backend is kept.
		return fmt.Sprintf("backends: [%s]\nhealthCheck: {type: none}\ndrainPeriod: 1h\nshutdownTimeout: 2s\n", strings.Join(q, ", "))
	}
	writeConfig(t, cfgFile, conf(a))
	p := pcStart(t, "--config", cfgFile, "--listen", "127.0.0.1:0")
	if got := liveBackends(p.status()); !slices.Equal(got, []string{a}) {
		t.Fatalf("backends %v, want the file's [%s]", got, a)
	}
	addr := p.addr(t)
	before := pcDial(t, addr)
	if before.backend != "a" {
		t.Fatalf("connection went to %q, want a", before.backend)
	}

	// (b) The new file replaces a with b and c.
	writeConfig(t, cfgFile, conf(b, c))
	want := []string{b, c}
	slices.Sort(want)
	reloadUntil(t, "the new backends in /status", func() bool { return slices.Equal(liveBackends(p.status()), want) })
	if st := pcBackend(p.status(), a); !st.Removed || st.Active != 1 {
		t.Errorf("removed backend a: %+v, want removed, draining its connection", st)
	}
	if err := before.echo("across the reload"); err != nil {
		t.Errorf("connection opened before the reload: %v", err)
	}
	seen := map[string]int{}
	for range 4 {
		seen[pcDial(t, addr).backend]++
	}
	if seen["b"] != 2 || seen["c"] != 2 {
		t.Errorf("new connections after the reload went %v, want 2 to b and 2 to c", seen)
	}

	// (c) Invalid files: an unknown field, and a valid YAML with a bad
	// value. Each reload fails and the running configuration stays.
	for _, bad := range []string{
		conf(a) + "bakends: [\"192.0.2.20:6443\"]\n",
		"backends: [\"192.0.2.21:6443\"]\nbalance: random\nhealthCheck: {type: none}\n",
		"backends: [\"192.0.2.22:6443\"\n", // not YAML
	} {
		failures := strings.Count(p.stderr.String(), "reload failed")
		writeConfig(t, cfgFile, bad)
		reloadUntil(t, "a failed reload logged", func() bool {
			return strings.Count(p.stderr.String(), "reload failed") > failures
		})
		st := p.status()
		if got := liveBackends(st); !slices.Equal(got, want) {
			t.Errorf("after an invalid file %q: backends %v, want %v kept", bad, got, want)
		}
		if err := before.echo("after a failed reload"); err != nil {
			t.Errorf("connection opened before the failed reload: %v", err)
		}
		if got := pcDial(t, addr).backend; got != "b" && got != "c" {
			t.Errorf("after a failed reload a new connection went to %q", got)
		}
	}
	if !strings.Contains(p.stderr.String(), "bakends") {
		t.Errorf("the failed reload's log does not name the unknown field bakends:\n%s", p.stderr.String())
	}
}

// TestProxyCommandCheck: `nlb proxy --check` reports every unknown field of
// the file by name, and accepts a good file.
func TestProxyCommandCheck(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	writeConfig(t, bad, "backends: [\"192.0.2.1:6443\"]\nbakends: []\nhealthCheck: {type: tcp, intervall: 1s}\n")
	err := runProxy(context.Background(), []string{"--check", "--config", bad, "--listen", "127.0.0.1:0"}, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("--check accepted unknown fields")
	}
	for _, f := range []string{"bakends", "healthCheck.intervall"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("--check error does not name %s: %v", f, err)
		}
	}

	invalid := filepath.Join(dir, "invalid.yaml")
	writeConfig(t, invalid, "backends: [\"192.0.2.1:6443\"]\nbalance: random\n")
	if err := runProxy(context.Background(), []string{"--check", "--config", invalid}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "balance") {
		t.Errorf("--check with balance: random: %v, want an error naming balance", err)
	}

	good := filepath.Join(dir, "good.yaml")
	writeConfig(t, good, "backends: [\"192.0.2.1:6443\"]\nbalance: leastConnections\n")
	var out bytes.Buffer
	if err := runProxy(context.Background(), []string{"--check", "--config", good}, &out, io.Discard); err != nil {
		t.Fatalf("--check with a good file: %v", err)
	}
	if !strings.Contains(out.String(), "configuration ok") {
		t.Errorf("--check printed %q", out.String())
	}
}
