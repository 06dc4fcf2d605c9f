package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/nlbtest"
	"golang.org/x/sys/unix"
)

// reservePort returns a free 127.0.0.1 port for a forwarder's
// SO_REUSEPORT listeners, held until the test ends by a socket that is
// bound with SO_REUSEPORT but never listens: no other program can take
// the port meanwhile (a port released before the forwarder binds could
// be), and only listening sockets receive connections.
func reservePort(t *testing.T) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
}

// TestCeilingForwards builds the ceiling forwarders and passes a 4 MiB
// upload, its half-close and the reply through each, forward.c in its
// read/write and its splice mode: a ceiling that dropped bytes or EOFs
// would measure nothing.
func TestCeilingForwards(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no gcc")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	bins := map[string]string{}
	for _, impl := range []string{implCeiling, implCeilingUring} {
		bin, err := buildCeiling(ctx, dir, impl)
		if err != nil {
			t.Fatal(err) // make deps installs liburing-dev
		}
		bins[impl] = bin
	}
	// The backend counts what it got until EOF and answers with the count.
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				n, _ := io.Copy(io.Discard, c)
				fmt.Fprintf(c, "got %d", n)
			}()
		}
	}()
	for _, tc := range []struct {
		impl string
		mode []string
	}{{implCeiling, nil}, {implCeiling, []string{"-s"}}, {implCeilingUring, nil}} {
		bin, mode := bins[tc.impl], tc.mode
		t.Run(fmt.Sprint(tc.impl, mode), func(t *testing.T) {
			addr := reservePort(t)
			args := append([]string{"-t", "2"}, mode...)
			cmd := exec.CommandContext(ctx, bin, append(args, addr+"="+backend.Addr().String())...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			var c *net.TCPConn
			nlbtest.Eventually(t, 10*time.Second, "the forwarder listens", func() error {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					return fmt.Errorf("%w (%s)", err, stderr.String())
				}
				c = conn.(*net.TCPConn)
				return nil
			})
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			const size = 4 << 20
			go func() {
				c.Write(make([]byte, size))
				c.CloseWrite()
			}()
			reply, err := io.ReadAll(c)
			if err != nil || string(reply) != fmt.Sprintf("got %d", size) {
				t.Errorf("reply %q, %v", reply, err)
			}
		})
	}
}
