package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
)

// Client workload parameters.
const (
	freshEvery   = 50 * time.Millisecond  // a new connection per request
	longEvery    = 100 * time.Millisecond // requests on the long-lived connection
	clientTimout = 500 * time.Millisecond // per request, connect and TLS included
)

// sample is one request of the client.
type sample struct {
	start, end time.Time
	long       bool // on the long-lived connection
	conn       int  // long: serial number of the connection (0: dial failed)
	who        int  // index of the controller whose API server answered; -1: failed
	err        string
}

func (s sample) ok() bool { return s.who >= 0 }

// client reads https://VIP:6443 from the client host: a fresh connection
// for every request every freshEvery, and one long-lived connection
// (HTTP/1.1 keep-alive) that is dialled again when it breaks.
type client struct {
	host   *netlab.Host
	target netip.AddrPort
	api    *apiServers

	mu      sync.Mutex
	samples []sample
	arp     []arpEntry
	wg      sync.WaitGroup
}

// arpEntry is a change of the client's neighbour entry for the VIP.
type arpEntry struct {
	t   time.Time
	mac string // "" while there is no usable entry
}

func newClient(h *netlab.Host, target netip.AddrPort, api *apiServers) *client {
	return &client{host: h, target: target, api: api}
}

// run starts both request loops; they end with ctx.
func (c *client) run(ctx context.Context) {
	c.wg.Add(3)
	go c.freshLoop(ctx)
	go c.longLoop(ctx)
	go c.watchARP(ctx)
}

// watchARP records every change of the client's neighbour entry for the
// VIP: which MAC its packets to the VIP go to.
func (c *client) watchARP(ctx context.Context) {
	defer c.wg.Done()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	last := "-"
	for {
		mac, err := c.host.Neighbor(c.target.Addr())
		if err == nil {
			s := ""
			if mac != nil {
				s = mac.String()
			}
			if s != last {
				last = s
				c.mu.Lock()
				c.arp = append(c.arp, arpEntry{t: time.Now(), mac: s})
				c.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// arpSince returns the entry in force at t and every change after it.
func (c *client) arpSince(t time.Time) []arpEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []arpEntry
	for _, e := range c.arp {
		if e.t.Before(t) {
			out = []arpEntry{e}
			continue
		}
		out = append(out, e)
	}
	return out
}

// wait waits for the loops (and their requests in flight) after ctx ended.
func (c *client) wait() { c.wg.Wait() }

func (c *client) record(s sample) {
	c.mu.Lock()
	c.samples = append(c.samples, s)
	c.mu.Unlock()
}

// since returns the samples that started at or after t, by start time.
func (c *client) since(t time.Time) []sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []sample
	for _, s := range c.samples {
		if !s.start.Before(t) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b sample) int { return a.start.Compare(b.start) })
	return out
}

func (c *client) freshLoop(ctx context.Context) {
	defer c.wg.Done()
	t := time.NewTicker(freshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			start := time.Now()
			who, err := c.once(ctx, c.target)
			s := sample{start: start, end: time.Now(), who: who}
			if err != nil {
				s.who, s.err = -1, brief(err)
			}
			if ctx.Err() == nil {
				c.record(s)
			}
		}()
	}
}

// once sends one request on a new connection to target and returns which
// controller answered.
func (c *client) once(ctx context.Context, target netip.AddrPort) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, clientTimout)
	defer cancel()
	conn, err := c.dial(ctx, target)
	if err != nil {
		return -1, err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	if err := get(conn, bufio.NewReader(conn), c.api.path, false); err != nil {
		return -1, err
	}
	return c.api.who(conn.ConnectionState()), nil
}

// dial opens a TLS connection to target from the client host.
func (c *client) dial(ctx context.Context, target netip.AddrPort) (*tls.Conn, error) {
	raw, err := c.host.Dialer(clientTimout)(ctx, "tcp", target.String())
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, c.api.tls)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS: %w", err)
	}
	return conn, nil
}

// get sends GET path and reads the whole response, which must be 200.
func get(w io.Writer, r *bufio.Reader, path string, keepAlive bool) error {
	conn := "close"
	if keepAlive {
		conn = "keep-alive"
	}
	if _, err := fmt.Fprintf(w, "GET %s HTTP/1.1\r\nHost: kubernetes\r\nAccept: application/json\r\nUser-Agent: nlb-demo\r\nConnection: %s\r\n\r\n", path, conn); err != nil {
		return err
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}

func (c *client) longLoop(ctx context.Context) {
	defer c.wg.Done()
	t := time.NewTicker(longEvery)
	defer t.Stop()
	var (
		conn   *tls.Conn
		br     *bufio.Reader
		serial int
		who    = -1
	)
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		if conn == nil {
			dctx, cancel := context.WithTimeout(ctx, clientTimout)
			var err error
			conn, err = c.dial(dctx, c.target)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					c.record(sample{start: start, end: time.Now(), long: true, who: -1, err: brief(err)})
				}
				conn = nil
				continue
			}
			serial++
			br = bufio.NewReader(conn)
			who = c.api.who(conn.ConnectionState())
		}
		_ = conn.SetDeadline(time.Now().Add(clientTimout))
		err := get(conn, br, c.api.path, true)
		s := sample{start: start, end: time.Now(), long: true, conn: serial, who: who}
		if err != nil {
			s.who, s.err = -1, brief(err)
			conn.Close()
			conn = nil
		}
		if ctx.Err() == nil {
			c.record(s)
		}
	}
}

// brief names an error the way a person would.
func brief(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "no route to host"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed (EOF)"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s)-i < 60 {
		s = s[i+2:]
	}
	return s
}
