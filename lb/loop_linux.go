//go:build linux

package lb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
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
	pollFn func(uintptr) bool
	events []unix.EpollEvent
	now    int64 // UnixNano at the start of the current round
	regSeq uint32
	rsa    unix.RawSockaddrAny // accept4's peer address
	buf    buffer

	conns []*proxyConn // by slot
	free  []int32      // free slots
	load  atomic.Int64 // connections served, for the balance between loops
	peers []*loop      // the proxy's other loops

	queue   []*flow // flows with work left after their turn
	spare   []*flow
	pipes   []pipe // empty pipes for reuse
	lns     []*lnState
	backlog []*lnState // listeners with connections left after a batch

	dialQ   timerHeap  // connect timeouts and pauses between dial rounds
	tuneQ   timerQueue // delayed socket options
	timer   *time.Timer
	armedAt int64 // when timer fires, 0 if not armed

	mu        sync.Mutex
	tasks     []func()
	signalled bool // evfd written since the loop last took the tasks
	closed    bool // the loop has stopped: post refuses work
	// gone is closed with closed set: tasks posted before that may never
	// run, so whoever waits for one waits for gone too.
	gone chan struct{}

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
	l := &loop{p: p, epfd: epfd, evfd: evfd, events: make([]unix.EpollEvent, 256), gone: make(chan struct{})}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: tokWake}
	if err := epollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
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

// run serves lns and the loop's connections, with peers (the proxy's
// loops, this one included) to share new connections with, until stop. It
// is run by Serve.
func (l *loop) run(lns []*net.TCPListener, peers []*loop) {
	l.now = time.Now().UnixNano()
	for _, o := range peers {
		if o != l {
			l.peers = append(l.peers, o)
		}
	}
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
			cerr = epollCtl(l.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		})
		if err = errors.Join(err, cerr); err != nil {
			l.p.log.Error("listener: epoll_ctl", "addr", ln.Addr().String(), "err", err)
			continue
		}
		ls.active = true
	}
	l.pollFn = l.poll // one method value, not one per wake-up
	for !l.exit {
		if err := l.rc.Read(l.pollFn); err != nil {
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
		n, err := epollPoll(l.epfd, l.events)
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
		if side == sideServer && out { // writable, or failed
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
	rawRead(l.evfd, b[:])
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
	l.post(func() { l.exit = true })
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
	close(l.gone)
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
			epollCtl(l.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
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

// accepted admits a new client socket (limit, counters) and hands it to
// the least loaded loop: a loop accepts whatever arrives when it wakes, so
// without this a burst of long-lived connections could all land on one
// loop and one core.
func (l *loop) accepted(fd int) {
	p := l.p
	p.accepted.Add(1)
	limit := int64(p.cfg.Load().MaxConnections)
	if p.active.Add(1) > limit {
		p.active.Add(-1)
		rawClose(fd)
		p.limitReached(limit)
		return
	}
	p.connWG.Add(1)
	peer := addrPort(&l.rsa)
	// Keep it unless another loop is less loaded by more than a slack
	// that grows with the load: long-lived connections spread evenly,
	// while under a churn of short ones, where loads differ by a few at
	// any instant, most stay where they were accepted (a handoff costs a
	// wake-up of the other loop).
	to, least := l, l.load.Load()
	least -= least / 8
	for _, o := range l.peers {
		if n := o.load.Load(); n < least {
			to, least = o, n
		}
	}
	to.load.Add(1)
	if to == l {
		l.adopt(fd, peer)
		return
	}
	if !to.post(func() { to.adopt(fd, peer) }) {
		// Stopped: cannot happen while this loop accepts, but never
		// leak the socket or the counts.
		to.load.Add(-1)
		rawClose(fd)
		p.active.Add(-1)
		p.connWG.Done()
	}
}

// adopt starts serving an admitted client socket on this loop.
func (l *loop) adopt(fd int, peer netip.AddrPort) {
	p := l.p
	cfg := p.cfg.Load()
	c := &proxyConn{p: p, l: l, fd: [2]int{fd, -1}, peer: peer}
	c.up = flow{c: c, in: true, pipe: pipe{-1, -1}}
	c.down = flow{c: c, pipe: pipe{-1, -1}}
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
		setsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	// The client usually sent its first bytes (a TLS ClientHello, say)
	// with or right after the handshake: read them before dialling, so
	// that they leave with the backend's handshake (see connect). Read
	// before the epoll registration, which then reports only what comes
	// after.
	up := &c.up
	switch n, err := rawRead(fd, l.buf[:]); {
	case n > 0:
		up.pend = l.p.getBuf()
		up.plen = copy(up.pend[:], l.buf[:n])
		up.readable = n == bufSize
		up.bulk = up.readable
	case err == nil:
		up.eof = true
	case err != unix.EAGAIN:
		p.log.Debug("connection failed", "client", c.client(), "err", err)
		l.abort(c, true)
		return
	default:
		// Nothing yet: delayed ACKs (tcp(7) TCP_QUICKACK, which the
		// listener does not pass on), so that the ACK of the first
		// request rides on its response instead of a segment of its
		// own. (Bytes already here were ACKed on arrival; later
		// exchanges get delayed ACKs anyway once the kernel sees the
		// request/response pattern.)
		setsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUICKACK, 0)
	}
	if err := l.register(c, sideClient); err != nil {
		p.log.Error("proxy connection", "err", err)
		l.release(c)
		return
	}
	c.dial = p.newDialState(cfg, l.now)
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
	if err := epollCtl(l.epfd, unix.EPOLL_CTL_ADD, c.fd[side], &ev); err != nil {
		return fmt.Errorf("lb: epoll_ctl: %w", err)
	}
	return nil
}

// startDial tries the next backend for c; when every one failed in this
// round it pauses for the next round, or, with the budget spent, refuses
// the client.
func (l *loop) startDial(c *proxyConn) {
	p := l.p
	ds := c.dial
	for {
		i := ds.next(p.bal.Load())
		if i < 0 {
			l.roundFailed(c)
			return
		}
		if ds.round > 0 && ds.attemptTimeout(l.now) <= 0 {
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

// roundFailed handles a client that every backend failed in this round:
// while its DialBudget lasts (and the proxy is not stopping) it pauses,
// then nextRound tries them all again; otherwise it is refused.
func (l *loop) roundFailed(c *proxyConn) {
	p, ds := l.p, c.dial
	if len(ds.list) == 0 || p.closing.Load() {
		l.noBackend(c)
		return
	}
	pause, ok := ds.retryPause(l.now, rand.Int64N)
	if !ok {
		l.noBackend(c)
		return
	}
	if ds.round == 0 {
		p.dialWaited.Add(1)
	}
	ds.waiting = true
	ds.seq++
	at := l.now + int64(pause)
	l.dialQ.push(timerEntry{at: at, c: c, seq: ds.seq})
	l.armTimer(at)
}

// nextRound starts another round over the backends for a client that
// paused (roundFailed), with the backend set and health as they are now.
func (l *loop) nextRound(c *proxyConn) {
	ds := c.dial
	ds.waiting = false
	if l.p.closing.Load() {
		l.noBackend(c)
		return
	}
	ds.round++
	ds.errs = ds.errs[:0]
	ds.snapshot(l.p)
	l.startDial(c)
}

// connect starts a non-blocking connect to b, or, for a dial hook
// (Options.Dial) or a backend given by name, a Go dial in a goroutine.
// Either ends in connectDone (through the socket's first event) or
// dialFailed.
func (l *loop) connect(c *proxyConn, b *backend) error {
	p, ds := l.p, c.dial
	timeout := ds.attemptTimeout(l.now)
	ds.deadline = l.now + int64(timeout)
	if ds.attempts++; ds.attempts > 1 {
		p.dialRetries.Add(1)
	}
	if p.dialHook || !b.ap.IsValid() {
		seq := ds.seq
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
	family := unix.AF_INET
	if !b.ap.Addr().Is4() {
		family = unix.AF_INET6
	}
	fd, err := rawSocket(family)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	// As Go's dialer does: small messages leave at once.
	setsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if b.ap.Addr().Unmap().IsLoopback() {
		// Before connect, so that a pacing default never starts pacing
		// this socket (switching later leaves the pacing on).
		p.loopbackCongestion(fd, ds.cfg.LoopbackCongestionControl)
	}
	up := &c.up
	if up.plen > 0 {
		// Bytes are ready to go: let the kernel hold back the last ACK
		// of the handshake (tcp_rcv_synsent_state_process delays it in
		// "pingpong" mode) so that it rides on them, as HAProxy's
		// option tcp-smart-connect does. Without bytes to send the ACK
		// goes at once, for protocols where the server speaks first.
		setsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUICKACK, 0)
	}
	c.quickOff = up.plen > 0
	if err := rawConnect(fd, b); err != nil && err != unix.EINPROGRESS && err != unix.EINTR {
		rawClose(fd)
		return fmt.Errorf("connect: %w", err)
	}
	c.fd[sideServer] = fd
	if err := l.register(c, sideServer); err != nil {
		rawClose(fd)
		c.fd[sideServer] = -1
		return err
	}
	if up.plen > 0 {
		// Often (on loopback always) the handshake is complete by now:
		// send at once instead of waiting for the writable event.
		n, err := send(fd, up.pend[up.poff:up.plen], 0)
		switch {
		case n > 0:
			l.connected(c, b, n)
			return nil
		case err != unix.EAGAIN:
			l.closeServer(c)
			return fmt.Errorf("connect: %w", err)
		}
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
		if v, gerr := getsockoptInt(c.fd[sideServer], unix.SOL_SOCKET, unix.SO_ERROR); gerr == nil && v != 0 {
			err = unix.Errno(v)
		}
		l.closeServer(c)
		l.dialFailed(c, b, fmt.Errorf("connect: %w", err))
		l.startDial(c)
		return
	}
	l.connected(c, b, 0)
}

// dialTimeout ends a connect that took longer than its attempt's timeout.
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
			rawClose(fd)
		}
	}
	c.up.writable, c.down.readable, c.down.hup = false, false, false
}

// dialFailed counts a failed dial and marks b suspect (logged once per
// suspect period).
func (l *loop) dialFailed(c *proxyConn, b *backend, err error) {
	b.dialFailures.Add(1)
	if b.suspectSince.Swap(time.Now().UnixNano()) == 0 {
		l.p.log.Warn("backend suspect: dial failed", "backend", b.addr, "err", err)
	}
	c.dial.errs = append(c.dial.errs, fmt.Errorf("lb: dial %s: %w", b.addr, err))
}

// noBackend refuses a client that no backend would take, with RST.
func (l *loop) noBackend(c *proxyConn) {
	p, ds := l.p, c.dial
	p.noBackend.Add(1)
	err := errors.Join(ds.errs...)
	if len(ds.list) == 0 {
		err = errors.New("lb: no backends configured")
	} else if !p.closing.Load() {
		p.dialExhausted.Add(1)
	}
	p.log.Warn("no backend reachable: closing client", "client", c.client(), "err", err,
		"rounds", ds.round+1, "dials", ds.attempts, "waited_seconds", time.Duration(l.now-ds.start).Seconds())
	l.abort(c, true)
}

// connected starts proxying c over b. sent is how many of the client's
// first bytes connect already sent along with the handshake.
func (l *loop) connected(c *proxyConn, b *backend, sent int) {
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
	} else if b.removed.Load() && !b.draining.Load() {
		// The backend was removed while this dial was in flight: the
		// connection is drained like the ones it had then.
		p.retire(b)
	}
	at := l.now + int64(tuneAfter)
	l.tuneQ.push(timerEntry{at: at, c: c})
	l.armTimer(at)
	if !c.quickOff && c.owner == nil {
		// Delayed ACKs on this side too, from now on: the ACK of a
		// response rides on the next request, or on the FIN.
		setsockoptInt(c.fd[sideServer], unix.IPPROTO_TCP, unix.TCP_QUICKACK, 0)
	}
	if sent > 0 {
		up := &c.up
		up.writable = true
		up.poff += sent
		l.count(up, sent)
		if up.poff == up.plen {
			l.putBuf(up)
		}
	}
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
			n, err := send(c.fd[f.dst()], f.pend[f.poff:f.plen], 0)
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
				l.putBuf(f)
			}
			continue
		case f.piped > 0:
			if !f.writable {
				return
			}
			n, err := splice(f.pipe.r, c.fd[f.dst()], f.piped)
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
			n, err := splice(c.fd[f.src()], f.pipe.w, pipeSize)
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
		n, err := rawRead(c.fd[f.src()], l.buf[:])
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
		// When the source's FIN is in already (hup) and this read
		// did not fill the buffer, the next read finds the end:
		// MSG_MORE holds these bytes back for the FIN to ride on
		// (tcp_send_fin sets it on the last queued segment). The
		// shutdown or close that follows always pushes them.
		more := 0
		if f.hup && n < bufSize {
			more = unix.MSG_MORE
		}
		m, err := send(c.fd[f.dst()], l.buf[:n], more)
		if m > 0 {
			l.count(f, m)
		}
		if err != nil && err != unix.EAGAIN {
			l.fail(f, fmt.Errorf("lb: write: %w", err))
			return
		}
		if m < n {
			// The destination is full: keep the rest for later.
			f.pend = l.p.getBuf()
			f.poff, f.plen = 0, copy(f.pend[:], l.buf[m:n])
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

// getBuf takes a buffer from the pool.
func (p *Proxy) getBuf() *buffer {
	b, _ := p.bufs.Get().(*buffer)
	if b == nil {
		b = new(buffer)
	}
	return b
}

// putBuf gives f's buffer back to the pool.
func (l *loop) putBuf(f *flow) {
	l.p.bufs.Put(f.pend)
	f.pend, f.poff, f.plen = nil, 0, 0
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
		rawClose(f.pipe.r)
		rawClose(f.pipe.w)
	}
	f.pipe = pipe{-1, -1}
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
		rawShutdown(c.fd[f.dst()], unix.SHUT_WR)
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
		for _, fd := range c.fd {
			if fd >= 0 {
				setLingerZero(fd)
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
		l.putPipe(f)
		if f.pipe.r >= 0 {
			// Bytes still in it are lost with the connection.
			rawClose(f.pipe.r)
			rawClose(f.pipe.w)
			f.pipe, f.piped = pipe{-1, -1}, 0
		}
		if f.pend != nil {
			l.p.bufs.Put(f.pend)
			f.pend = nil
		}
	}
	if fd := c.fd[sideClient]; fd >= 0 {
		rawClose(fd)
		c.fd[sideClient] = -1
	}
	l.closeServer(c)
	c.reg = [2]uint32{}
	l.conns[c.slot] = nil
	l.free = append(l.free, c.slot)
	l.load.Add(-1)
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

// timerHeap is a min-heap of deadlines by at: connect timeouts and retry
// pauses have different delays.
type timerHeap struct{ q []timerEntry }

func (h *timerHeap) push(e timerEntry) {
	h.q = append(h.q, e)
	for i := len(h.q) - 1; i > 0; {
		up := (i - 1) / 2
		if h.q[up].at <= h.q[i].at {
			break
		}
		h.q[up], h.q[i] = h.q[i], h.q[up]
		i = up
	}
}

func (h *timerHeap) peek() (timerEntry, bool) {
	if len(h.q) == 0 {
		return timerEntry{}, false
	}
	return h.q[0], true
}

func (h *timerHeap) pop() {
	n := len(h.q) - 1
	h.q[0] = h.q[n]
	h.q[n] = timerEntry{}
	h.q = h.q[:n]
	for i := 0; ; {
		least, l, r := i, 2*i+1, 2*i+2
		if l < n && h.q[l].at < h.q[least].at {
			least = l
		}
		if r < n && h.q[r].at < h.q[least].at {
			least = r
		}
		if least == i {
			break
		}
		h.q[i], h.q[least] = h.q[least], h.q[i]
		i = least
	}
	if n == 0 && cap(h.q) > 1024 {
		h.q = nil // a burst's queue is not kept
	}
}

// timerQueue is a FIFO of deadlines. Its entries are pushed with the same
// delay (tuneAfter), so the FIFO is in deadline order.
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
		c := e.c
		if c.state != stDialing || c.dial.seq != e.seq {
			continue
		}
		switch {
		case c.dial.waiting:
			l.nextRound(c)
		case c.owner == nil && c.fd[sideServer] >= 0:
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
		if e := setsockoptInt(fd, o.level, o.opt, o.v); e != nil {
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
	err = rc.Control(func(fd uintptr) { serr = setsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) })
	return errors.Join(err, serr)
}

// secs rounds d up to whole seconds, at least 1, as net.KeepAliveConfig
// does.
func secs(d time.Duration) int {
	return max(int((d+time.Second-1)/time.Second), 1)
}

// closeAccepted closes those of conns whose client socket's local address
// is one of addrs (Proxy.CloseAccepted); it runs on the loop.
func (l *loop) closeAccepted(conns []*proxyConn, addrs []netip.Addr) int {
	n := 0
	for _, c := range conns {
		fd := c.fd[sideClient]
		if fd < 0 || c.closed.Load() {
			continue
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			continue
		}
		var local netip.Addr
		switch a := sa.(type) {
		case *unix.SockaddrInet4:
			local = netip.AddrFrom4(a.Addr)
		case *unix.SockaddrInet6:
			local = netip.AddrFrom16(a.Addr).Unmap()
		}
		// A connection redirected by NAT (nftables steering) was
		// accepted on a node address; conntrack knows the address the
		// client dialled.
		if !slices.Contains(addrs, local) && !slices.Contains(addrs, originalDst(fd, local.Is4())) {
			continue
		}
		if !c.closed.CompareAndSwap(false, true) {
			continue
		}
		l.abort(c, false)
		n++
	}
	return n
}
