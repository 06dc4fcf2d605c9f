package lb

import (
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"testing"
	"time"
)

// TestDrainRemovedStaggered: when a working backend is removed, its
// connections are closed after DrainPeriod spread over DrainStagger, not
// all at once (so that its clients do not reconnect in one stampede), and
// every one of them is closed in the end. The check is on the spread of
// the close times, never on how fast anything happens.
func TestDrainRemovedStaggered(t *testing.T) {
	const (
		conns  = 8
		spread = 100 * time.Millisecond // the closes must be at least this far apart overall
		bound  = 10 * time.Second       // every connection closed within this
	)
	a, b := echoServer(t), echoServer(t)
	cfg := Config{Backends: []string{a}, DrainPeriod: Duration(50 * time.Millisecond), DrainStagger: Duration(2 * time.Second)}
	p := startProxy(t, cfg, Options{})
	var cs []*net.TCPConn
	for range conns {
		c := dial(t, p.addr)
		if err := roundTrip(c, "hold"); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	if st := backendStatus(p.Proxy, a); st.Active != conns {
		t.Fatalf("backend a: %+v, want %d active", st, conns)
	}

	type closeEvent struct {
		i   int
		at  time.Time
		err error
	}
	closed := make(chan closeEvent, conns)
	deadline := time.Now().Add(bound)
	for i, c := range cs {
		c.SetReadDeadline(deadline)
		go func() {
			// The drain closes with a FIN: the client reads EOF (or a
			// reset, should the kernel turn it into one).
			_, err := io.Copy(io.Discard, c)
			closed <- closeEvent{i, time.Now(), err}
		}()
	}

	p.SetBackends([]string{b})
	if st := backendStatus(p.Proxy, a); !st.Removed || st.Active != conns {
		t.Errorf("removed backend a right after removal: %+v, want removed with %d active", st, conns)
	}
	// A new client goes to b meanwhile.
	if err := roundTrip(dial(t, p.addr), "new"); err != nil {
		t.Fatal(err)
	}
	if st := backendStatus(p.Proxy, b); st.Total != 1 {
		t.Errorf("backend b: %+v, want the new connection", st)
	}

	var times []time.Time
	for range conns {
		ev := <-closed // each reader ends by the deadline at the latest
		if errors.Is(ev.err, os.ErrDeadlineExceeded) {
			t.Fatalf("connection %d still open %v after the removal (drain period 50ms, stagger 2s)", ev.i, bound)
		}
		times = append(times, ev.at)
	}
	slices.SortFunc(times, func(x, y time.Time) int { return x.Compare(y) })
	var gaps []time.Duration
	for i := 1; i < len(times); i++ {
		gaps = append(gaps, times[i].Sub(times[i-1]).Round(time.Millisecond))
	}
	t.Logf("gaps between closes: %v", gaps)
	if d := times[len(times)-1].Sub(times[0]); d < spread {
		t.Errorf("all %d connections closed within %v of each other: the drain did not stagger the closes over 2s (gaps %v)", conns, d, gaps)
	}
	waitFor(t, "removed backend forgotten", func() bool { return backendStatus(p.Proxy, a).Address == "" })
	waitFor(t, "drains counted", func() bool { return p.drained.Load() == conns })
}
