package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/nlb-dev/nlb/internal/benchtool"
	"github.com/nlb-dev/nlb/internal/netlab"
)

// The topologies.
const (
	topoLoopback = "loopback" // client, proxy and backend on one host's loopback
	topoNetns    = "netns"    // each in its own namespace, over veths and a bridge
)

var allTopologies = []string{topoLoopback, topoNetns}

// Ports. The backends listen on every address of their host.
const (
	portHTTP      = 8080 // nginx
	portIperf     = 5201 // iperf3 servers: portIperf .. portIperf+bulkStreams-1
	portProxy     = 6443 // the proxies' HTTP (and idle-test) listener
	portBulkNLB   = 6500 // nlb's one bulk listener
	portBulkHAP   = 6501 // HAProxy's bulk listeners, one per iperf3 server
	bulkStreams   = 8    // iperf3 processes of the 8-stream test
	serverStartup = 15 * time.Second
)

// topology is where the client, the proxy and the backends run.
type topology struct {
	name                   string
	client, proxy, backend *netlab.Host
	// backendAddrs are two addresses of the backend host: nlb proxy
	// reaches each iperf3 server through both (see proxyArgs).
	backendAddrs [2]netip.Addr
	proxyAddr    netip.Addr
	nginx        *netlab.Process
	iperf        []*netlab.Process
}

// lab is one namespace lab of three hosts: h1 the client, h2 the proxy, h3
// the backend in the netns topology; the loopback topology runs all three
// roles on h2's loopback.
type lab struct {
	net   *netlab.Lab
	dir   string
	topos map[string]*topology
}

// startLab builds the lab and starts each topology's backends: nginx
// (return 200) and bulkStreams iperf3 servers.
func startLab(ctx context.Context, names []string, dir string) (l *lab, err error) {
	n, err := netlab.New("benchproxy", netlab.Options{Hosts: 3})
	if err != nil {
		return nil, err
	}
	l = &lab{net: n, dir: dir, topos: map[string]*topology{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
		}
	}()
	h := n.Hosts
	// Every host opens connections as a load generator's and a proxy's
	// host are tuned to: the whole port range, and TIME_WAIT ports
	// reused for new outgoing connections (tcp_tw_reuse=1; a new
	// namespace has 2, which reuses them on loopback only). Through a
	// proxy the client closes first (the response is in before the
	// proxy passes the backend's FIN on), so wrk's Connection: close
	// test at 20k connections/s otherwise ran out of ports within
	// seconds over the veths and fell to about 500/s for whichever
	// implementation ran within 60 s of the previous such test. The
	// bench's own listening ports are reserved (ip_local_reserved_ports):
	// in the range, an outgoing connection could hold one when its
	// server or proxy binds it.
	for _, hh := range h {
		if err := hh.Command(ctx, "sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65535",
			"net.ipv4.ip_local_reserved_ports="+reservedPorts()); err != nil {
			return l, err
		}
	}
	for _, name := range names {
		t := &topology{name: name}
		switch name {
		case topoLoopback:
			t.client, t.proxy, t.backend = h[1], h[1], h[1]
			t.backendAddrs = [2]netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")}
			t.proxyAddr = netip.MustParseAddr("127.0.0.1")
		case topoNetns:
			t.client, t.proxy, t.backend = h[0], h[1], h[2]
			second := n.VIP4(0).Addr()
			if err := t.backend.Command(ctx, "ip", "addr", "add", second.String()+"/32", "dev", t.backend.IfName); err != nil {
				return l, err
			}
			t.backendAddrs = [2]netip.Addr{t.backend.Addr4, second}
			t.proxyAddr = t.proxy.Addr4
		}
		l.topos[name] = t
		if err := l.startBackends(ctx, t); err != nil {
			return l, fmt.Errorf("%s: %w", name, err)
		}
	}
	return l, nil
}

// reservedPorts lists the bench's listening ports for
// ip_local_reserved_ports.
func reservedPorts() string {
	return fmt.Sprintf("%d-%d,%d,%d-%d,%d", portIperf, portIperf+bulkStreams-1, portProxy,
		portBulkNLB, portBulkHAP+bulkStreams-1, portHTTP)
}

// startBackends runs nginx and the iperf3 servers on t's backend host and
// waits until they listen.
func (l *lab) startBackends(ctx context.Context, t *topology) error {
	cfg := filepath.Join(l.dir, "nginx-"+t.name+".conf")
	if err := os.WriteFile(cfg, []byte(benchtool.NginxConfig(t.name, l.dir, fmt.Sprint(portHTTP))), 0o644); err != nil {
		return err
	}
	t.nginx = netlab.NewProcess("nginx@"+t.name, filepath.Join(l.dir, "nginx-"+t.name+".log"), t.backend,
		"nginx", "-c", cfg, "-e", filepath.Join(l.dir, "nginx-"+t.name+".error.log"))
	if err := t.nginx.Start(); err != nil {
		return err
	}
	if err := waitListening(ctx, t.nginx, portHTTP); err != nil {
		return err
	}
	for i := range bulkStreams {
		p := netlab.NewProcess(fmt.Sprintf("iperf3-%d@%s", i, t.name), filepath.Join(l.dir, fmt.Sprintf("iperf3-%d-%s.log", i, t.name)),
			t.backend, "iperf3", "-s", "-p", fmt.Sprint(portIperf+i))
		if err := p.Start(); err != nil {
			return err
		}
		t.iperf = append(t.iperf, p)
		if err := waitListening(ctx, p, portIperf+i); err != nil {
			return err
		}
	}
	return nil
}

// waitListening waits, bounded, until a socket listens on port in p's
// namespace, or p exits. It does not connect: a connection to a proxy
// would take a turn of its round robin.
func waitListening(ctx context.Context, p *netlab.Process, port int) error {
	ctx, cancel := context.WithTimeout(ctx, serverStartup)
	defer cancel()
	for {
		if !p.Running() {
			return fmt.Errorf("%s exited: %v\n%s", p.Name, p.Err(), p.Tail(20))
		}
		ports, err := benchtool.ListeningPorts(p.Pid())
		if err == nil && ports[port] {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not listening on port %d within %v (%v)\n%s", p.Name, port, serverStartup, err, p.Tail(20))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Close stops every process and removes the lab.
func (l *lab) Close() error {
	var errs []error
	for _, t := range l.topos {
		for _, p := range append([]*netlab.Process{t.nginx}, t.iperf...) {
			if p != nil {
				if err := p.Stop(10 * time.Second); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(append(errs, l.net.Close())...)
}
