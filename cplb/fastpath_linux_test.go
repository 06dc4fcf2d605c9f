//go:build linux

package cplb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/ebpf/xdplb"
	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/lb/maglev"
)

// The fast path's tests drive it with fakes of its OS effects (the
// datapath, the neighbour table, the real server): no root. The program
// itself is tested in ebpf/xdplb, the whole in internal/dsrlab.

// fakeDP is an attached datapath: it records what is written.
type fakeDP struct {
	rec      *recorder
	adopted  bool
	mu       sync.Mutex
	mac      net.HardwareAddr
	master   bool
	services map[netip.AddrPort]xdplb.Service
	removed  bool
	closed   bool
	setErr   error
	guard    []string
	backup   uint64 // VIP traffic forwarded while Backup, beyond 4
}

func newFakeDP(rec *recorder) *fakeDP {
	return &fakeDP{rec: rec, services: map[netip.AddrPort]xdplb.Service{}}
}

func (d *fakeDP) SetMAC(mac net.HardwareAddr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mac = mac
	return nil
}

func (d *fakeDP) SetMaster(m bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if m && d.mac == nil {
		return errors.New("Master without a MAC")
	}
	d.master = m
	d.rec.add("xdp master %v", m)
	return nil
}

func (d *fakeDP) Master() bool { d.mu.Lock(); defer d.mu.Unlock(); return d.master }

func (d *fakeDP) SetService(s xdplb.Service) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.setErr != nil {
		return d.setErr
	}
	d.services[netip.AddrPortFrom(s.VIP, s.Port)] = s
	d.rec.add("xdp service %s:%d %d backends", s.VIP, s.Port, len(s.Backends))
	return nil
}

func (d *fakeDP) SetGuardMACs(macs []net.HardwareAddr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.guard = nil
	for _, m := range macs {
		d.guard = append(d.guard, m.String())
	}
	return nil
}

func (d *fakeDP) DeleteService(vip netip.Addr, port uint16) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.services, netip.AddrPortFrom(vip, port))
	d.rec.add("xdp delete %s:%d", vip, port)
	return nil
}

func (d *fakeDP) service(vip string) (xdplb.Service, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.services[netip.MustParseAddrPort(vip)]
	return s, ok
}

func (d *fakeDP) Stats() (xdplb.Stats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var st xdplb.Stats
	for _, s := range d.services {
		ss := xdplb.ServiceStats{VIP: s.VIP, Port: s.Port, Counters: xdplb.Counters{Packets: 10, NewFlows: 2}}
		for _, b := range s.Backends {
			ss.Backends = append(ss.Backends, xdplb.BackendStats{Addr: b.Addr, Counters: xdplb.Counters{Packets: 3}})
		}
		st.Services = append(st.Services, ss)
	}
	st.Backup = 4 + d.backup
	return st, nil
}

func (d *fakeDP) FlowTableMemory() (uint64, error) { return 16 << 20, nil }
func (d *fakeDP) Options() xdplb.Options           { return xdplb.Options{FlowTableSize: 131072} }
func (d *fakeDP) Mode() xdplb.Mode                 { return xdplb.ModeNative }
func (d *fakeDP) Skipped() []error                 { return nil }
func (d *fakeDP) Adopted() bool                    { return d.adopted }
func (d *fakeDP) Replaced() error                  { return nil }

func (d *fakeDP) Remove() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.removed = true
	d.rec.add("xdp removed")
	return nil
}

func (d *fakeDP) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	d.rec.add("xdp closed")
	return nil
}

// fakeEnv is a FastPath over one fakeDP per interface and a neighbour
// table.
type fakeEnv struct {
	rec       *recorder
	dps       map[string]*fakeDP
	mu        sync.Mutex
	neigh     map[netip.Addr]string // backend → MAC; "local" for this node
	resolves  int
	attachErr error
	down      int
}

func newFakeEnv(rec *recorder) *fakeEnv {
	return &fakeEnv{rec: rec, dps: map[string]*fakeDP{}, neigh: map[netip.Addr]string{}}
}

func (e *fakeEnv) setNeigh(addr, mac string) {
	e.mu.Lock()
	e.neigh[netip.MustParseAddr(addr)] = mac
	e.mu.Unlock()
}

func (e *fakeEnv) env() FastPath {
	return FastPath{
		Attach: func(iface string) (XDPDatapath, error) {
			if e.attachErr != nil {
				return nil, e.attachErr
			}
			d := e.dps[iface]
			if d == nil {
				d = newFakeDP(e.rec)
				e.dps[iface] = d
			}
			e.rec.add("xdp attached %s", iface)
			return d, nil
		},
		InterfaceMAC: func(string) (net.HardwareAddr, error) {
			return net.HardwareAddr{2, 0, 0, 0, 0, 1}, nil
		},
		Resolve: func(_ context.Context, iface string, a netip.Addr) (net.HardwareAddr, bool, error) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.resolves++
			m, ok := e.neigh[a]
			switch {
			case !ok:
				return nil, false, fmt.Errorf("dsr: backend %s did not answer", a)
			case m == "local":
				return net.HardwareAddr{2, 0, 0, 0, 0, 1}, true, nil
			}
			mac, err := net.ParseMAC(m)
			return mac, false, err
		},
		RealServer: func(vips []netip.Addr, ifaces []string) (func() error, error) {
			e.rec.add("real server up %v on %v", vips, ifaces)
			return func() error { e.mu.Lock(); e.down++; e.mu.Unlock(); e.rec.add("real server down"); return nil }, nil
		},
		Cleanup: func(ifaces []string) error { e.rec.add("cleanup %v", ifaces); return nil },
	}
}

// lockedProxy is a fakeProxy whose status tests change while the
// controller runs.
type lockedProxy struct {
	*fakeProxy
	mu sync.Mutex
	st lb.Status
}

func (p *lockedProxy) Status() lb.Status { p.mu.Lock(); defer p.mu.Unlock(); return p.st }

func (p *lockedProxy) set(backends ...lb.BackendStatus) {
	p.mu.Lock()
	p.st = lb.Status{Backends: backends}
	p.mu.Unlock()
}

func be(addr string, healthy bool) lb.BackendStatus {
	return lb.BackendStatus{Address: addr, Healthy: healthy}
}

// vsConfig is a controller with one virtual server on the VIP of the
// first instance (k0s's defaults: persistence).
func vsConfig(vips ...string) config.Controller {
	ctl := ctlConfig(false, 0)
	for _, v := range vips {
		ctl.VirtualServers = append(ctl.VirtualServers, config.VirtualService{VIP: netip.MustParseAddr(v), Port: 6443,
			Persistent: true, Instance: 0, Path: "keepalived.virtualServers[0]",
			Notes: []config.VirtualServiceNote{{Field: "keepalived.virtualServers[0].lbAlgo", Value: "rr", Note: "superseded by Maglev"}}})
	}
	return ctl
}

// newFastPathController is a controller with virtual servers over env
// and proxy p.
func newFastPathController(t *testing.T, ctl config.Controller, vs []VRRP, env *fakeEnv, p proxy) *Controller {
	t.Helper()
	c, err := New(Config{Controller: ctl, VRRP: vs, Proxy: &lb.Proxy{}, Attach: attachFake(&fakeSteering{rec: env.rec}, nil),
		FastPath: env.env(), Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	c.proxy = p
	return c
}

// wantTable checks s against Maglev's table of keys, with healthy ones
// only taking slots.
func wantTable(t *testing.T, s xdplb.Service, keys []string, healthy map[string]bool) {
	t.Helper()
	tbl, err := maglev.New(keys, maglev.DefaultSize)
	if err != nil {
		t.Fatal(err)
	}
	entries := tbl.Entries(func(k string) bool { return healthy[k] })
	if len(s.Table) != len(entries) {
		t.Fatalf("table of %d entries, want %d", len(s.Table), len(entries))
	}
	for i, e := range entries {
		want := tbl.Backends()[e]
		got := s.Backends[s.Table[i]].Addr
		if netip.MustParseAddrPort(want).Addr() != got {
			t.Fatalf("entry %d: backend %s, want %s (Maglev's table)", i, got, want)
		}
	}
}

// TestFastPathTables: the tables are Maglev's of the proxy's whole backend
// set, with MACs from the neighbour table; an unhealthy backend loses only
// its own slots; one without a MAC or on another port is left out and
// named; with none healthy the table fails open.
// Mutations checked: the table built from the healthy subset (other slots
// move), health ignored, no fail-open, a MAC-less backend kept.
func TestFastPathTables(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		env := newFakeEnv(rec)
		env.setNeigh("192.0.2.11", "02:00:00:00:00:11")
		env.setNeigh("192.0.2.12", "02:00:00:00:00:12")
		env.setNeigh("192.0.2.13", "local")
		a := newFakeVRRP(rec, "a", 200, "192.0.2.100/24")
		p := &lockedProxy{fakeProxy: &fakeProxy{rec: rec, ready: true}}
		keys := []string{"192.0.2.11:6443", "192.0.2.12:6443", "192.0.2.13:6443"}
		p.set(be(keys[0], true), be(keys[1], true), be(keys[2], true), be("192.0.2.14:6443", true), be("192.0.2.15:7443", true))
		c := newFastPathController(t, vsConfig("192.0.2.100"), []VRRP{a}, env, p)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		if err := c.Listen(ctx); err != nil {
			t.Fatal(err)
		}
		dp := env.dps["eth1"]
		s, ok := dp.service("192.0.2.100:6443")
		if !ok {
			t.Fatalf("no service after Listen: %q", rec.list())
		}
		if !s.Persistent || len(s.Backends) != 3 {
			t.Fatalf("service %+v: want persistent, 3 backends (192.0.2.14 has no MAC, .15 another port)", s)
		}
		// The table is of the whole set on the API port, the same on
		// every node; .14 without a MAC only loses its slots.
		all := map[string]bool{keys[0]: true, keys[1]: true, keys[2]: true}
		wantTable(t, s, append(slices.Clone(keys), "192.0.2.14:6443"), all)
		for _, b := range s.Backends {
			if (b.Addr.String() == "192.0.2.13") != b.Local {
				t.Errorf("backend %s Local = %v", b.Addr, b.Local)
			}
		}
		st := c.Status().FastPath
		if st == nil || len(st.Interfaces) != 1 || len(st.Interfaces[0].Services) != 1 {
			t.Fatalf("status %+v", st)
		}
		problems := map[string]string{}
		for _, b := range st.Interfaces[0].Services[0].Backends {
			problems[b.Address] = b.Problem
		}
		if !strings.Contains(problems["192.0.2.14:6443"], "did not answer") || !strings.Contains(problems["192.0.2.15:7443"], "port 7443") ||
			problems[keys[0]] != "" {
			t.Errorf("backend problems %q", problems)
		}

		go c.Run(ctx)
		// .12 fails its checks: only its slots move.
		p.set(be(keys[0], true), be(keys[1], false), be(keys[2], true), be("192.0.2.14:6443", true))
		c.BackendsChanged()
		synctest.Wait()
		s2, _ := dp.service("192.0.2.100:6443")
		wantTable(t, s2, append(slices.Clone(keys), "192.0.2.14:6443"), map[string]bool{keys[0]: true, keys[2]: true})
		moved := 0
		for i := range s.Table {
			was, now := s.Backends[s.Table[i]].Addr, s2.Backends[s2.Table[i]].Addr
			if was != now {
				moved++
				if was.String() != "192.0.2.12" {
					t.Fatalf("entry %d moved from %s, which stayed healthy", i, was)
				}
			}
		}
		if moved == 0 {
			t.Error("no entry moved when 192.0.2.12 became unhealthy")
		}

		// None healthy: fail open to all of them.
		p.set(be(keys[0], false), be(keys[1], false), be(keys[2], false))
		time.Sleep(fastPathTick) // without Changed: the loop's poll
		synctest.Wait()
		s3, _ := dp.service("192.0.2.100:6443")
		wantTable(t, s3, keys, all)
		if st := c.Status().FastPath.Interfaces[0].Services[0]; !st.FailOpen {
			t.Errorf("status not fail-open: %+v", st)
		}

		// .14 answers at last: a failed MAC is retried at the next
		// change (here the other backends' health coming back), not
		// only at the periodic refresh (a node whose link was down
		// must not keep the backends out for seconds after it is up).
		env.setNeigh("192.0.2.14", "02:00:00:00:00:14")
		p.set(be(keys[0], true), be(keys[1], true), be(keys[2], true), be("192.0.2.14:6443", true))
		c.BackendsChanged()
		synctest.Wait()
		s4, _ := dp.service("192.0.2.100:6443")
		if len(s4.Backends) != 4 {
			t.Errorf("after 192.0.2.14 answered: %d backends, want 4", len(s4.Backends))
		}
	})
}

// TestFastPathMaster: only the Master forwards, flipped by the VRRP
// master hook before the VIPs move; an adopted datapath that was
// forwarding (a crashed Master's) goes on forwarding until an instance is
// Master or hears another Master. Mutations checked: the hook not set;
// the adopted state reset to Backup at once.
func TestFastPathMaster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		env := newFakeEnv(rec)
		env.setNeigh("192.0.2.11", "02:00:00:00:00:11")
		a := newFakeVRRP(rec, "a", 200, "192.0.2.100/24")
		p := &lockedProxy{fakeProxy: &fakeProxy{rec: rec, ready: true}}
		p.set(be("192.0.2.11:6443", true))
		c := newFastPathController(t, vsConfig("192.0.2.100"), []VRRP{a}, env, p)
		ctx, cancel := context.WithCancel(t.Context())
		if err := c.Listen(ctx); err != nil {
			t.Fatal(err)
		}
		dp := env.dps["eth1"]
		if dp.Master() {
			t.Fatal("a fresh datapath forwards before VRRP said Master")
		}
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		a.setMaster(true, netip.Addr{})
		if !dp.Master() {
			t.Fatal("not forwarding after the master hook")
		}
		env.setNeigh("192.0.2.12", "02:00:00:00:00:12")
		a.setMaster(false, netip.MustParseAddr("192.0.2.12"))
		if dp.Master() {
			t.Fatal("forwarding after the instance left the Master role")
		}
		// The new Master's MAC is guarded: what it forwards here as to a
		// backend is never forwarded again by this Backup.
		c.BackendsChanged()
		synctest.Wait()
		dp.mu.Lock()
		guard := slices.Clone(dp.guard)
		dp.mu.Unlock()
		if !slices.Equal(guard, []string{"02:00:00:00:00:12"}) {
			t.Errorf("guard MACs %q, want the Master's", guard)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}

		// A restart adopts a datapath pinned while forwarding.
		rec2 := &recorder{}
		env2 := newFakeEnv(rec2)
		env2.setNeigh("192.0.2.11", "02:00:00:00:00:11")
		old := newFakeDP(rec2)
		old.adopted, old.master, old.mac = true, true, net.HardwareAddr{2, 0, 0, 0, 0, 1}
		old.services[netip.MustParseAddrPort("192.0.2.99:6443")] = xdplb.Service{VIP: netip.MustParseAddr("192.0.2.99"), Port: 6443}
		env2.dps["eth1"] = old
		b := newFakeVRRP(rec2, "a", 200, "192.0.2.100/24")
		c2 := newFastPathController(t, vsConfig("192.0.2.100"), []VRRP{b}, env2, p)
		ctx2, cancel2 := context.WithCancel(t.Context())
		done2 := make(chan error, 1)
		defer func() { cancel2(); <-done2 }()
		if err := c2.Listen(ctx2); err != nil {
			t.Fatal(err)
		}
		if _, ok := old.service("192.0.2.99:6443"); ok {
			t.Error("a service no longer configured was kept")
		}
		go func() { done2 <- c2.Run(ctx2) }()
		time.Sleep(5 * fastPathTick)
		synctest.Wait()
		if !old.Master() || !c2.Status().FastPath.Interfaces[0].Undecided {
			t.Fatal("the adopted datapath stopped forwarding before VRRP decided")
		}
		// The instance hears another Master: stop.
		b.mu.Lock()
		b.status.Master = netip.MustParseAddr("192.0.2.12")
		b.mu.Unlock()
		time.Sleep(2 * fastPathTick)
		synctest.Wait()
		if old.Master() {
			t.Error("the adopted datapath still forwards while another node is Master")
		}
	})
}

// TestFastPathStop: a graceful stop removes the datapath only after every
// VRRP instance has handed over, and leaves the real-server side (the
// local API server stays in every node's table); a failed start undoes
// the real server and releases the datapath without removing it.
// Mutations checked: the datapath removed before the instances return;
// the real server taken down at the stop.
func TestFastPathStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		env := newFakeEnv(rec)
		env.setNeigh("192.0.2.11", "02:00:00:00:00:11")
		a := newFakeVRRP(rec, "a", 200, "192.0.2.100/24")
		a.release = make(chan struct{})
		p := &lockedProxy{fakeProxy: &fakeProxy{rec: rec, ready: true}}
		p.set(be("192.0.2.11:6443", true))
		c := newFastPathController(t, vsConfig("192.0.2.100"), []VRRP{a}, env, p)
		ctx, cancel := context.WithCancel(t.Context())
		if err := c.Listen(ctx); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		synctest.Wait()
		cancel()
		synctest.Wait()
		if slices.Contains(rec.list(), "xdp removed") {
			t.Fatal("datapath removed while the instance hands over")
		}
		close(a.release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		got := rec.list()
		i, j := slices.Index(got, "vrrp a returned"), slices.Index(got, "xdp removed")
		if i < 0 || j < i {
			t.Errorf("stop order %q: want the instance returned, then the datapath removed", got)
		}
		if slices.Contains(got, "real server down") || slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "steering") }) {
			t.Errorf("stop: %q: the real server must stay and no steering run", got)
		}

		// A failed attach undoes the real server.
		rec2 := &recorder{}
		env2 := newFakeEnv(rec2)
		env2.attachErr = errors.New("no XDP")
		p2 := &lockedProxy{fakeProxy: &fakeProxy{rec: rec2, ready: true}}
		c2 := newFastPathController(t, vsConfig("192.0.2.100"), []VRRP{newFakeVRRP(rec2, "a", 200, "192.0.2.100/24")}, env2, p2)
		if err := c2.Listen(t.Context()); err == nil || !strings.Contains(err.Error(), "no XDP") {
			t.Fatalf("Listen with a failing attach = %v", err)
		}
		if got := rec2.list(); !slices.Contains(got, "real server down") || !slices.Contains(got, "proxy shut down") {
			t.Errorf("failed start: %q: want the real server undone and the proxy shut down", got)
		}

		// Without the capabilities, the error names them.
		env3 := newFakeEnv(&recorder{})
		env3.attachErr = fmt.Errorf("map create: %w", syscall.EPERM)
		p3 := &lockedProxy{fakeProxy: &fakeProxy{rec: &recorder{}, ready: true}}
		c3 := newFastPathController(t, vsConfig("192.0.2.100"), []VRRP{newFakeVRRP(&recorder{}, "a", 200, "192.0.2.100/24")}, env3, p3)
		if err := c3.Listen(t.Context()); err == nil || !strings.Contains(err.Error(), "needs CAP_BPF and CAP_NET_ADMIN") {
			t.Errorf("Listen without the capabilities = %v, want them named", err)
		}
	})
}

// TestFastPathCleanup: the other modes remove a fast path an earlier run
// left on their interfaces; the fast path mode does not.
func TestFastPathCleanup(t *testing.T) {
	rec := &recorder{}
	env := newFakeEnv(rec)
	c := newWithFakeProxy(t, Config{Controller: ctlConfig(false, 0), VRRP: []VRRP{newFakeVRRP(rec, "a", 200, "192.0.2.100/24")},
		Attach: attachFake(&fakeSteering{rec: rec}, nil), FastPath: env.env(), Logger: discard()}, &fakeProxy{rec: rec, ready: true})
	if err := c.Listen(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := rec.list(); len(got) == 0 || got[0] != "cleanup [eth1]" {
		t.Errorf("proxy mode start: %q, want the cleanup first", got)
	}
	rec2 := &recorder{}
	env2 := newFakeEnv(rec2)
	env2.setNeigh("192.0.2.11", "02:00:00:00:00:11")
	p := &lockedProxy{fakeProxy: &fakeProxy{rec: rec2, ready: true}}
	c2 := newFastPathController(t, vsConfig("192.0.2.100"), []VRRP{newFakeVRRP(rec2, "a", 200, "192.0.2.100/24")}, env2, p)
	if err := c2.Listen(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := rec2.list(); slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "cleanup") }) {
		t.Errorf("fast path start cleaned up: %q", got)
	}
}

// TestFastPathStatusAndMetrics: /status shows the mode, the attach mode,
// the backends with their MACs and counters and the flow table's memory;
// /metrics the nlb_xdp_* counters.
func TestFastPathStatusAndMetrics(t *testing.T) {
	rec := &recorder{}
	env := newFakeEnv(rec)
	env.setNeigh("192.0.2.11", "02:00:00:00:00:11")
	p := &lockedProxy{fakeProxy: &fakeProxy{rec: rec, ready: true}}
	p.set(be("192.0.2.11:6443", true))
	reg := prometheus.NewRegistry()
	c, err := New(Config{Controller: vsConfig("192.0.2.100"), VRRP: []VRRP{newFakeVRRP(rec, "a", 200, "192.0.2.100/24")},
		Proxy: &lb.Proxy{}, Attach: attachFake(&fakeSteering{rec: rec}, nil), FastPath: env.env(), Logger: discard(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	c.proxy = p
	if err := c.Listen(t.Context()); err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	c.Handlers()["/status"].ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/status", nil))
	for _, key := range []string{`"fast_path":`, `"mode": "xdp"`, `"attach": "xdp-native"`, `"forwarding": false`,
		`"memory_bytes": 16777216`, `"entries": 131072`, `"mac": "02:00:00:00:00:11"`, `"slots": 16381`, `"packets": 10`, `"backup": 4`} {
		if !strings.Contains(w.Body.String(), key) {
			t.Errorf("/status lacks %s:\n%s", key, w.Body)
		}
	}
	var st Status
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Steering.Mode != "xdp" {
		t.Errorf("steering mode %q, want xdp", st.Steering.Mode)
	}
	if n, err := testutil.GatherAndCount(reg, "nlb_xdp_packets_total", "nlb_xdp_backend_packets_total"); err != nil || n != 2 {
		t.Errorf("nlb_xdp_* series: %d, %v", n, err)
	}
}

// TestFastPathAfterStop: the loop may still reconcile, and an adopted
// datapath still be undecided, after the datapaths were removed: nothing
// is written to them any more. Mutation checked: the nil checks dropped
// (a nil pointer dereference).
func TestFastPathAfterStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		env := newFakeEnv(rec)
		env.setNeigh("192.0.2.11", "02:00:00:00:00:11")
		old := newFakeDP(rec)
		old.adopted, old.master, old.mac = true, true, net.HardwareAddr{2, 0, 0, 0, 0, 1}
		env.dps["eth1"] = old
		a := newFakeVRRP(rec, "a", 200, "192.0.2.100/24")
		p := &lockedProxy{fakeProxy: &fakeProxy{rec: rec, ready: true}}
		p.set(be("192.0.2.11:6443", true))
		c := newFastPathController(t, vsConfig("192.0.2.100"), []VRRP{a}, env, p)
		if err := c.Listen(t.Context()); err != nil {
			t.Fatal(err)
		}
		c.fp.stop()
		a.mu.Lock()
		a.status.Master = netip.MustParseAddr("192.0.2.12")
		a.mu.Unlock()
		p.set(be("192.0.2.11:6443", false))
		ctx, cancel := context.WithCancel(t.Context())
		go c.fp.run(ctx)
		time.Sleep(macRefresh + fastPathTick)
		synctest.Wait()
		cancel()
		a.setMaster(true, netip.Addr{})
		if n := strings.Count(strings.Join(rec.list(), "\n"), "xdp service"); n != 1 {
			t.Errorf("%d service writes, want only the one before the stop: %q", n, rec.list())
		}
	})
}

// TestFastPathDrain: after a graceful handover the datapath keeps
// forwarding while clients still send VIP traffic here (counted as Backup
// traffic), and goes drainQuiet after the last of it, or at the new
// Master's second GARP burst plus drainMargin if it never stops; with no
// new Master it goes at once. Mutations checked: no drain (removed at
// once), the counter ignored (removed after drainQuiet while traffic goes
// on), no bound.
func TestFastPathDrain(t *testing.T) {
	for _, tc := range []struct {
		name      string
		taken     bool
		sendFor   time.Duration // clients keep sending here this long
		wantAfter time.Duration // removed this long after the instance returned
	}{
		{"quiet", true, 0, drainQuiet},
		{"stragglers", true, 4 * time.Second, 4*time.Second + drainQuiet},
		{"never quiet", true, time.Minute, 5*time.Second + drainMargin},
		{"nobody took over", false, time.Minute, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				env := newFakeEnv(rec)
				env.setNeigh("192.0.2.11", "02:00:00:00:00:11")
				a := newFakeVRRP(rec, "a", 200, "192.0.2.100/24")
				a.cfg.GARP.MasterDelay = 5 * time.Second
				a.release = make(chan struct{})
				p := &lockedProxy{fakeProxy: &fakeProxy{rec: rec, ready: true}}
				p.set(be("192.0.2.11:6443", true))
				c := newFastPathController(t, vsConfig("192.0.2.100"), []VRRP{a}, env, p)
				ctx, cancel := context.WithCancel(t.Context())
				if err := c.Listen(ctx); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- c.Run(ctx) }()
				a.setMaster(true, netip.Addr{})
				cancel()
				synctest.Wait()
				other := netip.Addr{}
				if tc.taken {
					other = netip.MustParseAddr("192.0.2.12")
				}
				a.setMaster(false, other)
				dp := env.dps["eth1"]
				stop := make(chan struct{})
				go func() {
					for end := time.Now().Add(tc.sendFor); time.Now().Before(end); {
						select {
						case <-stop:
							return
						case <-time.After(100 * time.Millisecond):
						}
						dp.mu.Lock()
						dp.backup++
						dp.mu.Unlock()
					}
				}()
				start := time.Now()
				close(a.release)
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				close(stop)
				if !dp.removed {
					t.Fatal("datapath not removed")
				}
				got := time.Since(start)
				// Within one poll of the expected moment.
				if got < tc.wantAfter || got > tc.wantAfter+drainPoll+100*time.Millisecond {
					t.Errorf("datapath removed %v after the handover, want %v", got, tc.wantAfter)
				}
			})
		})
	}
}
