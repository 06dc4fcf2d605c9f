package lb

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// The data path.
//
// Go splices TCP to TCP when io.Copy reaches (*net.TCPConn).ReadFrom with a
// bare *net.TCPConn source, or an *io.LimitedReader around one. But
// poll.Splice holds a 1 MiB pipe for as long as one io.Copy runs, so the
// usual io.Copy(dst, src) pins two pipes per connection for its whole life,
// and two goroutines sit parked per connection even when it is idle. And
// splicing a 64-byte request costs two splice calls and a pipe where one
// read and one write would do (HAProxy's splice-auto makes the same call).
//
// Here each direction of a connection runs in one of two modes:
//
//   - messages (the start, and kube-apiserver's usual traffic): park in
//     Go's netpoller until the source is readable, holding no buffer and no
//     pipe; then read(2) once into a 16 KiB buffer taken from the proxy's
//     pool inside the readiness callback and write(2) it to the other side,
//     and give the buffer back. Three system calls per message (read, write,
//     and the read that finds the socket empty), as in HAProxy.
//   - bulk: a read that fills the whole buffer means a transfer is under
//     way; the direction then runs io.Copy(dst, &io.LimitedReader{R: src})
//     between the bare connections, which Go splices, until the source goes
//     quiet for parkAfter (the read deadline ends the copy; Go's splice
//     empties its pipe first, so nothing is lost) or hits EOF. The pipe
//     from Go's pool is held only during the transfer.
//
// Bytes are counted from the read, write and io.Copy results.
//
// A direction that sees no data for parkAfter stops its goroutine and parks
// its socket in the proxy's own epoll set (see parker); the socket turning
// readable starts a new goroutine. An idle proxied connection therefore
// holds two sockets, a small struct and two epoll entries: no goroutine, no
// pipe, no buffer.

// bufSize is the message-mode buffer. A read that fills it switches the
// direction to splicing.
const bufSize = 16 << 10

// buffer is one message-mode buffer of the proxy's pool.
type buffer = [bufSize]byte

// spliceAll is the LimitedReader budget of a bulk copy: in effect no
// limit, the copy ends on EOF, error or the read deadline.
const spliceAll = 1 << 62

// parkAfter is how long a direction waits in Go's netpoller before it gives
// up its goroutine. Waking a parked direction costs an epoll_ctl and a
// goroutine start, at most 1/parkAfter times a second per direction; a
// direction waiting in the netpoller costs its goroutine stack. A short
// wait keeps that cost bounded when thousands of clients connect at once
// (kube-apiserver restarts, reconnect storms): the stacks of a burst are
// released within parkAfter, not held for seconds.
const parkAfter = 250 * time.Millisecond

// proxyConn is one proxied connection: two bare TCP connections, the
// backend it went to, and its two directions.
type proxyConn struct {
	p              *Proxy
	client, server *net.TCPConn
	b              *backend
	up, down       direction    // client → backend, backend → client
	pending        atomic.Int32 // directions not yet finished
	lastActive     atomic.Int64 // UnixNano of the last burst
	closed         atomic.Bool
	tuneTimer      *time.Timer // sets socket options at tuneAfter
}

// direction copies one way. Its fields other than tok belong to whichever
// goroutine runs it; tok is guarded by the parker's lock.
type direction struct {
	pc         *proxyConn
	dst, src   *net.TCPConn
	in         bool // client → backend
	bulk       bool // splicing: the last read filled the buffer
	w          waiter
	lr         io.LimitedReader
	deadline   int64  // UnixNano of src's read deadline, 0 when unset
	registered bool   // src was added to the parker's epoll set
	tok        uint32 // parker token while parked
}

func (p *Proxy) newProxyConn(client, server *net.TCPConn, b *backend) (*proxyConn, error) {
	pc := &proxyConn{p: p, client: client, server: server, b: b}
	pc.up = direction{pc: pc, dst: server, src: client, in: true}
	pc.down = direction{pc: pc, dst: client, src: server}
	pc.up.lr.R, pc.down.lr.R = client, server
	if err := errors.Join(pc.up.w.init(client, &p.bufs), pc.down.w.init(server, &p.bufs)); err != nil {
		return nil, err
	}
	pc.pending.Store(2)
	pc.touch(time.Now().UnixNano())
	return pc, nil
}

func (c *proxyConn) touch(now int64) { c.lastActive.Store(now) }

// run moves bytes until EOF, an error, or it parks.
func (d *direction) run() {
	p := d.pc.p
	for {
		var n int64
		var err error
		if d.bulk {
			n, err = d.splice(p)
		} else {
			n, err = d.message(p)
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			if n > 0 {
				continue // a long transfer outlived the deadline: go on
			}
			d.bulk = false
			// Quiet for parkAfter: give up the goroutine.
			if p.parker == nil {
				continue
			}
			if perr := p.parker.park(d); perr == nil {
				return
			} else if d.pc.closed.Load() {
				d.finish(perr)
				return
			}
		case errors.Is(err, io.EOF):
			d.finish(nil)
			return
		case err != nil:
			d.finish(err)
			return
		}
	}
}

// message waits for the source to be readable, reads once into a pooled
// buffer and writes what it read. A full buffer switches d to bulk. It
// returns io.EOF at the end of the source's stream.
func (d *direction) message(p *Proxy) (int64, error) {
	d.refreshDeadline(p)
	n, err := d.w.wait()
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, io.EOF
	}
	buf := d.w.take()
	m, err := d.dst.Write(buf[:n])
	p.bufs.Put(buf)
	if m > 0 {
		d.count(int64(m))
	}
	if err != nil {
		return int64(m), fmt.Errorf("lb: write: %w", err)
	}
	d.bulk = n == bufSize
	return int64(m), nil
}

// splice copies with io.Copy between the bare connections until EOF, an
// error or the read deadline. It returns io.EOF at the end of the source's
// stream.
func (d *direction) splice(p *Proxy) (int64, error) {
	d.refreshDeadline(p)
	d.lr.N = spliceAll
	m, err := p.copyFn(d.dst, &d.lr)
	if m > 0 {
		d.count(m)
	}
	if err == nil && d.lr.N > 0 {
		return m, io.EOF // io.Copy ended without an error: EOF
	}
	return m, err
}

// refreshDeadline refreshes the read deadline that bounds a wait (lazily,
// at most about twice per parkAfter); it is what makes a quiet direction
// park, and a quiet bulk copy give its pipe back.
func (d *direction) refreshDeadline(p *Proxy) {
	now := time.Now().UnixNano()
	if d.deadline-now < int64(p.parkAfter/2) {
		d.deadline = now + int64(p.parkAfter)
		d.src.SetReadDeadline(time.Unix(0, d.deadline))
	}
}

func (d *direction) count(n int64) {
	pc, p := d.pc, d.pc.p
	pc.touch(time.Now().UnixNano())
	if d.in {
		pc.b.bytesIn.Add(uint64(n))
		p.bytesIn.Add(uint64(n))
	} else {
		pc.b.bytesOut.Add(uint64(n))
		p.bytesOut.Add(uint64(n))
	}
}

// finish ends d: EOF passes the half-close on, an error aborts the whole
// connection so that both peers see it fail.
func (d *direction) finish(err error) {
	pc := d.pc
	if err != nil {
		if !pc.closed.Load() {
			pc.p.log.Debug("connection failed", "backend", pc.b.addr, "client_to_backend", d.in, "err", err)
		}
		pc.shut(true)
	} else if pc.pending.Load() > 1 {
		d.dst.CloseWrite()
	}
	// else the other direction has finished: release closes both sockets,
	// which sends the FIN without a shutdown(2) of its own.
	pc.done()
}

// done counts one finished direction; the last one releases the connection.
func (c *proxyConn) done() {
	if c.pending.Add(-1) == 0 {
		c.p.release(c)
	}
}

// shut closes both sides, with RST when rst is set (so that a peer sees
// the other side fail rather than a clean end of stream) and FIN otherwise
// (drain, idle timeout, shutdown). Parked directions are finished here, as
// their sockets will never turn readable again. It reports whether this
// call closed the connection.
func (c *proxyConn) shut(rst bool) bool {
	if !c.closed.CompareAndSwap(false, true) {
		return false
	}
	if rst {
		c.client.SetLinger(0)
		c.server.SetLinger(0)
	}
	if pk := c.p.parker; pk != nil {
		for _, d := range []*direction{&c.up, &c.down} {
			if pk.unpark(d) {
				defer c.done()
			}
		}
	}
	c.client.Close()
	c.server.Close()
	return true
}

// close closes the connection gracefully (FIN) and reports whether this
// call closed it.
func (c *proxyConn) close() bool { return c.shut(false) }

// ioCopy is the production copy of one burst: io.Copy from a LimitedReader
// over one bare connection to the other bare connection, which Go splices.
func ioCopy(dst *net.TCPConn, lr *io.LimitedReader) (int64, error) {
	return io.Copy(dst, lr)
}
