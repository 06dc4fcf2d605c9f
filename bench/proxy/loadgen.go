package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The idle-memory test is the one thing no standard tool measures: many
// connections held open through the proxy while its memory is read. This
// binary, re-executed as "__backend" and "__loadgen", is its backend and
// client.

// msgSize is the one exchange on each idle connection.
const msgSize = 64

// ioTimeout bounds every dial, read and write of the generator.
const ioTimeout = 5 * time.Second

// idleDialers bounds the concurrent dials when opening idle connections.
const idleDialers = 64

// idleResult is the load generator's one JSON line.
type idleResult struct {
	Conns      int    `json:"conns"`
	Errors     int64  `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
}

// runLoadgen opens -conns connections to -addr, each after one 64-byte
// echo so the whole path is established and has carried data, prints an
// idleResult line and holds the connections until stdin closes or ctx
// ends.
func runLoadgen(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	addr := fs.String("addr", "", "address to connect to")
	n := fs.Int("conns", 1000, "idle connections")
	if err := fs.Parse(args); err != nil {
		return err
	}
	conns := make([]net.Conn, *n)
	defer func() {
		for _, cn := range conns {
			if cn != nil {
				cn.Close()
			}
		}
	}()
	idx := make(chan int)
	var errs atomic.Int64
	var first atomic.Pointer[string]
	fail := func(err error) {
		errs.Add(1)
		s := err.Error()
		first.CompareAndSwap(nil, &s)
	}
	var wg sync.WaitGroup
	for range idleDialers {
		wg.Go(func() {
			var msg, rep [msgSize]byte
			d := net.Dialer{Timeout: ioTimeout}
			for i := range idx {
				cn, err := d.DialContext(ctx, "tcp", *addr)
				if err != nil {
					fail(err)
					continue
				}
				cn.SetDeadline(time.Now().Add(ioTimeout))
				_, err = cn.Write(msg[:])
				if err == nil {
					_, err = io.ReadFull(cn, rep[:])
				}
				cn.SetDeadline(time.Time{})
				if err != nil {
					fail(err)
					cn.Close()
					continue
				}
				conns[i] = cn
			}
		})
	}
	// Stop early when the path refuses connections (for example a proxy
	// out of fds), so that the test stays bounded in time.
	maxErrs := int64(max(100, *n/50))
	for i := range *n {
		if ctx.Err() != nil || errs.Load() > maxErrs {
			break
		}
		idx <- i
	}
	close(idx)
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	open := 0
	for _, cn := range conns {
		if cn != nil {
			open++
		}
	}
	r := idleResult{Conns: open, Errors: errs.Load()}
	if p := first.Load(); p != nil {
		r.FirstError = *p
	}
	if err := json.NewEncoder(stdout).Encode(r); err != nil {
		return err
	}
	held := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		close(held)
	}()
	select {
	case <-held:
	case <-ctx.Done():
	}
	return nil
}

// runBackend is the idle test's backend: it echoes on an ephemeral
// loopback port, prints the address, and serves until ctx ends or stdin
// closes (so it never outlives the bench).
func runBackend(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		cancel()
	}()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	if _, err := io.WriteString(stdout, ln.Addr().String()+"\n"); err != nil {
		return err
	}
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return err
		}
		go echo(c)
	}
}

// echo writes back what c reads, with a plain buffer: io.Copy between two
// TCP connections would splice through a pipe of 2 more fds per
// connection, and the backend would run out of fds before the proxy.
func echo(c *net.TCPConn) {
	defer c.Close()
	var buf [4096]byte
	for {
		n, err := c.Read(buf[:])
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}
