//go:build linux

package lb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// loop is one event loop of the data path (see datapath.go). Its epoll set
// holds the listeners and both sockets of its connections, edge-triggered,
// each keyed by a token: the connection's slot and side, and an id unique
// to the registration, so that an event for a socket that was closed (and
// whose fd number and slot may be in use again) is recognised and dropped.
// Everything but the task queue belongs to the loop's goroutine; other
// goroutines hand it work with post.
type loop struct {
	p      *Proxy
	epfd   int
	evfd   int // eventfd: post wakes the loop with it
	file   *os.File
	rc     syscall.RawConn // of file: the loop parks in Go's netpoller
	events []unix.EpollEvent
	now    int64 // UnixNano at the start of the current round
	regSeq uint32
	rsa    unix.RawSockaddrAny // accept4's peer address
	buf    buffer

	conns []*proxyConn // by slot
	free  []int32      // free slots

	queue   []*flow // flows with work left after their turn
	spare   []*flow
	pipes   []pipe // empty pipes for reuse
	lns     []*lnState
	backlog []*lnState // listeners with connections left after a batch

	dialQ, tuneQ timerQueue
	timer        *time.Timer
	armedAt      int64 // when timer fires, 0 if not armed

	mu        sync.Mutex
	tasks     []func()
	signalled bool // evfd written since the loop last took the tasks
	closed    bool // the loop has stopped: post refuses work

	exit bool
}

// lnState is a listener as one loop sees it.
type lnState struct {
	ln      *net.TCPListener
	rc      syscall.RawConn
	active  bool // registered and accepting
	backoff time.Duration
	retryAt int64 // UnixNano of the next accept after a failure, 0 if none
}

// Tokens below zero name the loop's own descriptors.
const (
	tokWake     = -1
	tokListener = -2 // listener i is tokListener-i
)

const epollConn = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET

var noPipe = pipe{-1, -1}

// newLoop creates a loop's epoll set and eventfd. It is called from
// Listen; run starts it.
func newLoop(p *Proxy) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("lb: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("lb: eventfd: %w", err)
	}
	l := &loop{p: p, epfd: epfd, evfd: evfd, events: make([]unix.EpollEvent, 256)}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: tokWake}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		l.closeFDs()
		return nil, fmt.Errorf("lb: epoll_ctl: %w", err)
	}
	// A non-blocking epoll descriptor wrapped in an os.File is registered
	// with Go's netpoller, which reports it readable when the set has
	// events: the loop waits there like any goroutine, holding no thread.
	if err := unix.SetNonblock(epfd, true); err != nil {
		l.closeFDs()
		return nil, fmt.Errorf("lb: epoll: %w", err)
	}
	l.file = os.NewFile(uintptr(epfd), "lb-epoll")
	if l.rc, err = l.file.SyscallConn(); err != nil {
		l.file.Close()
		unix.Close(evfd)
		return nil, fmt.Errorf("lb: epoll: %w", err)
	}
	l.timer = time.AfterFunc(time.Hour, l.wake)
	l.timer.Stop()
	return l, nil
}

func (l *loop) closeFDs() {
	unix.Close(l.epfd)
	unix.Close(l.evfd)
}

// run serves lns and the loop's connections until stop. It is run by
// Serve.
func (l *loop) run(lns []*net.TCPListener) {
	l.now = time.Now().UnixNano()
	for i, ln := range lns {
		ls := &lnState{ln: ln}
		l.lns = append(l.lns, ls)
		rc, err := ln.SyscallConn()
		if err != nil {
			l.p.log.Error("listener", "addr", ln.Addr().String(), "err", err)
			continue
		}
		ls.rc = rc
		var cerr error
		err = rc.Control(func(fd uintptr) {
			ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(tokListener - i)}
			cerr = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		})
		if err = errors.Join(err, cerr); err != nil {
			l.p.log.Error("listener: epoll_ctl", "addr", ln.Addr().String(), "err", err)
			continue
		}
		ls.active = true
	}
	for !l.exit {
		if err := l.rc.Read(l.poll); err != nil {
			l.p.log.Error("event loop stopped", "err", err)
			break
		}
	}
	l.close()
}

// poll runs inside RawConn.Read: it serves every ready event, then returns
// false to park in Go's netpoller until the epoll set has events again.
func (l *loop) poll(uintptr) bool {
	for {
		n, err := unix.EpollWait(l.epfd, l.events, 0)
		if err != nil && err != unix.EINTR {
			l.p.log.Error("epoll_wait", "err", err)
			l.exit = true
			return true
		}
		l.round(max(n, 0))
		if l.exit {
			return true
		}
		// A full batch may leave events behind; so may a queue. Events
		// that arrive after this epoll_wait mark the set readable in Go's
		// netpoller, so parking now loses none.
		if n < len(l.events) && len(l.queue) == 0 && len(l.backlog) == 0 {
			return false
		}
	}
}

// round serves n events and whatever they left to do.
func (l *loop) round(n int) {
	l.now = time.Now().UnixNano()
	for i := 0; i < n; i++ {
		l.dispatch(&l.events[i])
	}
	l.runQueue()
	l.runTimers()
}

func (l *loop) dispatch(ev *unix.EpollEvent) {
	tok := ev.Fd
	if tok < 0 {
		if tok == tokWake {
			l.runTasks()
		} else if i := int(tokListener - tok); i < len(l.lns) {
			l.acceptOn(l.lns[i])
		}
		return
	}
	slot, side := int(tok>>1), int(tok&1)
	if slot >= len(l.conns) {
		return
	}
	c := l.conns[slot]
	if c == nil || c.reg[side] != uint32(ev.Pad) {
		return // a socket closed since
	}
	e := ev.Events
	in := e&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
	out := e&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0
	rd, wr := &c.up, &c.down // the flows reading from and writing to side
	if side == sideServer {
		rd, wr = &c.down, &c.up
	}
	if in {
		rd.readable = true
		if e&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			rd.hup = true
		}
	}
	if out {
		wr.writable = true
	}
	switch c.state {
	case stDialing:
		if side == sideServer && (out || e&unix.EPOLLERR != 0) {
			l.connectDone(c, e)
		}
	case stOpen:
		if in {
			l.pump(rd)
		}
		if out && c.state == stOpen {
			l.pump(wr)
		}
	}
}

// runQueue gives every flow that stopped at its budget another turn.
func (l *loop) runQueue() {
	if len(l.backlog) > 0 {
		bl := l.backlog
		l.backlog = nil
		for _, ls := range bl {
			l.acceptOn(ls)
		}
	}
	if len(l.queue) == 0 {
		return
	}
	q := l.queue
	l.queue = l.spare[:0]
	for i, f := range q {
		f.queued = false
		l.pump(f)
		q[i] = nil
	}
	l.spare = q[:0]
}

// post hands fn to the loop's goroutine and wakes it. It reports false
// when the loop has stopped.
func (l *loop) post(fn func()) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	l.tasks = append(l.tasks, fn)
	wake := !l.signalled
	l.signalled = true
	l.mu.Unlock()
	if wake {
		l.signal()
	}
	return true
}

// wake makes the loop run a round (its timers) without a task.
func (l *loop) wake() {
	l.mu.Lock()
	wake := !l.signalled && !l.closed
	l.signalled = true
	l.mu.Unlock()
	if wake {
		l.signal()
	}
}

func (l *loop) signal() {
	one := [8]byte{1}
	unix.Write(l.evfd, one[:])
}

func (l *loop) runTasks() {
	var b [8]byte
	unix.Read(l.evfd, b[:])
	l.mu.Lock()
	tasks := l.tasks
	l.tasks = nil
	l.signalled = false
	l.mu.Unlock()
	for _, fn := range tasks {
		fn()
	}
}

// stop makes the loop return from run; the loop then releases its
// descriptors. Connections must have been released before.
func (l *loop) stop() {
	if !l.post(func() { l.exit = true }) {
		return
	}
}

// close releases the loop's descriptors; it is idempotent and also used
// for a loop that never ran.
func (l *loop) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	l.timer.Stop()
	for _, pp := range l.pipes {
		unix.Close(pp.r)
		unix.Close(pp.w)
	}
	l.pipes = nil
	l.file.Close() // the epoll descriptor
	unix.Close(l.evfd)
}

// dropListeners stops accepting on this loop.
func (l *loop) dropListeners() {
	for _, ls := range l.lns {
		if !ls.active {
			continue
		}
		ls.active = false
		ls.rc.Control(func(fd uintptr) {
			unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
		})
	}
	l.backlog = nil
}

// acceptOn accepts up to acceptBatch connections from ls.
func (l *loop) acceptOn(ls *lnState) {
	if !ls.active || ls.retryAt != 0 || l.p.closing.Load() {
		return
	}
	more := false
	err := ls.rc.Control(func(fd uintptr) {
		for range acceptBatch {
			nfd, err := accept4(int(fd), &l.rsa)
			switch err {
			case nil:
			case unix.EAGAIN:
				return
			case unix.EINTR, unix.ECONNABORTED:
				continue
			default:
				l.acceptFailed(ls, err)
				return
			}
			ls.backoff = 0
			l.accepted(nfd)
		}
		more = true
	})
	if err != nil {
		ls.active = false // closed
		return
	}
	if more {
		l.backlog = append(l.backlog, ls)
	}
}

// acceptFailed backs off like net/http does: typically EMFILE or ENFILE.
func (l *loop) acceptFailed(ls *lnState, err error) {
	if ls.backoff == 0 {
		ls.backoff = 5 * time.Millisecond
	} else {
		ls.backoff = min(2*ls.backoff, time.Second)
	}
	l.p.log.Warn("accept failed", "addr", ls.ln.Addr().String(), "err", err, "retry_in_seconds", ls.backoff.Seconds())
	ls.retryAt = l.now + int64(ls.backoff)
	l.armTimer(ls.retryAt)
}

func accept4(fd int, rsa *unix.RawSockaddrAny) (int, error) {
	n := uint32(unix.SizeofSockaddrAny)
	r, _, e := unix.Syscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(rsa)), uintptr(unsafe.Pointer(&n)),
		unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// addrPort decodes an accepted peer's address.
func addrPort(rsa *unix.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), ntohs(sa.Port))
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), ntohs(sa.Port))
	}
	return netip.AddrPort{}
}

// ntohs reads a port stored in network byte order.
func ntohs(v uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&v))
	return uint16(b[0])<<8 | uint16(b[1])
}

// accepted starts serving a new client socket.
func (l *loop) accepted(fd int) {
	p := l.p
	p.accepted.Add(1)
	cfg := p.cfg.Load()
	limit := int64(cfg.MaxConnections)
	if p.active.Add(1) > limit {
		p.active.Add(-1)
		unix.Close(fd)
		p.limitReached(limit)
		return
	}
	p.connWG.Add(1)
	c := &proxyConn{p: p, l: l, fd: [2]int{fd, -1}, peer: addrPort(&l.rsa)}
	c.up = flow{c: c, src: sideClient, dst: sideServer, in: true, pipe: noPipe}
	c.down = flow{c: c, src: sideServer, dst: sideClient, pipe: noPipe}
	c.touch(l.now)
	if n := len(l.free); n > 0 {
		c.slot = l.free[n-1]
		l.free = l.free[:n-1]
		l.conns[c.slot] = c
	} else {
		c.slot = int32(len(l.conns))
		l.conns = append(l.conns, c)
	}
	if p.tuneAccepted.Load() {
		// The listener is not ours: what Go's accept did.
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	if err := l.register(c, sideClient); err != nil {
		p.log.Error("proxy connection", "err", err)
		l.release(c)
		return
	}
	c.dial = p.newDialState(cfg)
	l.startDial(c)
}

// register adds one of c's sockets to the epoll set under a new token.
func (l *loop) register(c *proxyConn, side int) error {
	l.regSeq++
	if l.regSeq == 0 {
		l.regSeq = 1
	}
	c.reg[side] = l.regSeq
	ev := unix.EpollEvent{Events: epollConn, Fd: c.slot<<1 | int32(side), Pad: int32(l.regSeq)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd[side], &ev); err != nil {
		return fmt.Errorf("lb: epoll_ctl: %w", err)
	}
	return nil
}

// startDial tries the next backend for c; with none left it refuses the
// client.
func (l *loop) startDial(c *proxyConn) {
	p := l.p
	ds := c.dial
	for {
		i := ds.next(p.bal.Load())
		if i < 0 {
			l.noBackend(c)
			return
		}
		b := ds.list[i]
		err := l.connect(c, b)
		if err == nil {
			return
		}
		l.dialFailed(c, b, err)
	}
}

// connect starts a non-blocking connect to b, or, for a dial hook
// (Options.Dial) or a backend given by name, a Go dial in a goroutine.
// Either ends in connectDone (through the socket's first event) or
// dialFailed.
func (l *loop) connect(c *proxyConn, b *backend) error {
	p, ds := l.p, c.dial
	ds.deadline = l.now + int64(ds.cfg.ConnectTimeout)
	if p.dialHook || !b.ap.IsValid() {
		seq, timeout := ds.seq, time.Duration(ds.cfg.ConnectTimeout)
		go func() {
			ctx, cancel := context.WithTimeout(p.bgCtx, timeout)
			tc, err := p.dial(ctx, b.addr)
			cancel()
			if !l.post(func() { l.goDialDone(c, seq, b, tc, err) }) && tc != nil {
				tc.Close()
			}
		}()
		return nil
	}
	family, sa := unix.AF_INET, unix.Sockaddr(nil)
	if a := b.ap.Addr(); a.Is4() {
		sa = &unix.SockaddrInet4{Port: int(b.ap.Port()), Addr: a.As4()}
	} else {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(b.ap.Port()), Addr: a.As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	// As Go's dialer does: small messages leave at once.
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS && err != unix.EINTR {
		unix.Close(fd)
		return fmt.Errorf("connect: %w", err)
	}
	c.fd[sideServer] = fd
	if err := l.register(c, sideServer); err != nil {
		unix.Close(fd)
		c.fd[sideServer] = -1
		return err
	}
	l.dialQ.push(timerEntry{at: ds.deadline, c: c, seq: ds.seq})
	l.armTimer(ds.deadline)
	return nil
}

// goDialDone takes the result of a Go dial.
func (l *loop) goDialDone(c *proxyConn, seq uint32, b *backend, tc *net.TCPConn, err error) {
	if c.state != stDialing || c.dial.seq != seq {
		if tc != nil {
			tc.Close()
		}
		return
	}
	if err == nil {
		var rc syscall.RawConn
		if rc, err = tc.SyscallConn(); err == nil {
			err = rc.Control(func(fd uintptr) { c.fd[sideServer] = int(fd) })
		}
		if err == nil {
			c.owner = tc
			if err = l.register(c, sideServer); err == nil {
				return // connected: its first event comes at once
			}
			c.owner, c.fd[sideServer] = nil, -1
		}
		tc.Close()
	}
	l.dialFailed(c, b, err)
	l.startDial(c)
}

// connectDone handles the first writable (or error) event of a dialling
// backend socket.
func (l *loop) connectDone(c *proxyConn, ev uint32) {
	ds := c.dial
	b := ds.list[ds.cur]
	if ev&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
		err := error(unix.ECONNREFUSED)
		if v, gerr := unix.GetsockoptInt(c.fd[sideServer], unix.SOL_SOCKET, unix.SO_ERROR); gerr == nil && v != 0 {
			err = unix.Errno(v)
		}
		l.closeServer(c)
		l.dialFailed(c, b, fmt.Errorf("connect: %w", err))
		l.startDial(c)
		return
	}
	l.connected(c, b)
}

// dialTimeout ends a connect that took longer than ConnectTimeout.
func (l *loop) dialTimeout(c *proxyConn) {
	ds := c.dial
	b := ds.list[ds.cur]
	l.closeServer(c)
	l.dialFailed(c, b, fmt.Errorf("connect: %w", os.ErrDeadlineExceeded))
	l.startDial(c)
}

func (l *loop) closeServer(c *proxyConn) {
	if fd := c.fd[sideServer]; fd >= 0 {
		c.fd[sideServer] = -1
		c.reg[sideServer] = 0
		if c.owner != nil {
			c.owner.Close()
			c.owner = nil
		} else {
			unix.Close(fd)
		}
	}
	c.up.writable, c.down.readable, c.down.hup = false, false, false
}

// dialFailed marks b suspect after a failed dial, as the old dial path did.
func (l *loop) dialFailed(c *proxyConn, b *backend, err error) {
	b.dialFailures.Add(1)
	if b.suspectSince.Swap(time.Now().UnixNano()) == 0 {
		l.p.log.Warn("backend suspect: dial failed", "backend", b.addr, "err", err)
	}
	c.dial.errs = append(c.dial.errs, fmt.Errorf("lb: dial %s: %w", b.addr, err))
}

// noBackend refuses a client that no backend would take, with RST.
func (l *loop) noBackend(c *proxyConn) {
	p := l.p
	p.noBackend.Add(1)
	err := errors.Join(c.dial.errs...)
	if len(c.dial.list) == 0 {
		err = errors.New("lb: no backends configured")
	}
	p.log.Warn("no backend reachable: closing client", "client", c.client(), "err", err)
	l.abort(c, true)
}

// connected starts proxying c over b.
func (l *loop) connected(c *proxyConn, b *backend) {
	p := l.p
	b.suspectSince.Store(0)
	c.b, c.dial = b, nil
	c.state, c.open = stOpen, 2
	b.active.Add(1)
	b.total.Add(1)
	p.mu.Lock()
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	if p.closing.Load() {
		// Shutdown may have walked p.conns before we registered.
		c.close()
	}
	at := l.now + int64(tuneAfter)
	l.tuneQ.push(timerEntry{at: at, c: c})
	l.armTimer(at)
	l.pump(&c.up)
	if c.state == stOpen {
		l.pump(&c.down)
	}
}

// pump moves what it can of f: what waits for the destination first, then
// fresh bytes while the source has some and the destination takes them, up
// to a budget; a flow with work left is queued for another turn.
func (l *loop) pump(f *flow) {
	c := f.c
	if f.done || c.state != stOpen {
		return
	}
	budget := msgBudget
	if f.bulk {
		budget = bulkBudget
	}
	for ; budget > 0; budget-- {
		switch {
		case f.plen > 0:
			if !f.writable {
				return
			}
			n, err := unix.Write(c.fd[f.dst], f.pend[f.poff:f.plen])
			if n > 0 {
				f.poff += n
				l.count(f, n)
			}
			if err == unix.EAGAIN {
				f.writable = false
				return
			}
			if err != nil {
				l.fail(f, fmt.Errorf("lb: write: %w", err))
				return
			}
			if f.poff == f.plen {
				l.p.bufs.Put(f.pend)
				f.pend, f.poff, f.plen = nil, 0, 0
			}
			continue
		case f.piped > 0:
			if !f.writable {
				return
			}
			n, err := splice(f.pipe.r, c.fd[f.dst], f.piped)
			if n > 0 {
				f.piped -= n
				l.count(f, n)
				l.p.spliced.Add(uint64(n))
			}
			if err == unix.EAGAIN {
				f.writable = false
				return
			}
			if err != nil {
				l.fail(f, fmt.Errorf("lb: splice: %w", err))
				return
			}
			continue
		case f.eof:
			l.finish(f)
			return
		case !f.readable || !f.writable:
			l.putPipe(f)
			return
		}
		if f.bulk {
			if f.pipe.r < 0 && !l.getPipe(f) {
				f.bulk = false
				continue
			}
			n, err := splice(c.fd[f.src], f.pipe.w, pipeSize)
			switch {
			case err == unix.EAGAIN:
				f.readable = false
				l.putPipe(f)
				return
			case err != nil:
				l.fail(f, fmt.Errorf("lb: splice: %w", err))
				return
			case n == 0:
				f.eof = true
			default:
				f.piped = n
				f.bulk = n >= bufSize
			}
			continue
		}
		l.putPipe(f)
		n, err := unix.Read(c.fd[f.src], l.buf[:])
		switch {
		case err == unix.EAGAIN:
			f.readable = false
			return
		case err != nil:
			l.fail(f, fmt.Errorf("lb: read: %w", err))
			return
		case n == 0:
			f.eof = true
			continue
		}
		m, err := unix.Write(c.fd[f.dst], l.buf[:n])
		if m < 0 {
			m = 0
		}
		if m > 0 {
			l.count(f, m)
		}
		if err != nil && err != unix.EAGAIN {
			l.fail(f, fmt.Errorf("lb: write: %w", err))
			return
		}
		if m < n {
			// The destination is full: keep the rest for later.
			f.pend, _ = l.p.bufs.Get().(*buffer)
			if f.pend == nil {
				f.pend = new(buffer)
			}
			f.plen = copy(f.pend[:], l.buf[m:n])
			if err == unix.EAGAIN {
				f.writable = false
			}
		}
		if n == bufSize {
			f.bulk = true
			budget = min(budget, bulkBudget)
		} else if !f.hup {
			// A short read emptied the socket: the next byte to
			// arrive brings a new event.
			f.readable = false
		}
	}
	if !f.queued {
		f.queued = true
		l.queue = append(l.queue, f)
	}
}

func splice(from, to, n int) (int, error) {
	for {
		m, err := unix.Splice(from, nil, to, nil, n, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		if err == unix.EINTR {
			continue
		}
		return int(m), err
	}
}

// count records n bytes moved by f.
func (l *loop) count(f *flow, n int) {
	c, p := f.c, l.p
	c.touch(l.now)
	if f.in {
		c.b.bytesIn.Add(uint64(n))
		p.bytesIn.Add(uint64(n))
	} else {
		c.b.bytesOut.Add(uint64(n))
		p.bytesOut.Add(uint64(n))
	}
}

// getPipe gives f an empty pipe from the pool, or a new one.
func (l *loop) getPipe(f *flow) bool {
	if n := len(l.pipes); n > 0 {
		f.pipe = l.pipes[n-1]
		l.pipes = l.pipes[:n-1]
		return true
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		l.p.log.Debug("pipe2: copying through user space", "err", err)
		return false
	}
	// Best effort: a smaller pipe only means more splices.
	unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, pipeSize)
	f.pipe = pipe{fds[0], fds[1]}
	return true
}

// putPipe returns f's pipe to the pool if it holds one and it is empty.
func (l *loop) putPipe(f *flow) {
	if f.pipe.r < 0 || f.piped > 0 {
		return
	}
	if len(l.pipes) < maxFreePipes {
		l.pipes = append(l.pipes, f.pipe)
	} else {
		unix.Close(f.pipe.r)
		unix.Close(f.pipe.w)
	}
	f.pipe = noPipe
}

// finish ends f after its source's EOF: the half-close is passed on, and
// the second flow to finish releases the connection (closing both sockets
// sends the FIN without a shutdown of its own).
func (l *loop) finish(f *flow) {
	c := f.c
	f.done = true
	l.putPipe(f)
	c.open--
	if c.open > 0 {
		unix.Shutdown(c.fd[f.dst], unix.SHUT_WR)
		return
	}
	l.release(c)
}

// fail aborts c after an error on one of its flows, so that both peers
// see it fail.
func (l *loop) fail(f *flow, err error) {
	c := f.c
	if !c.closed.Load() {
		l.p.log.Debug("connection failed", "backend", c.b.addr, "client_to_backend", f.in, "err", err)
	}
	l.abort(c, true)
}

// abort closes c, with RST on both sides when rst is set.
func (l *loop) abort(c *proxyConn, rst bool) {
	if c.state == stDone {
		return
	}
	if rst {
		lg := unix.Linger{Onoff: 1, Linger: 0}
		for _, fd := range c.fd {
			if fd >= 0 {
				unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &lg)
			}
		}
	}
	l.release(c)
}

// release closes c's sockets and forgets it.
func (l *loop) release(c *proxyConn) {
	if c.state == stDone {
		return
	}
	open := c.state == stOpen
	c.state = stDone
	c.closed.Store(true)
	for _, f := range []*flow{&c.up, &c.down} {
		if f.pipe.r >= 0 {
			// Bytes still in it are lost with the connection.
			unix.Close(f.pipe.r)
			unix.Close(f.pipe.w)
			f.pipe, f.piped = noPipe, 0
		}
		if f.pend != nil {
			l.p.bufs.Put(f.pend)
			f.pend = nil
		}
	}
	if fd := c.fd[sideClient]; fd >= 0 {
		unix.Close(fd)
		c.fd[sideClient] = -1
	}
	l.closeServer(c)
	c.reg = [2]uint32{}
	l.conns[c.slot] = nil
	l.free = append(l.free, c.slot)
	l.p.release(c, open)
}

// tune sets keepalive and TCP_USER_TIMEOUT on a connection that lived
// tuneAfter.
func (l *loop) tune(c *proxyConn) {
	if c.state != stOpen || c.closed.Load() || c.tuned {
		return
	}
	c.tuned = true
	p := l.p
	cfg := p.cfg.Load()
	if p.tuneAccepted.Load() {
		if err := setSockoptsFD(c.fd[sideClient], cfg); err != nil {
			p.log.Debug("socket options", "err", err)
		}
	}
	if err := setSockoptsFD(c.fd[sideServer], cfg); err != nil {
		p.log.Debug("socket options", "err", err)
	}
}

// timerEntry is a deadline of one connection.
type timerEntry struct {
	at  int64
	c   *proxyConn
	seq uint32
}

// timerQueue is a FIFO of deadlines. Its entries are pushed with the same
// delay (ConnectTimeout or tuneAfter), so the FIFO is in deadline order
// (but for a ConnectTimeout changed by a reload, which may make a few
// timeouts late by up to the difference).
type timerQueue struct {
	q    []timerEntry
	head int
}

func (t *timerQueue) push(e timerEntry) { t.q = append(t.q, e) }

func (t *timerQueue) peek() (timerEntry, bool) {
	if t.head == len(t.q) {
		return timerEntry{}, false
	}
	return t.q[t.head], true
}

func (t *timerQueue) pop() {
	t.q[t.head] = timerEntry{}
	t.head++
	switch {
	case t.head == len(t.q):
		t.q, t.head = t.q[:0], 0
	case t.head >= 1024 && t.head > len(t.q)/2:
		n := copy(t.q, t.q[t.head:])
		t.q, t.head = t.q[:n], 0
	}
}

// runTimers handles the deadlines that passed and arms the timer for the
// next.
func (l *loop) runTimers() {
	now := l.now
	for {
		e, ok := l.dialQ.peek()
		if !ok || e.at > now {
			break
		}
		l.dialQ.pop()
		if c := e.c; c.state == stDialing && c.dial.seq == e.seq && c.owner == nil && c.fd[sideServer] >= 0 {
			l.dialTimeout(c)
		}
	}
	for {
		e, ok := l.tuneQ.peek()
		if !ok || e.at > now {
			break
		}
		l.tuneQ.pop()
		l.tune(e.c)
	}
	for _, ls := range l.lns {
		if ls.retryAt != 0 && ls.retryAt <= now {
			ls.retryAt = 0
			l.acceptOn(ls)
		}
	}
	next := int64(0)
	if e, ok := l.dialQ.peek(); ok {
		next = e.at
	}
	if e, ok := l.tuneQ.peek(); ok && (next == 0 || e.at < next) {
		next = e.at
	}
	for _, ls := range l.lns {
		if ls.retryAt != 0 && (next == 0 || ls.retryAt < next) {
			next = ls.retryAt
		}
	}
	if next != 0 {
		l.armTimer(next)
	}
}

// armTimer makes sure the loop runs at or soon after at.
func (l *loop) armTimer(at int64) {
	if l.armedAt > l.now && l.armedAt <= at {
		return // an earlier wake-up is pending
	}
	at = max(at, l.now+int64(timerSlack))
	if l.armedAt > l.now && l.armedAt <= at {
		return
	}
	l.armedAt = at
	l.timer.Reset(time.Duration(at - l.now))
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
	var serr error
	err = rc.Control(func(fd uintptr) { serr = setSockoptsFD(int(fd), cfg) })
	if err != nil {
		return fmt.Errorf("lb: socket options: %w", err)
	}
	return serr
}

func setSockoptsFD(fd int, cfg *Config) error {
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
	for _, o := range opts[:n] {
		if e := unix.SetsockoptInt(fd, o.level, o.opt, o.v); e != nil {
			serr = errors.Join(serr, fmt.Errorf("lb: setsockopt %d/%d: %w", o.level, o.opt, e))
		}
	}
	return serr
}

// setNoDelay sets TCP_NODELAY on a listening socket, for accepted
// connections to inherit (as Go's accept would set it on each).
func setNoDelay(c syscall.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) })
	return errors.Join(err, serr)
}

// secs rounds d up to whole seconds, at least 1, as net.KeepAliveConfig
// does.
func secs(d time.Duration) int {
	return max(int((d+time.Second-1)/time.Second), 1)
}
