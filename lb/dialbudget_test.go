//go:build linux

package lb

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// slowAcceptServer is a loopback backend with a listen backlog of 1 that
// accepts one connection per interval, then answers each with "ok\n" and
// echoes: a busy API server's accept queue in miniature. While its queue
// is full the kernel drops new SYNs.
func slowAcceptServer(t *testing.T, interval time.Duration) (addr string, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = unix.Listen(int(fd), 1) }); err != nil || lerr != nil {
		t.Fatal(err, lerr)
	}
	accepted = new(atomic.Int64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				io.WriteString(c, "ok\n")
				io.Copy(c, c)
			})
			time.Sleep(interval) // the throttle: not a wait for an event
		}
	})
	return ln.Addr().String(), accepted
}

// TestDialBudgetBurst: 200 clients at once through the proxy to one
// backend that accepts slowly behind a backlog of 1. Most first SYNs find
// the accept queue full and are dropped, so the first 250 ms attempts
// time out; within the dial budget the clients wait and try again (spread
// out by the random pauses) until every one is served. Before the budget
// existed, all but a handful were closed with "no backend reachable".
func TestDialBudgetBurst(t *testing.T) {
	const clients = 200
	backend, accepted := slowAcceptServer(t, 2*time.Millisecond)
	// A generous budget keeps the test independent of the machine's
	// load; the default (3 s) is measured in bench/.
	p := startProxy(t, Config{Backends: []string{backend}, DialBudget: Duration(time.Minute)}, Options{})

	var wg sync.WaitGroup
	errs := make(chan error, clients)
	start := make(chan struct{})
	for i := range clients {
		wg.Go(func() {
			<-start
			c, err := net.DialTimeout("tcp", p.addr, time.Minute)
			if err != nil {
				errs <- fmt.Errorf("client %d: dial: %w", i, err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(2 * time.Minute))
			buf := make([]byte, 3)
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ok\n" {
				errs <- fmt.Errorf("client %d: not served: %q %v", i, buf, err)
				return
			}
			if err := roundTrip(c, "burst"); err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	var failed []error
	for err := range errs {
		failed = append(failed, err)
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d clients failed; first: %v", len(failed), clients, errors.Join(failed[:min(3, len(failed))]...))
	}
	nb, ex, waited, retries := p.noBackend.Load(), p.dialExhausted.Load(), p.dialWaited.Load(), p.dialRetries.Load()
	t.Logf("backend accepted %d; clients that waited %d, retries %d, budget exhausted %d, no backend %d",
		accepted.Load(), waited, retries, ex, nb)
	if nb != 0 || ex != 0 {
		t.Errorf("no_backend_total %d, dial_budget_exhausted_total %d; want 0", nb, ex)
	}
	if got := backendStatus(p.Proxy, backend).Total; got != clients {
		t.Errorf("backend took %d proxied connections, want %d", got, clients)
	}
}

// TestDialBudgetSkipsDeadHost: a host that never answers (its SYNs are
// dropped) beside a live one costs each client at most one short attempt
// in the first round: every client is served by the live backend and none
// has to wait for another round.
func TestDialBudgetSkipsDeadHost(t *testing.T) {
	const clients = 20
	hole, live := fullListener(t), echoServer(t)
	p := startProxy(t, Config{Backends: []string{hole, live}}, Options{}) // default timeouts
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Errorf("client %d: %v", i, err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Minute))
			if err := roundTrip(c, fmt.Sprint("x", i)); err != nil {
				t.Errorf("client %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	hs, ls := backendStatus(p.Proxy, hole), backendStatus(p.Proxy, live)
	if ls.Total != clients || hs.Total != 0 {
		t.Errorf("live backend took %d, dead one %d; want %d and 0", ls.Total, hs.Total, clients)
	}
	if hs.DialFailures == 0 || !hs.Suspect {
		t.Errorf("dead backend %+v: want suspect with dial failures", hs)
	}
	if w, r := p.dialWaited.Load(), p.dialRetries.Load(); w != 0 || r != hs.DialFailures {
		t.Errorf("dial_waited_total %d, dial_retries_total %d; want 0 and one retry per dead-host dial (%d)", w, r, hs.DialFailures)
	}
}

// TestDialBudgetExhausted: with only a dead host, a client is refused
// once its budget is spent, after more than one round, and counted.
func TestDialBudgetExhausted(t *testing.T) {
	hole := fullListener(t)
	p := startProxy(t, Config{Backends: []string{hole}, DialBudget: Duration(time.Second)}, Options{})
	c := dial(t, p.addr)
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read succeeded with the only backend dead")
	}
	waitFor(t, "the refusal to be counted", func() bool { return p.noBackend.Load() == 1 })
	if w, ex, r := p.dialWaited.Load(), p.dialExhausted.Load(), p.dialRetries.Load(); w != 1 || ex != 1 || r == 0 {
		t.Errorf("dial_waited_total %d, dial_budget_exhausted_total %d, dial_retries_total %d; want 1, 1, >0", w, ex, r)
	}
	if st := backendStatus(p.Proxy, hole); st.DialFailures != p.dialRetries.Load()+1 {
		t.Errorf("dead backend dialled %d times, want the retries + 1 = %d", st.DialFailures, p.dialRetries.Load()+1)
	}
}

// TestDialBudgetBackendComesBack: a client that arrives while the only
// backend refuses (restarting) waits and is served once it listens again.
func TestDialBudgetBackendComesBack(t *testing.T) {
	addr := closedAddr(t)
	p := startProxy(t, Config{Backends: []string{addr}, DialBudget: Duration(time.Minute)}, Options{})
	c := dial(t, p.addr)
	waitFor(t, "a refused dial", func() bool { return backendStatus(p.Proxy, addr).DialFailures > 0 })
	back := serve(t, addr, func(c *net.TCPConn) { io.Copy(c, c) })
	if back != addr {
		t.Fatalf("listening on %s, want %s", back, addr)
	}
	if err := roundTrip(c, "back"); err != nil {
		t.Fatalf("client not served after the backend came back: %v", err)
	}
	if w, nb := p.dialWaited.Load(), p.noBackend.Load(); w != 1 || nb != 0 {
		t.Errorf("dial_waited_total %d, no_backend_total %d; want 1, 0", w, nb)
	}
}

// TestDialRounds: the attempt timeouts and pauses of a client's rounds.
func TestDialRounds(t *testing.T) {
	const ms = time.Millisecond
	cfg := &Config{ConnectTimeout: Duration(250 * ms), DialBudget: Duration(3 * time.Second)}
	ds := &dialState{cfg: cfg, start: 0}
	at := func(d time.Duration) int64 { return int64(d) }
	lo := func(int64) int64 { return 0 }
	hi := func(n int64) int64 { return n - 1 }
	for _, tc := range []struct {
		round          int
		now            time.Duration
		timeout        time.Duration
		pauseLo, pause time.Duration // with the lowest and highest random draw
		ok             bool
	}{
		{0, 0, 250 * ms, 125 * ms, 250 * ms, true},
		{0, 2900 * ms, 250 * ms, 0, 0, false},              // the first round runs whole, then no room
		{1, 400 * ms, 250 * ms, 125 * ms, 250 * ms, true},  // attempts stay short
		{7, 2600 * ms, 250 * ms, 125 * ms, 150 * ms, true}, // the pause leaves room for one attempt
		{8, 2800 * ms, 200 * ms, 0, 0, false},              // less than connectTimeout left: no new round
		{9, 3000 * ms, 0, 0, 0, false},                     // spent
	} {
		ds.round = tc.round
		if got := ds.attemptTimeout(at(tc.now)); got != tc.timeout {
			t.Errorf("round %d at %v: attempt timeout %v, want %v", tc.round, tc.now, got, tc.timeout)
		}
		p1, ok1 := ds.retryPause(at(tc.now), lo)
		p2, ok2 := ds.retryPause(at(tc.now), hi)
		if ok1 != tc.ok || ok2 != tc.ok || (tc.ok && (p1 != tc.pauseLo || p2 != tc.pause)) {
			t.Errorf("round %d at %v: pause %v..%v %v %v, want %v..%v %v", tc.round, tc.now, p1, p2, ok1, ok2, tc.pauseLo, tc.pause, tc.ok)
		}
	}
}

// TestTimerHeap: deadlines of different delays come out in order.
func TestTimerHeap(t *testing.T) {
	var h timerHeap
	ats := []int64{50, 10, 40, 10, 30, 90, 20, 60, 0, 70}
	for _, at := range ats {
		h.push(timerEntry{at: at})
	}
	var got []int64
	for {
		e, ok := h.peek()
		if !ok {
			break
		}
		h.pop()
		got = append(got, e.at)
	}
	if fmt.Sprint(got) != "[0 10 10 20 30 40 50 60 70 90]" {
		t.Errorf("popped %v", got)
	}
}
