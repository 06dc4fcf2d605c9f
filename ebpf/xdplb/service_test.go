package xdplb

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestOptionsDefaultsAndBounds(t *testing.T) {
	o := Options{}.withDefaults()
	want := Options{FlowTableSize: DefaultFlowTableSize, MaxServices: DefaultMaxServices, MaxBackends: DefaultMaxBackends, MaxTableSize: DefaultMaxTableSize}
	if o != want {
		t.Errorf("defaults %+v, want %+v", o, want)
	}
	if err := o.validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	err := Options{FlowTableSize: -1, MaxServices: maxServices + 1, MaxBackends: -5, MaxTableSize: maxTableSize + 1}.validate()
	for _, field := range []string{"FlowTableSize", "MaxServices", "MaxBackends", "MaxTableSize"} {
		if err == nil || !strings.Contains(err.Error(), "Options."+field) {
			t.Errorf("error %v does not name %s", err, field)
		}
	}
	err = Options{FlowTableSize: 1, MaxServices: maxServices, MaxBackends: 1, MaxTableSize: maxTableSize}.validate()
	if err == nil || !strings.Contains(err.Error(), "Maglev entries") {
		t.Errorf("too many Maglev entries: %v", err)
	}
}

func TestServiceValidate(t *testing.T) {
	o := Options{MaxBackends: 3, MaxTableSize: 5}.withDefaults()
	mac := func(b byte) net.HardwareAddr { return net.HardwareAddr{2, 0, 0, 0, 0, b} }
	be := func(a string, m net.HardwareAddr) Backend { return Backend{Addr: netip.MustParseAddr(a), MAC: m} }
	good := Service{VIP: netip.MustParseAddr("192.0.2.100"), Port: 6443,
		Backends: []Backend{be("203.0.113.1", mac(1)), be("203.0.113.2", mac(2))}, Table: []uint32{0, 1, 0, 1, NoBackend}}
	if err := good.validate(o); err != nil {
		t.Errorf("good service: %v", err)
	}
	if err := (Service{VIP: netip.MustParseAddr("::ffff:192.0.2.1"), Port: 1}).validate(o); err != nil {
		t.Errorf("IPv4-mapped VIP, no backends: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Service)
		want []string
	}{
		{"bad VIP and port", func(s *Service) { s.VIP = netip.Addr{}; s.Port = 0 }, []string{"invalid VIP", "port 0"}},
		{"multicast VIP", func(s *Service) { s.VIP = netip.MustParseAddr("224.0.0.18") }, []string{"invalid VIP"}},
		{"zone", func(s *Service) { s.VIP = netip.MustParseAddr("fe80::1%eth0") }, []string{"invalid VIP"}},
		{"too many backends", func(s *Service) {
			s.Backends = append(s.Backends, be("203.0.113.3", mac(3)), be("203.0.113.4", mac(4)))
		}, []string{"4 backends, at most 3 (Options.MaxBackends)"}},
		{"backend problems", func(s *Service) {
			s.Backends = []Backend{{MAC: mac(1)}, be("203.0.113.1", net.HardwareAddr{1, 0, 0, 0, 0, 1}), be("::ffff:203.0.113.1", make(net.HardwareAddr, 6))}
			s.Table = nil
		}, []string{"Backends[0]: no Addr", "Backends[1]: MAC 01:00:00:00:00:01 is a group address", "Backends[2]: Addr 203.0.113.1 is also Backends[1]'s", "Backends[2]: MAC is zero"}},
		{"short MAC", func(s *Service) { s.Backends[1].MAC = net.HardwareAddr{2, 0} }, []string{"Backends[1]: MAC \"02:00\" is not a 6-byte"}},
		{"table", func(s *Service) { s.Table = []uint32{0, 1, 2, 0, 1, 7} }, []string{"table of 6 entries, at most 5", "Table[2] = 2, but there are 2 backends", "Table[5] = 7"}},
		{"bounded", func(s *Service) { s.Table = make([]uint32, 5); s.Backends = nil }, []string{"Table[0]", "Table[4]"}},
	} {
		s := good
		s.Backends = slices.Clone(good.Backends)
		tc.mod(&s)
		err := s.validate(o)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want %q", tc.name, err, w)
			}
		}
	}
	many := good
	many.Table = []uint32{9, 9, 9, 9, 9}
	many.VIP = netip.Addr{}
	many.Port = 0
	many.Backends = []Backend{{}, {}, {}}
	err := many.validate(o)
	if n := strings.Count(err.Error(), "\n") + 1; n != maxProblems+1 || !strings.Contains(err.Error(), "more problems") {
		t.Errorf("unbounded problems (%d lines): %v", n, err)
	}
}

func TestAssignSlotsStable(t *testing.T) {
	bs := func(addrs ...string) []Backend {
		var out []Backend
		for _, a := range addrs {
			out = append(out, Backend{Addr: netip.MustParseAddr(a)})
		}
		return out
	}
	slots, m := assignSlots(nil, bs("203.0.113.1", "203.0.113.2", "203.0.113.3"), 4)
	if !slices.Equal(slots, []uint32{0, 1, 2}) {
		t.Fatalf("first slots %v", slots)
	}
	// .1 leaves, .3 moves first, .4 and .5 come: kept slots stay, new
	// ones take the lowest free.
	slots, m = assignSlots(m, bs("203.0.113.3", "203.0.113.4", "203.0.113.2", "::ffff:203.0.113.5"), 4)
	if !slices.Equal(slots, []uint32{2, 0, 1, 3}) {
		t.Errorf("slots %v, want [2 0 1 3]", slots)
	}
	if m[netip.MustParseAddr("203.0.113.5")] != 3 || len(m) != 4 {
		t.Errorf("map %v", m)
	}
}
