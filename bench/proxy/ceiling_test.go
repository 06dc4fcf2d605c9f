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
)

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
			// A free port, released for the forwarder to bind.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()
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
