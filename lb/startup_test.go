package lb

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// hangBound bounds calls that must return promptly: a safety limit against
// a hang, not a timing assertion.
const hangBound = 30 * time.Second

// returns runs fn and fails the test if it has not returned within
// hangBound.
func returns(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(hangBound):
		t.Fatalf("%s did not return (hung)", what)
	}
}

// TestShutdownAfterFailedStart: a command whose start fails after Listen
// (its admin port is taken, say) calls Shutdown on a proxy whose event
// loops never ran. Shutdown must return, with or without a deadline, and
// the listeners must be released; a Serve after it returns too.
func TestShutdownAfterFailedStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"no deadline", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Second)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(Config{Listen: []string{"127.0.0.1:0"}, Backends: []string{closedAddr(t)}}, Options{Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Listen(context.Background()); err != nil {
				t.Fatal(err)
			}
			addr := p.Addrs()[0].String()
			ctx, cancel := tc.ctx()
			defer cancel()
			returns(t, "Shutdown of a proxy that never served", func() {
				if err := p.Shutdown(ctx); err != nil {
					t.Errorf("Shutdown: %v", err)
				}
			})
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("listen address not released by Shutdown: %v", err)
			}
			ln.Close()
			returns(t, "a second Shutdown", func() { p.Shutdown(context.Background()) })
			returns(t, "Serve after Shutdown", func() { p.Serve(context.Background()) })
		})
	}
}

// TestShutdownAfterHalfFailedListen: the second listen address is taken,
// so Listen fails having bound the first; Shutdown still returns and
// nothing stays bound.
func TestShutdownAfterHalfFailedListen(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free := closedAddr(t)
	p, err := New(Config{Listen: []string{free, taken.Addr().String()}, Backends: []string{closedAddr(t)}}, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Listen(context.Background())
	if err == nil || !strings.Contains(err.Error(), taken.Addr().String()) {
		t.Fatalf("Listen with %s taken: %v, want an error naming it", taken.Addr(), err)
	}
	returns(t, "Shutdown after a failed Listen", func() { p.Shutdown(context.Background()) })
	ln, err := net.Listen("tcp", free)
	if err != nil {
		t.Fatalf("first listen address still bound after the failed Listen: %v", err)
	}
	ln.Close()
}
