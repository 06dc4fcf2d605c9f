package chaoslab

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"k8s.io/client-go/rest"

	"github.com/nlb-dev/nlb/internal/k8slab"
	"github.com/nlb-dev/nlb/internal/netlab"
)

// Survivors are established connections through the VIP that never
// reconnect: each scenario counts how many of them a fault breaks. They
// start from the worker on several source addresses (SurvivorSources), so
// that with a persistent virtual server (Maglev on the client address)
// they land on every backend. Each is either
//
//   - a connection: an HTTP/1.1 keep-alive GET /readyz every
//     SurvivorEvery on one TLS connection, or
//   - a watch: a raw watch of the ticker's ConfigMap on its own connection,
//     as kubelets and controllers hold them.
//
// Each knows its backend, the API server whose serving certificate it saw
// (every k8slab API server has its own), so that a connection to a dead
// API server is told apart from one that a load balancer broke. A survivor
// is broken when a read or write fails or a watch ends: after a reset, an
// EOF, an ERROR event, or SurvivorPatience without an answer (longer than
// any failover with TCP's retransmissions, so that a connection that only
// waited is not counted).
type Survivors struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	list []*survivor
}

// Survivor settings.
const (
	// SurvivorEvery is the request interval of a connection survivor.
	SurvivorEvery = 250 * time.Millisecond
	// SurvivorPatience is how long a survivor waits for an answer or an
	// event before it counts as broken.
	SurvivorPatience = 20 * time.Second
)

// SurvivorSources are the worker's extra source addresses (Lab.Open adds
// them): 192.0.2.150 to 192.0.2.165.
func SurvivorSources() []netip.Addr {
	var out []netip.Addr
	for i := range 16 {
		out = append(out, netip.AddrFrom4([4]byte{192, 0, 2, byte(150 + i)}))
	}
	return out
}

// survivor is one connection or watch.
type survivor struct {
	Watch    bool
	Src      netip.Addr
	Backend  string // the serving certificate's common name
	Answers  int
	BrokenAt time.Time
	Err      error
}

// StartSurvivors opens conns connections and watches watches from the
// worker to server (https://VIP:port), round robin over sources, and waits
// until each has had its first answer (an event, for a watch: the ticker
// must be running). A survivor that cannot be established fails the call.
func StartSurvivors(ctx context.Context, c *k8slab.Cluster, server string, sources []netip.Addr, conns, watches int) (*Survivors, error) {
	cfg, err := workerTLS(c, server)
	if err != nil {
		return nil, err
	}
	host := netip.MustParseAddrPort(server[len("https://"):]).String()
	rctx, cancel := context.WithCancel(context.Background())
	s := &Survivors{cancel: cancel}
	ready := make(chan error, conns+watches)
	for i := range conns + watches {
		sv := &survivor{Watch: i >= conns, Src: sources[i%len(sources)]}
		s.list = append(s.list, sv)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.run(rctx, c.Worker, host, cfg.Clone(), sv, ready)
		}()
	}
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for range conns + watches {
		select {
		case err := <-ready:
			if err != nil {
				s.Stop()
				return nil, fmt.Errorf("chaoslab: survivor: %w", err)
			}
		case <-deadline.C:
			s.Stop()
			return nil, errors.New("chaoslab: survivors not established within 30 s")
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		}
	}
	return s, nil
}

// workerTLS is the worker's client TLS configuration for server.
func workerTLS(c *k8slab.Cluster, server string) (*tls.Config, error) {
	cfg, err := rest.TLSConfigFor(c.RESTConfig(k8slab.Worker, c.Worker, server))
	if err != nil {
		return nil, fmt.Errorf("chaoslab: worker TLS: %w", err)
	}
	// The serving certificates name "kubernetes", not the VIP.
	cfg.ServerName = "kubernetes"
	return cfg, nil
}

// run establishes sv, reports on ready, then keeps it going until it
// breaks or ctx ends.
func (s *Survivors) run(ctx context.Context, worker *netlab.Host, host string, cfg *tls.Config, sv *survivor, ready chan<- error) {
	var conn net.Conn
	err := worker.Run(func() error {
		var err error
		d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: sv.Src.AsSlice()}}
		conn, err = d.DialContext(ctx, "tcp", host)
		return err
	})
	if err != nil {
		ready <- fmt.Errorf("dial from %s: %w", sv.Src, err)
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	tc := tls.Client(conn, cfg)
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.HandshakeContext(ctx); err != nil {
		ready <- fmt.Errorf("TLS from %s: %w", sv.Src, err)
		return
	}
	if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
		s.mu.Lock()
		sv.Backend = pc[0].Subject.CommonName
		s.mu.Unlock()
	}
	br := bufio.NewReader(tc)
	first := true
	answered := func() {
		s.mu.Lock()
		sv.Answers++
		s.mu.Unlock()
		if first {
			first = false
			ready <- nil
		}
	}
	if sv.Watch {
		err = watchSurvivor(tc, br, answered)
	} else {
		err = pollSurvivor(ctx, tc, br, answered)
	}
	if ctx.Err() != nil {
		if first {
			ready <- ctx.Err()
		}
		return
	}
	s.mu.Lock()
	sv.BrokenAt, sv.Err = time.Now(), err
	s.mu.Unlock()
	if first {
		ready <- fmt.Errorf("from %s: %w", sv.Src, err)
	}
}

// pollSurvivor sends GET /readyz every SurvivorEvery on c until a request
// fails or ctx ends.
func pollSurvivor(ctx context.Context, c *tls.Conn, br *bufio.Reader, answered func()) error {
	for {
		_ = c.SetDeadline(time.Now().Add(SurvivorPatience))
		if _, err := io.WriteString(c, "GET /readyz HTTP/1.1\r\nHost: kubernetes\r\n\r\n"); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if resp.Close {
			return fmt.Errorf("the server closed the connection (%s)", resp.Status)
		}
		answered()
		if netlab.Sleep(ctx, SurvivorEvery) != nil {
			return ctx.Err()
		}
	}
}

// watchSurvivor watches the ticker's ConfigMap on c until the watch ends.
func watchSurvivor(c *tls.Conn, br *bufio.Reader, event func()) error {
	_ = c.SetDeadline(time.Now().Add(SurvivorPatience))
	req := "GET /api/v1/namespaces/" + k8slab.TestNamespace + "/configmaps?watch=true&timeoutSeconds=3600&fieldSelector=metadata.name%3D" +
		TickConfigMap + " HTTP/1.1\r\nHost: kubernetes\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("watch: %s", resp.Status)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var ev watchEvent
		if err := dec.Decode(&ev); err != nil {
			return fmt.Errorf("watch: %w", err)
		}
		if ev.Type == "ERROR" {
			return fmt.Errorf("watch: error event, code %d", ev.Object.Code)
		}
		_ = c.SetDeadline(time.Now().Add(SurvivorPatience))
		event()
	}
}

// Stop closes every survivor and waits for them.
func (s *Survivors) Stop() {
	s.cancel()
	s.wg.Wait()
}

// SurvivalCount is what a fault did to the survivors.
type SurvivalCount struct {
	// Established counts the survivors; Backends how many distinct API
	// servers they reached.
	Established int
	Backends    int
	// Broken counts those broken whose API server was not a victim;
	// BrokenVictim those of a victim's API server.
	Broken, BrokenVictim int
	// Errors are the first few errors of Broken.
	Errors []string
}

// Count counts the survivors broken in [from, to], victims naming the
// API servers (k8slab.Controller.Name) that the fault took down.
func (s *Survivors) Count(from, to time.Time, victims ...string) SurvivalCount {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out SurvivalCount
	seen := map[string]bool{}
	for _, sv := range s.list {
		out.Established++
		seen[sv.Backend] = true
		if sv.BrokenAt.IsZero() || sv.BrokenAt.Before(from) || sv.BrokenAt.After(to) {
			continue
		}
		victim := false
		for _, v := range victims {
			victim = victim || sv.Backend == v
		}
		if victim {
			out.BrokenVictim++
			continue
		}
		out.Broken++
		if len(out.Errors) < 5 {
			kind := "connection"
			if sv.Watch {
				kind = "watch"
			}
			out.Errors = append(out.Errors, fmt.Sprintf("%s from %s to %s at %s: %v", kind, sv.Src, sv.Backend, sv.BrokenAt.Format("15:04:05.000"), sv.Err))
		}
	}
	out.Backends = len(seen)
	return out
}
