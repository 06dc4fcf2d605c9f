//go:build linux

package lb

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// waiter parks until a socket is readable without holding any buffer or
// pipe, then reads once into a buffer from the proxy's pool. Its callback
// is built once per direction so that waiting does not allocate.
type waiter struct {
	rc   syscall.RawConn
	pool *sync.Pool // of *buffer
	buf  *buffer    // holds the bytes read, nil while waiting
	n    int        // bytes read, 0 meaning EOF
	err  error      // socket error seen by the read
	fn   func(fd uintptr) bool
}

func (w *waiter) init(c *net.TCPConn, pool *sync.Pool) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	w.rc, w.pool = rc, pool
	w.fn = w.read
	return nil
}

// read runs inside RawConn.Read: returning false parks the goroutine in
// Go's netpoller until the socket is readable, then read runs again. The
// buffer is taken only for the read and given back when the socket turns
// out empty, so a waiting direction holds none.
func (w *waiter) read(fd uintptr) bool {
	if w.buf == nil {
		if w.buf, _ = w.pool.Get().(*buffer); w.buf == nil {
			w.buf = new(buffer)
		}
	}
	for {
		n, err := unix.Read(int(fd), w.buf[:])
		switch err {
		case nil:
			w.n = n
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			w.pool.Put(w.buf)
			w.buf = nil
			return false
		default:
			w.err = err
			return true
		}
	}
}

// wait blocks until data, EOF, an error or the read deadline; it returns
// the number of bytes read into the buffer (see take), 0 for EOF.
func (w *waiter) wait() (int, error) {
	w.n, w.err = 0, nil
	err := w.rc.Read(w.fn)
	if err == nil && w.err != nil {
		err = fmt.Errorf("lb: read: %w", w.err)
	}
	if err != nil || w.n == 0 {
		w.release()
		return 0, err
	}
	return w.n, nil
}

// take hands over the buffer filled by wait; the caller puts it back in
// the pool.
func (w *waiter) take() *buffer {
	b := w.buf
	w.buf = nil
	return b
}

func (w *waiter) release() {
	if w.buf != nil {
		w.pool.Put(w.buf)
		w.buf = nil
	}
}

// parker holds idle directions with no goroutine: their sockets sit in an
// epoll set of its own (level-triggered, one-shot, keyed by a token rather
// than the fd so that a reused fd number cannot be confused), and one
// goroutine waits on it and starts a direction again when its socket turns
// readable. Go's netpoller keeps its own registration of the same sockets
// for the active phases.
type parker struct {
	epfd, evfd int
	mu         sync.Mutex
	next       uint32
	parked     map[uint32]*direction
}

// newParker creates the epoll set. It is called from Serve.
func newParker() (*parker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("lb: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("lb: eventfd: %w", err)
	}
	// Token 0 is the stop signal.
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: 0}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, fmt.Errorf("lb: epoll_ctl: %w", err)
	}
	return &parker{epfd: epfd, evfd: evfd, parked: map[uint32]*direction{}}, nil
}

// park hands d to the parker. On success d's goroutine must return: d is
// resumed with `go d.run()` when its socket is readable, or finished by
// unpark when its connection is closed.
func (pk *parker) park(d *direction) error {
	pk.mu.Lock()
	pk.next++
	if pk.next == 0 {
		pk.next = 1
	}
	tok := pk.next
	pk.parked[tok] = d
	d.tok = tok
	wasRegistered := d.registered
	d.registered = true // written under mu: the goroutine woken later reads it
	pk.mu.Unlock()

	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(tok)}
	var cerr error
	err := d.w.rc.Control(func(fd uintptr) {
		op := unix.EPOLL_CTL_MOD
		if !wasRegistered {
			op = unix.EPOLL_CTL_ADD
		}
		cerr = unix.EpollCtl(pk.epfd, op, int(fd), &ev)
		switch {
		case cerr == unix.ENOENT:
			cerr = unix.EpollCtl(pk.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		case cerr == unix.EEXIST:
			cerr = unix.EpollCtl(pk.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev)
		}
	})
	if err = errors.Join(err, cerr); err != nil {
		pk.mu.Lock()
		defer pk.mu.Unlock()
		if pk.parked[tok] != d {
			// unpark took d meanwhile (its connection was closed): d
			// belongs to the closer now.
			return nil
		}
		delete(pk.parked, tok)
		d.tok = 0
		return err
	}
	return nil
}

// unpark takes d back if it is parked and reports whether it was.
func (pk *parker) unpark(d *direction) bool {
	pk.mu.Lock()
	defer pk.mu.Unlock()
	if d.tok == 0 || pk.parked[d.tok] != d {
		return false
	}
	delete(pk.parked, d.tok)
	d.tok = 0
	return true
}

// run waits for parked sockets to turn readable until stop is called.
func (pk *parker) run() {
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(pk.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			tok := uint32(ev.Fd)
			if tok == 0 {
				return
			}
			pk.mu.Lock()
			d := pk.parked[tok]
			if d != nil {
				delete(pk.parked, tok)
				d.tok = 0
			}
			pk.mu.Unlock()
			if d != nil {
				go d.run()
			}
		}
	}
}

// stop ends run; close releases the descriptors after run returned.
func (pk *parker) stop() {
	var one = [8]byte{1}
	unix.Write(pk.evfd, one[:])
}

func (pk *parker) close() {
	unix.Close(pk.epfd)
	unix.Close(pk.evfd)
}

// setSockopts sets TCP keepalive (on, idle, interval, count) and, when
// configured, TCP_USER_TIMEOUT on a socket, in one RawConn.Control. Set on
// a listening socket, the options are inherited by every connection it
// accepts (Linux copies them into the child socket), which saves five
// system calls per accepted connection. TCP_USER_TIMEOUT makes the kernel
// drop a connection whose sent data stays unacknowledged, which finds peers
// that vanished while we were sending (keepalive only covers idle
// connections).
func setSockopts(c syscall.Conn, cfg *Config) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("lb: socket options: %w", err)
	}
	ka := cfg.KeepAlive
	opts := [...]struct{ level, opt, v int }{
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs(time.Duration(ka.Idle))},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs(time.Duration(ka.Interval))},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, ka.Count},
		{unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(time.Duration(cfg.UserTimeout).Milliseconds())},
	}
	n := len(opts)
	if cfg.UserTimeout <= 0 {
		n-- // leave the kernel default
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		for _, o := range opts[:n] {
			if e := unix.SetsockoptInt(int(fd), o.level, o.opt, o.v); e != nil {
				serr = errors.Join(serr, fmt.Errorf("lb: setsockopt %d/%d: %w", o.level, o.opt, e))
			}
		}
	})
	if err != nil {
		return fmt.Errorf("lb: socket options: %w", err)
	}
	return serr
}

// secs rounds d up to whole seconds, at least 1, as net.KeepAliveConfig
// does.
func secs(d time.Duration) int {
	return max(int((d+time.Second-1)/time.Second), 1)
}
