package lb

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestRoundRobinConcurrentExact: many goroutines picking at once each get
// a distinct turn of the rotation, so every backend gets exactly its share.
// Run with -race: a counter that is not atomic is reported as a data race
// (and loses increments, which skews the counts).
func TestRoundRobinConcurrentExact(t *testing.T) {
	const (
		backends   = 4
		goroutines = 8
		picks      = 1000 // per goroutine; goroutines*picks is divisible by backends
	)
	b, err := newBalancer(RoundRobin, nil)
	if err != nil {
		t.Fatal(err)
	}
	none := func(int) bool { return false }
	load := func(int) int64 { return 0 }
	counts := make([][backends]int, goroutines)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range goroutines {
		wg.Go(func() {
			<-start
			for range picks {
				i := b.first(backends, none, load)
				if i < 0 || i >= backends {
					t.Errorf("pick %d out of range", i)
					return
				}
				counts[g][i]++
			}
		})
	}
	close(start)
	wg.Wait()
	var total [backends]int
	for _, c := range counts {
		for i, n := range c {
			total[i] += n
		}
	}
	for i, n := range total {
		if n != goroutines*picks/backends {
			t.Errorf("backend %d picked %d times, want %d (all: %v)", i, n, goroutines*picks/backends, total)
		}
	}
	// The rotation goes on from where the goroutines left it: the next
	// pick is the turn after the last of the goroutines*picks turns.
	if got, want := b.first(backends, none, load), goroutines*picks%backends; got != want {
		t.Errorf("next pick %d, want %d", got, want)
	}
}

// namedServer answers every connection with its name and a newline, then
// echoes: the client learns which backend took it.
func namedServer(t *testing.T, name string) string {
	return serve(t, "127.0.0.1:0", func(c *net.TCPConn) {
		io.WriteString(c, name+"\n")
		io.Copy(c, c)
		c.CloseWrite()
	})
}

// whoAnswers opens a proxied connection, reads the backend's name and
// checks the connection echoes. The connection stays open (closed at the
// end of the test).
func whoAnswers(t *testing.T, addr string) (string, *net.TCPConn) {
	t.Helper()
	c := dial(t, addr)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 0, 16)
	one := make([]byte, 1)
	for len(buf) < cap(buf) {
		if _, err := c.Read(one); err != nil {
			t.Fatalf("reading the backend's name: %v", err)
		}
		if one[0] == '\n' {
			break
		}
		buf = append(buf, one[0])
	}
	if err := roundTrip(c, "ping"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Time{})
	return string(buf), c
}

// TestBalanceSelectsPolicy: Config.Balance (at New and at Reload) decides
// how a real proxy spreads connections. Three connections are held on
// backend a while b does not exist yet; then b is added. Least-connections
// sends the next three to b (0, 1, 2 active against a's 3); round robin
// ignores the load and alternates b, a, b.
func TestBalanceSelectsPolicy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy Policy // at New
		reload Policy // if set, Reload to it before b is added
		want   string // backends of the three connections after b appears
	}{
		{"leastConnections", LeastConnections, "", "b b b"},
		{"roundRobin", RoundRobin, "", "b a b"},
		{"default", "", "", "b a b"},
		{"reload-to-leastConnections", RoundRobin, LeastConnections, "b b b"},
		{"reload-to-roundRobin", LeastConnections, RoundRobin, "b a b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := namedServer(t, "a"), namedServer(t, "b")
			cfg := Config{Backends: []string{a}, Balance: tc.policy}
			p := startProxy(t, cfg, Options{})
			if tc.reload != "" {
				cfg.Listen = []string{"127.0.0.1:0"} // as startProxy set it
				cfg.HealthCheck.Type = CheckNone
				cfg.Balance = tc.reload
				if err := p.Reload(cfg); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 3 {
				if who, _ := whoAnswers(t, p.addr); who != "a" {
					t.Fatalf("connection %d went to %q with only a configured", i, who)
				}
			}
			p.SetBackends([]string{a, b})
			var got []string
			for range 3 {
				who, _ := whoAnswers(t, p.addr)
				got = append(got, who)
			}
			if g := fmt.Sprint(got); g != "["+tc.want+"]" {
				t.Errorf("new connections went to %v, want [%s]", got, tc.want)
			}
			// The proxy's own view agrees with what the clients saw.
			wantA, wantB := int64(3), int64(0)
			for _, w := range got {
				if w == "a" {
					wantA++
				} else {
					wantB++
				}
			}
			if sa, sb := backendStatus(p.Proxy, a), backendStatus(p.Proxy, b); sa.Active != wantA || sb.Active != wantB {
				t.Errorf("status: a %d active, b %d; want %d, %d", sa.Active, sb.Active, wantA, wantB)
			}
		})
	}
}
