package lb

import (
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// The data path.
//
// Connections are served by event loops (see loop_linux.go), as HAProxy
// serves them, not by goroutines: one loop per CPU, each owning an epoll
// set that holds the listening sockets and both sockets of every
// connection it proxies, and moving bytes between them with non-blocking
// system calls on the raw file descriptors (raw_linux.go: made without
// the runtime's syscall bookkeeping, as none of them blocks). No
// goroutine, no Go net.Conn and no Go netpoller registration exists per
// connection, so a new connection costs only the system calls the work
// needs (accept4, a read, socket, connect, two epoll_ctl, a few
// setsockopt, reads, writes, shutdown and two closes), and a loop handles
// every connection that is ready in one pass with no goroutine switches.
// A loop waits in Go's netpoller on its epoll file descriptor (epoll sets
// nest), so an idle loop holds no thread. Whichever loop wakes first
// accepts; it keeps the connection unless another loop serves fewer by
// more than a slack that grows with the numbers.
//
// Fewer TCP segments per connection: on loopback each one costs as much
// kernel work as a system call or two. The client's first bytes are read
// right after accept; when there are some, the backend socket turns
// TCP_QUICKACK off before connect so that the handshake's last ACK rides
// on them (HAProxy's tcp-smart-connect), and they are sent as soon as
// connect returns. Both sockets run with delayed ACKs (TCP_QUICKACK off;
// on the client side only if its first bytes had not arrived at accept,
// as the kernel ACKed those already), so that the ACK of a request rides
// on its response. Bytes read after
// the source's FIN arrived go out with MSG_MORE, so that the FIN passed on
// by the shutdown that follows shares their segment. A request/response
// connection through nlb takes about 16 segments where HAProxy's take 20.
//
// Each direction of a connection (a flow) runs in one of two modes:
//
//   - messages (the start, and kube-apiserver's usual traffic): read(2)
//     once into the loop's 16 KiB buffer and write(2) it to the other
//     side. Two system calls per message, and a short read means the
//     socket is empty (epoll reports the next arrival), so no read is
//     wasted on EAGAIN. Bytes the destination cannot take are kept in a
//     buffer from the proxy's pool until it can; reading that flow stops
//     meanwhile (backpressure).
//   - bulk: a read that fills the whole buffer means a transfer is under
//     way; the flow then splices (splice(2)) from the source socket into a
//     pipe and from the pipe into the destination socket, so the payload
//     never enters user space. The pipe comes from the loop's small pool
//     and goes back as soon as it is empty and the source has nothing
//     more; a splice that moves less than the buffer size switches the
//     flow back to messages.
//
// Bytes are counted from the read, write and splice results.
//
// An idle proxied connection therefore holds two sockets, two epoll
// entries and one small struct: no goroutine, no pipe, no buffer.
//
// Half-close: a source's EOF is passed on with shutdown(SHUT_WR) once its
// bytes are delivered; when both flows have ended the connection closes
// both sockets (a FIN, with no shutdown(2) of its own for the second
// flow). An error on either side aborts the whole connection with RST on
// both, so that each peer sees the other fail.

// bufSize is the message-mode buffer. A read that fills it switches the
// flow to splicing.
const bufSize = 16 << 10

// buffer is one message-mode buffer. Each loop has one for its reads;
// bytes a destination could not take wait in one from the proxy's pool.
type buffer = [bufSize]byte

// Tuning of the loops.
const (
	// pipeSize is the capacity asked for each splice pipe (F_SETPIPE_SZ),
	// as Go's own splice does. A larger pipe moves more per splice pair.
	pipeSize = 1 << 20
	// maxFreePipes bounds the empty pipes a loop keeps for reuse.
	maxFreePipes = 16
	// acceptBatch bounds the connections a loop accepts in one go before
	// it serves its other events.
	acceptBatch = 64
	// msgBudget and bulkBudget bound the reads (or splice pairs) one flow
	// makes in one turn before the loop serves others; a flow with more to
	// do is queued for the next turn. One splice pair moves up to
	// pipeSize: with more per turn, a loop with a few bulk flows (a
	// large list or watch) took tens of milliseconds per round, and new
	// connections and small requests waited that long (bench-proxy:
	// starting 8 iperf3 clients under bulk load, 1.90 s with 8 pairs per
	// turn, 0.31 s with 1, HAProxy 0.43 s).
	msgBudget  = 16
	bulkBudget = 1
	// timerSlack is the granularity of the loops' connect timeouts and
	// delayed socket options: a loop's timer fires at most this often.
	timerSlack = 5 * time.Millisecond
)

// connState is where a proxied connection is in its life.
type connState uint8

const (
	stDialing connState = iota // client accepted, backend being dialled
	stOpen                     // both sides connected: flows run
	stDone                     // released
)

// Sides of a proxied connection.
const (
	sideClient = 0
	sideServer = 1
)

// proxyConn is one proxied connection: the client's socket, the backend's
// socket, the backend it went to, and its two flows. Every field but
// closed and lastActive belongs to the connection's loop.
//
// It is most of what an idle connection costs the proxy's memory, so its
// fields are packed to stay within the heap's 256-byte size class
// (TestProxyConnSize).
type proxyConn struct {
	p     *Proxy
	l     *loop
	slot  int32 // index in the loop's table
	state connState
	open  uint8 // flows not yet finished
	tuned bool  // keepalive and TCP_USER_TIMEOUT set on the backend side
	// quickOff: TCP_QUICKACK was turned off on the backend socket before
	// its connect.
	quickOff bool
	reg      [2]uint32 // epoll registration ids of the two sockets
	fd       [2]int    // client and backend sockets, -1 when not open
	// owner owns fd[sideServer] when the backend was dialled through Go
	// (Options.Dial, or a backend given by host name); closing it closes
	// the socket.
	owner *net.TCPConn
	peer  netip.AddrPort // the client, for logs
	b     *backend
	up    flow // client → backend
	down  flow // backend → client
	dial  *dialState

	closed     atomic.Bool  // shut or closed: no more data moves
	lastActive atomic.Int64 // UnixNano of the last transfer
}

// flow copies one way. It belongs to its connection's loop.
type flow struct {
	c        *proxyConn
	in       bool // client → backend: src is sideClient, dst sideServer
	readable bool // src may have data (edge-triggered: set by events)
	writable bool // dst may take data
	hup      bool // src reported a hang-up: read on to the end
	bulk     bool // splicing: the last read filled the buffer
	eof      bool // src reached its end
	done     bool // finished
	queued   bool // in the loop's queue for another turn
	pend     *buffer
	poff     int // pend[poff:plen] waits for dst
	plen     int
	pipe     pipe
	piped    int // bytes in the pipe
}

// src is the side the flow reads.
func (f *flow) src() int {
	if f.in {
		return sideClient
	}
	return sideServer
}

// dst is the side the flow writes.
func (f *flow) dst() int { return 1 - f.src() }

// pipe is one splice pipe, its read and write ends; r < 0 when none.
type pipe struct{ r, w int }

// dialState is the search for a backend of one new connection: rounds over
// the backends, each in the order the balancer gives, eligible backends
// first, then the rest, each with ConnectTimeout. When all failed, later
// rounds follow while the client's DialBudget lasts (see Config.DialBudget
// and roundFailed).
type dialState struct {
	cfg      *Config
	list     []*backend
	eligible []bool
	tried    []bool
	eligBuf  [16]bool
	tryBuf   [16]bool
	any      bool // some backend is eligible
	pass     int
	cur      int // index being tried, -1 before the first
	seq      uint32
	deadline int64
	errs     []error // of the current round
	start    int64   // UnixNano of the accept: the budget counts from it
	round    int     // 0 for the first round over the backends
	attempts int     // dials started
	waiting  bool    // pausing before the next round
}

// newDialState snapshots the backends for one connection, and the
// fail-open state as dialBackend used to.
func (p *Proxy) newDialState(cfg *Config, now int64) *dialState {
	ds := &dialState{cfg: cfg, start: now}
	if n := ds.snapshot(p); n > 0 {
		p.setFailOpen(!ds.any, n)
	}
	return ds
}

// snapshot starts a round over the current backends and their
// eligibility, and returns how many there are.
func (ds *dialState) snapshot(p *Proxy) int {
	list := p.backends.Load().list
	n := len(list)
	ds.list, ds.cur, ds.pass, ds.any = list, -1, 0, false
	ds.eligible, ds.tried = ds.eligBuf[:0], ds.tryBuf[:0]
	if n > len(ds.eligBuf) {
		ds.eligible, ds.tried = make([]bool, 0, n), make([]bool, 0, n)
	}
	ds.eligible, ds.tried = ds.eligible[:n], ds.tried[:n]
	now, expiry := time.Now(), p.suspectExpiry(ds.cfg)
	for i, b := range list {
		ds.eligible[i] = b.eligible(now, expiry)
		ds.tried[i] = false
		ds.any = ds.any || ds.eligible[i]
	}
	return n
}

// maxRetryPause caps the pause between two rounds of a client's dial.
const maxRetryPause = time.Second

// budgetEnd is when the client's DialBudget runs out (UnixNano).
func (ds *dialState) budgetEnd() int64 { return ds.start + int64(ds.cfg.DialBudget) }

// attemptTimeout is how long the next dial may take, started at now:
// ConnectTimeout, and after the first round no longer than what is left of
// the budget. Attempts stay short in every round: a dropped SYN is better
// answered by a fresh one soon (the next round) than by the kernel's
// retransmission after 1 s, so a client to a backend whose accept queue is
// full gets several chances a second, and a dead host in the list still
// costs only ConnectTimeout per round.
func (ds *dialState) attemptTimeout(now int64) time.Duration {
	ct := time.Duration(ds.cfg.ConnectTimeout)
	if ds.round == 0 {
		return ct
	}
	return max(min(ct, time.Duration(ds.budgetEnd()-now)), 0)
}

// retryPause returns how long to pause, from now, before the next round,
// and whether that round fits in the budget (room for one whole attempt
// after the pause). The pause is random in [d/2, d], d = ConnectTimeout up
// to maxRetryPause: the SYNs of a burst of clients that all failed
// together spread out instead of finding a full accept queue again all at
// once, and backends that refused at once are not hammered.
func (ds *dialState) retryPause(now int64, rand func(n int64) int64) (time.Duration, bool) {
	ct := time.Duration(ds.cfg.ConnectTimeout)
	left := time.Duration(ds.budgetEnd() - now)
	if left < ct {
		return 0, false
	}
	d := min(ct, maxRetryPause)
	pause := d/2 + time.Duration(rand(int64(d/2)+1))
	return min(pause, left-ct), true
}

// next returns the index of the next backend to try, or -1 when every one
// was tried: eligible backends (healthy, not suspect) first in balancer
// order; when none is eligible, every known backend (fail-open); then, as
// a last resort, the ineligible ones too, so that a client is refused only
// when no backend answers at all.
func (ds *dialState) next(bal *balancer) int {
	n := len(ds.list)
	load := func(i int) int64 { return ds.list[i].active.Load() }
	for ds.pass < 2 {
		pass := ds.pass
		skip := func(i int) bool { return ds.tried[i] || (pass == 0 && ds.any && !ds.eligible[i]) }
		var i int
		if ds.cur < 0 {
			i = bal.first(n, skip, load)
		} else {
			i = bal.retry(ds.cur, n, skip, load)
		}
		if i >= 0 {
			ds.cur, ds.tried[i] = i, true
			ds.seq++
			return i
		}
		ds.pass, ds.cur = ds.pass+1, -1
	}
	return -1
}

// touch records activity for the idle timeout.
func (c *proxyConn) touch(now int64) { c.lastActive.Store(now) }

// shut closes both sides from any goroutine, with RST when rst is set (so
// that a peer sees the other side fail rather than a clean end of stream)
// and FIN otherwise (drain, idle timeout, shutdown). The loop does the
// closing. It reports whether this call closed the connection.
func (c *proxyConn) shut(rst bool) bool {
	if !c.closed.CompareAndSwap(false, true) {
		return false
	}
	c.l.post(func() { c.l.abort(c, rst) })
	return true
}

// close closes the connection gracefully (FIN) and reports whether this
// call closed it.
func (c *proxyConn) close() bool { return c.shut(false) }

// client returns the client's address for logs.
func (c *proxyConn) client() string {
	if !c.peer.IsValid() {
		return "unknown"
	}
	return c.peer.String()
}
