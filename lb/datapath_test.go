//go:build linux

package lb

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestListenerOptionsInherited checks what the accept path relies on:
// keepalive and TCP_USER_TIMEOUT set on a listener from defaultListen reach
// the connections it accepts, and Go does not override them on accept.
func TestListenerOptionsInherited(t *testing.T) {
	cfg := Config{KeepAlive: KeepAlive{Idle: Duration(37 * time.Second), Interval: Duration(7 * time.Second), Count: 4},
		UserTimeout: Duration(12345 * time.Millisecond)}
	ln, err := defaultListen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := setSockopts(ln, &cfg); err != nil {
		t.Fatal(err)
	}
	c := dial(t, ln.Addr().String())
	defer c.Close()
	a, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	rc, err := a.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name       string
		level, opt int
		v          int
	}{
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 37},
		{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 7},
		{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 4},
		{"TCP_USER_TIMEOUT", unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 12345},
	}
	rc.Control(func(fd uintptr) {
		for _, w := range want {
			v, err := unix.GetsockoptInt(int(fd), w.level, w.opt)
			if err != nil || v != w.v {
				t.Errorf("accepted connection: %s = %d (%v), want %d", w.name, v, err, w.v)
			}
		}
	})
}

// countingCopy wraps the bulk copy: it records that it ran and that
// io.Copy got the bare connection.
type countingCopy struct {
	calls atomic.Int64
	bad   atomic.Value
}

func (cc *countingCopy) copy(dst *net.TCPConn, lr *io.LimitedReader) (int64, error) {
	if _, ok := lr.R.(*net.TCPConn); !ok {
		cc.bad.Store(fmt.Sprintf("reader is %T", lr.R))
	}
	cc.calls.Add(1)
	return io.Copy(dst, lr)
}

// TestSmallMessagesNotSpliced: request/response traffic below the buffer
// size stays on read/write, byte for byte, in both parking modes, and a
// half-close after it passes through.
func TestSmallMessagesNotSpliced(t *testing.T) {
	for _, m := range parkModes {
		t.Run(m.name, func(t *testing.T) {
			var cc countingCopy
			p := startProxy(t, Config{Backends: []string{echoServer(t)}}, Options{},
				func(p *Proxy) { p.parkAfter = m.after; p.copyFn = cc.copy })
			c := dial(t, p.addr)
			for i := range 300 {
				msg := make([]byte, 1+(i*997)%(bufSize-1)) // 1 B .. bufSize-1
				rand.Read(msg)
				if _, err := c.Write(msg); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(c, got); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("message %d (%d bytes) differs", i, len(msg))
				}
				if i%50 == 0 {
					time.Sleep(3 * time.Millisecond) // let park-2ms park
				}
			}
			c.CloseWrite()
			if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
				t.Fatalf("after half-close: %d bytes, %v", len(rest), err)
			}
			if n := cc.calls.Load(); n != 0 {
				t.Errorf("bulk copy ran %d times for messages below %d bytes", n, bufSize)
			}
		})
	}
}

// TestSwitchBetweenMessagesAndBulk alternates bulk transfers (spliced) and
// small messages on one connection; every byte must arrive in order, and
// the half-close must pass through from either mode.
func TestSwitchBetweenMessagesAndBulk(t *testing.T) {
	for _, m := range parkModes {
		for _, endBulk := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/end-bulk=%v", m.name, endBulk), func(t *testing.T) {
				var cc countingCopy
				p := startProxy(t, Config{Backends: []string{echoServer(t)}}, Options{},
					func(p *Proxy) { p.parkAfter = m.after; p.copyFn = cc.copy })
				c := dial(t, p.addr)
				var sent []byte
				for round := range 6 {
					size := 100 + round
					if round%2 == 0 || (endBulk && round == 5) {
						size = 3<<20 + round*4099
					}
					msg := make([]byte, size)
					rand.Read(msg)
					sent = append(sent, msg...)
					errc := make(chan error, 1)
					go func() { _, err := c.Write(msg); errc <- err }()
					got := make([]byte, size)
					if _, err := io.ReadFull(c, got); err != nil {
						t.Fatalf("round %d: %v", round, err)
					}
					if err := <-errc; err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, msg) {
						t.Fatalf("round %d: %d bytes differ", round, size)
					}
					if round == 2 {
						time.Sleep(5 * time.Millisecond) // park-2ms: leave bulk by parking
					}
				}
				c.CloseWrite()
				if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
					t.Fatalf("after half-close: %d bytes, %v", len(rest), err)
				}
				if cc.calls.Load() == 0 {
					t.Error("bulk transfers were never spliced")
				}
				if v := cc.bad.Load(); v != nil {
					t.Fatal(v)
				}
				waitFor(t, "connection released", func() bool { return p.Status().Active == 0 })
				st := p.Status().Backends[0]
				if st.BytesIn != uint64(len(sent)) || st.BytesOut != uint64(len(sent)) {
					t.Errorf("counted %d in, %d out, want %d each", st.BytesIn, st.BytesOut, len(sent))
				}
			})
		}
	}
}

// TestSocketOptionsOnLiveConnections: a connection that outlives tuneAfter
// has keepalive and TCP_USER_TIMEOUT on both of the proxy's sockets.
func TestSocketOptionsOnLiveConnections(t *testing.T) {
	p := startProxy(t, Config{Backends: []string{echoServer(t)}, UserTimeout: Duration(4321 * time.Millisecond)}, Options{})
	c := dial(t, p.addr)
	if err := roundTrip(c, "hello"); err != nil {
		t.Fatal(err)
	}
	var pc *proxyConn
	p.mu.Lock()
	for x := range p.conns {
		pc = x
	}
	p.mu.Unlock()
	if pc == nil {
		t.Fatal("no proxied connection")
	}
	opts := func(tc *net.TCPConn) (ka, ut int) {
		rc, err := tc.SyscallConn()
		if err != nil {
			return -1, -1
		}
		rc.Control(func(fd uintptr) {
			ka, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE)
			ut, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
		})
		return ka, ut
	}
	if ka, ut := opts(pc.client); ka != 1 || ut != 4321 {
		t.Errorf("client side: SO_KEEPALIVE %d, TCP_USER_TIMEOUT %d; want 1, 4321 (from the listener)", ka, ut)
	}
	waitFor(t, "backend side tuned", func() bool {
		ka, ut := opts(pc.server)
		return ka == 1 && ut == 4321
	})
	if err := roundTrip(c, "still works"); err != nil {
		t.Fatal(err)
	}
}
