package main

import (
	"context"
	"fmt"
	"io"
	"net"
)

// The first msgSize bytes a client sends select the backend's behaviour by
// their first byte.
const (
	msgSize  = 64
	modeSink = 'B' // bulk: read and discard until EOF
	modeEcho = 'E' // kept-alive request/response: echo everything until EOF
	modeOnce = 'C' // one request/response: reply msgSize bytes, then close
)

// runBackend is the backend process: it listens on an ephemeral loopback
// port, prints the address on stdout, and serves until ctx ends or stdin
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
	if _, err := fmt.Fprintln(stdout, ln.Addr()); err != nil {
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
		go serveBackend(c)
	}
}

func serveBackend(c *net.TCPConn) {
	defer c.Close()
	var hdr [msgSize]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return
	}
	switch hdr[0] {
	case modeSink:
		buf := make([]byte, bulkChunk)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	case modeEcho:
		if _, err := c.Write(hdr[:]); err != nil {
			return
		}
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
	case modeOnce:
		_, _ = c.Write(hdr[:])
		// Close first, as an HTTP/1.0 server does: the TIME_WAIT state stays
		// on the server side and the client's ports are reusable at once.
	}
}
