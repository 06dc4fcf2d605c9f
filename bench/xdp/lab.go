package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"sigs.k8s.io/yaml"

	"github.com/nlb-dev/nlb/cplb"
	"github.com/nlb-dev/nlb/internal/benchtool"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
	"github.com/nlb-dev/nlb/lb/dsr"
)

// The lab's addresses and ports.
const (
	port      = 6443             // spec.api.port: every path's server port
	adminAddr = "127.0.0.1:9647" // nlb controller's admin server on the LB node
	vrid      = 51
)

// The paths (implementations) measured.
const (
	implDirect    = "direct"
	implXDP       = "nlb-xdp"
	implProxy     = "nlb-proxy"
	implHAProxy1  = "haproxy-nbthread1"
	implHAProxy2  = "haproxy-nbthread2"
	serversNginx  = "nginx"
	serversIperf3 = "iperf3"
)

// allImpls are the paths in the report's column order.
var allImpls = []string{implDirect, implXDP, implProxy, implHAProxy1, implHAProxy2}

// lab is one namespace lab on one bridge: h1 the client, h2 the XDP load
// balancer (nlb controller, VRRP Master), h3 the proxy node (nlb proxy and
// HAProxy, each on a VIP of its own), h4 and h5 the backends (real servers
// holding the XDP VIP on lo).
type lab struct {
	net      *netlab.Lab
	client   *netlab.Host
	lbXDP    *netlab.Host
	lbProxy  *netlab.Host
	backends []*netlab.Host
	nlb      string
	dir      string
	logf     func(string, ...any)

	xdpMode string // nlb controller --xdp-mode
	bpffs   string
	mounted bool
	pass    io.Closer
	rs      []*dsr.RealServer
	ctl     *netlab.Process
	admin   *http.Client
	proxies []*netlab.Process

	vip     netip.Addr            // the XDP virtual server's VIP
	target  map[string]netip.Addr // what the client dials, per path
	backend *netlab.Host          // the backend every path ends on
	attach  string                // the XDP attach mode /status reports
	phase   string                // the servers running on the backends
	servers []*netlab.Process
}

// startLab builds the lab and starts nlb controller (XDP), nginx on the
// backends, and the proxies; it returns once the XDP path forwards.
func startLab(ctx context.Context, nlb, dir, xdpMode string, logf func(string, ...any)) (l *lab, err error) {
	n, err := netlab.New("benchxdp", netlab.Options{Hosts: 5})
	if err != nil {
		return nil, err
	}
	h := n.Hosts
	l = &lab{net: n, client: h[0], lbXDP: h[1], lbProxy: h[2], backends: h[3:5], nlb: nlb, dir: dir, logf: logf, xdpMode: xdpMode,
		bpffs: filepath.Join(dir, "bpffs"), vip: n.VIP4(0).Addr(), admin: h[1].HTTPClient(2 * time.Second)}
	l.target = map[string]netip.Addr{
		implXDP: l.vip, implProxy: n.VIP4(1).Addr(), implHAProxy1: n.VIP4(2).Addr(), implHAProxy2: n.VIP4(3).Addr(),
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Close())
		}
	}()
	// Native XDP on a veth needs the lab's help: XDP_TX from the LB's
	// veth is delivered only with an XDP program on its peer
	// (netlab.Lab.PassXDPOnPort), and it loses a veth's
	// CHECKSUM_PARTIAL, so the client computes full TCP checksums, as
	// frames from a wire carry them (netlab.Host.TxChecksumOff). The
	// tcx program nlb picks on a veth (auto) needs neither, nor does
	// generic XDP. The client is the same for every path.
	if l.xdpMode == "xdp-native" {
		if err := l.client.TxChecksumOff(); err != nil {
			return l, err
		}
		if l.pass, err = n.PassXDPOnPort(l.lbXDP); err != nil {
			return l, err
		}
	}
	// The backends are DR real servers of the XDP VIP: on lo, ARP for it
	// answered only by the LB (lb/dsr, as nlb controller does it).
	for _, b := range l.backends {
		rs, err := dsr.New(dsr.Config{VIPs: []netip.Addr{l.vip}, Interfaces: []string{b.IfName},
			StateFile: filepath.Join(dir, "dsr-"+b.Name+".json"), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return l, err
		}
		if err := b.Run(rs.Up); err != nil {
			rs.Close()
			return l, fmt.Errorf("%s: real server: %w", b.Name, err)
		}
		l.rs = append(l.rs, rs)
	}
	// The proxies' VIPs, on the proxy node's interface (no backend holds
	// them, so replies come back through the proxy).
	for _, impl := range []string{implProxy, implHAProxy1, implHAProxy2} {
		if err := l.lbProxy.Command(ctx, "ip", "addr", "add", l.target[impl].String()+"/32", "dev", l.lbProxy.IfName); err != nil {
			return l, err
		}
	}
	if err := l.useServers(ctx, serversNginx); err != nil {
		return l, err
	}
	if err := l.startController(ctx); err != nil {
		return l, err
	}
	// Which backend the client's address lands on (Maglev on the source
	// address, k0s's persistence): every path ends on it.
	name, err := l.whoServes(ctx, l.vip)
	if err != nil {
		return l, fmt.Errorf("a request through the XDP VIP: %w", err)
	}
	for _, b := range l.backends {
		if b.Name == name {
			l.backend = b
		}
	}
	if l.backend == nil {
		return l, fmt.Errorf("the XDP VIP answered %q, no backend's name", name)
	}
	l.target[implDirect] = l.backend.Addr4
	logf("the client's flows through the XDP VIP go to %s (%s); every path uses it", name, l.backend.Addr4)
	if err := l.startProxies(ctx); err != nil {
		return l, err
	}
	for impl, a := range l.target {
		got, err := l.whoServes(ctx, a)
		if err != nil {
			return l, fmt.Errorf("%s: a request to %s: %w", impl, a, err)
		}
		if got != name {
			return l, fmt.Errorf("%s: %s answered from %s, not %s", impl, a, got, name)
		}
	}
	return l, nil
}

// startController mounts a bpffs of the bench's own and starts nlb
// controller on the LB node: one VRRP instance with the VIP, the VIP as a
// virtual server (k0s's defaults), the backends static, no API server
// health tracking (there is no API server). It waits for Master and the
// fast path forwarding to healthy backends.
func (l *lab) startController(ctx context.Context) error {
	if err := os.MkdirAll(l.bpffs, 0o700); err != nil {
		return err
	}
	if err := syscall.Mount("bpf", l.bpffs, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount a bpffs on %s: %w", l.bpffs, err)
	}
	l.mounted = true
	cfg, err := controllerConfig(nlbtest.K0sConfig{
		APIPort: port, VirtualServers: []netip.Addr{l.vip},
		Instances: []nlbtest.VRRPInstance{{
			VIPs: []netip.Prefix{netip.PrefixFrom(l.vip, 32)}, Interface: l.lbXDP.IfName,
			VRID: vrid, Version: 3, Interval: 100 * time.Millisecond, AuthPass: "benchxdp",
		}},
	})
	if err != nil {
		return err
	}
	path := filepath.Join(l.dir, "k0s.yaml")
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		return err
	}
	args := []string{l.nlb, "controller", "--config", path, "--admin", adminAddr,
		"--bpf-pin-dir", filepath.Join(l.bpffs, l.lbXDP.Name), "--dsr-state-file", filepath.Join(l.dir, "dsr-lb.json"),
		"--log-format", "json", "--xdp-mode", l.xdpMode}
	for _, b := range l.backends {
		args = append(args, "--backend", netip.AddrPortFrom(b.Addr4, port).String())
	}
	l.ctl = netlab.NewProcess("nlb-controller@"+l.lbXDP.Name, filepath.Join(l.dir, "nlb-controller.log"), l.lbXDP, args...)
	if err := l.ctl.Start(); err != nil {
		return err
	}
	if err := l.waitXDP(ctx); err != nil {
		return fmt.Errorf("%w\nnlb controller log:\n%s", err, l.ctl.Tail(30))
	}
	return nil
}

// controllerConfig renders k as YAML with apiServerHealth.enabled: false.
func controllerConfig(k nlbtest.K0sConfig) ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(k.YAML(), &doc); err != nil {
		return nil, fmt.Errorf("controller config: %w", err)
	}
	ka, ok := dig(doc, "spec", "network", "controlPlaneLoadBalancing", "keepalived")
	if !ok {
		return nil, errors.New("controller config: no keepalived section")
	}
	ka["apiServerHealth"] = map[string]any{"enabled": false}
	return yaml.Marshal(doc)
}

// dig returns the map at path in doc.
func dig(doc map[string]any, path ...string) (map[string]any, bool) {
	m := doc
	for _, k := range path {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil, false
		}
		m = next
	}
	return m, true
}

// status fetches nlb controller's /status.
func (l *lab) status(ctx context.Context) (cplb.Status, error) {
	var st cplb.Status
	return st, nlbtest.GetJSON(ctx, l.admin, "http://"+adminAddr+"/status", &st)
}

// xdpReady says why the XDP path does not forward yet, or nil: the
// instance Master, the datapath forwarding, every backend healthy with a
// MAC and table slots.
func xdpReady(st cplb.Status) error {
	if len(st.Instances) != 1 || st.Instances[0].State != "Master" {
		return fmt.Errorf("VRRP instances %+v, want one Master", st.Instances)
	}
	fp := st.FastPath
	if fp == nil || len(fp.Interfaces) != 1 || len(fp.Interfaces[0].Services) != 1 {
		return fmt.Errorf("fast path %+v, want one interface with one service", fp)
	}
	x := fp.Interfaces[0]
	if !x.Forwarding || x.Error != "" {
		return fmt.Errorf("datapath on %s: forwarding %v, error %q", x.Interface, x.Forwarding, x.Error)
	}
	s := x.Services[0]
	if len(s.Backends) == 0 || s.FailOpen || s.Problem != "" {
		return fmt.Errorf("service %s:%d: %d backends, fail open %v, problem %q", s.VIP, s.Port, len(s.Backends), s.FailOpen, s.Problem)
	}
	for _, b := range s.Backends {
		if !b.Healthy || b.MAC == "" || b.Slots == 0 {
			return fmt.Errorf("backend %s: healthy %v, MAC %q, %d slots, problem %q", b.Address, b.Healthy, b.MAC, b.Slots, b.Problem)
		}
	}
	return nil
}

// waitXDP waits, bounded, for xdpReady.
func (l *lab) waitXDP(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return nlbtest.Poll(ctx, 100*time.Millisecond, "nlb controller Master with the XDP fast path forwarding", func() error {
		if !l.ctl.Running() {
			return nlbtest.Stop(fmt.Errorf("nlb controller exited: %v", l.ctl.Err()))
		}
		st, err := l.status(ctx)
		if err != nil {
			return err
		}
		if err := xdpReady(st); err != nil {
			return err
		}
		l.attach = st.FastPath.Interfaces[0].Attach
		return nil
	})
}

// xdpPackets returns the packets the XDP service has forwarded so far.
func (l *lab) xdpPackets(ctx context.Context) (uint64, error) {
	st, err := l.status(ctx)
	if err != nil {
		return 0, err
	}
	if err := xdpReady(st); err != nil {
		return 0, err
	}
	return st.FastPath.Interfaces[0].Services[0].Packets, nil
}

// program opens the XDP program nlb controller pinned, for its run-time
// statistics.
func (l *lab) program() (*ebpf.Program, error) {
	p, err := ebpf.LoadPinnedProgram(filepath.Join(l.bpffs, l.lbXDP.Name, l.lbXDP.IfName, "prog"), nil)
	if err != nil {
		return nil, fmt.Errorf("the pinned XDP program: %w", err)
	}
	return p, nil
}

// startProxies starts nlb proxy and HAProxy (nbthread 1 and 2) on the
// proxy node, each on its VIP, each to the one backend.
func (l *lab) startProxies(ctx context.Context) error {
	be := netip.AddrPortFrom(l.backend.Addr4, port).String()
	pcfg := filepath.Join(l.dir, "nlb-proxy.yaml")
	// No health checks: HAProxy runs none either, and a check's connect
	// would look like a client to iperf3.
	if err := os.WriteFile(pcfg, []byte("healthCheck:\n  type: none\n"), 0o644); err != nil {
		return err
	}
	l.proxies = append(l.proxies, netlab.NewProcess(implProxy, filepath.Join(l.dir, implProxy+".log"), l.lbProxy,
		l.nlb, "proxy", "--config", pcfg, "--listen", netip.AddrPortFrom(l.target[implProxy], port).String(), "--backend", be, "--admin", ""))
	for impl, threads := range map[string]int{implHAProxy1: 1, implHAProxy2: 2} {
		cfg := filepath.Join(l.dir, impl+".cfg")
		if err := os.WriteFile(cfg, []byte(benchtool.HAProxy{Threads: threads, Splice: "always", Routes: []benchtool.HAProxyRoute{
			{Listen: netip.AddrPortFrom(l.target[impl], port).String(), Servers: []string{be}}}}.Config()), 0o644); err != nil {
			return err
		}
		l.proxies = append(l.proxies, netlab.NewProcess(impl, filepath.Join(l.dir, impl+".log"), l.lbProxy, "haproxy", "-db", "-f", cfg))
	}
	for _, p := range l.proxies {
		if err := p.Start(); err != nil {
			return err
		}
	}
	for _, p := range l.proxies {
		a := netip.AddrPortFrom(l.target[p.Name], port).String()
		if err := l.waitAccept(ctx, a, p); err != nil {
			return err
		}
	}
	return nil
}

// useServers runs kind's servers (nginx or iperf3) on port of every
// backend, stopping the other kind's, and waits until they accept.
func (l *lab) useServers(ctx context.Context, kind string) error {
	if l.phase == kind {
		return nil
	}
	for _, p := range l.servers {
		if err := p.Stop(10 * time.Second); err != nil {
			l.logf("stop %s: %v", p.Name, err)
		}
	}
	l.servers, l.phase = nil, ""
	for _, b := range l.backends {
		var argv []string
		switch kind {
		case serversNginx:
			cfg := filepath.Join(l.dir, "nginx-"+b.Name+".conf")
			if err := os.WriteFile(cfg, []byte(benchtool.NginxConfig(b.Name, l.dir, fmt.Sprint(port))), 0o644); err != nil {
				return err
			}
			argv = []string{"nginx", "-c", cfg, "-e", filepath.Join(l.dir, "nginx-"+b.Name+".error.log")}
		case serversIperf3:
			argv = []string{"iperf3", "-s", "-p", fmt.Sprint(port)}
		}
		p := netlab.NewProcess(kind+"@"+b.Name, filepath.Join(l.dir, kind+"-"+b.Name+".log"), b, argv...)
		if err := p.Start(); err != nil {
			return err
		}
		l.servers = append(l.servers, p)
	}
	for i, b := range l.backends {
		if err := l.waitAccept(ctx, netip.AddrPortFrom(b.Addr4, port).String(), l.servers[i]); err != nil {
			return err
		}
	}
	l.phase = kind
	if l.ctl != nil {
		// The controller's proxy checks the backends (a TCP connect):
		// the switch may have marked them down for a moment.
		return l.waitXDP(ctx)
	}
	return nil
}

// waitAccept waits, bounded, until addr accepts a connection from the
// client, or p exits.
func (l *lab) waitAccept(ctx context.Context, addr string, p *netlab.Process) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	dial := l.client.Dialer(time.Second)
	return nlbtest.Poll(ctx, 50*time.Millisecond, p.Name+" accepting on "+addr, func() error {
		if !p.Running() {
			return nlbtest.Stop(fmt.Errorf("exited: %v\n%s", p.Err(), p.Tail(20)))
		}
		c, err := dial(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// whoServes asks nginx at a:port, from the client, which backend it is.
func (l *lab) whoServes(ctx context.Context, a netip.Addr) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c := &http.Client{Transport: &http.Transport{DialContext: l.client.Dialer(2 * time.Second), DisableKeepAlives: true}}
	body, err := nlbtest.Get(ctx, c, "http://"+net.JoinHostPort(a.String(), fmt.Sprint(port))+"/")
	return strings.TrimSpace(string(body)), err
}

// Close stops every process, undoes the real servers, unmounts the bpffs
// and removes the lab.
func (l *lab) Close() error {
	var errs []error
	for _, p := range append(append([]*netlab.Process{}, l.proxies...), l.servers...) {
		if err := p.Stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if l.ctl != nil {
		if err := l.ctl.Stop(15 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	for i, rs := range l.rs {
		if err := l.backends[i].Run(rs.Down); err != nil {
			errs = append(errs, err)
		}
		rs.Close()
	}
	if l.pass != nil {
		l.pass.Close()
	}
	if l.mounted {
		if err := syscall.Unmount(l.bpffs, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", l.bpffs, err))
		}
	}
	errs = append(errs, l.net.Close())
	return errors.Join(errs...)
}
