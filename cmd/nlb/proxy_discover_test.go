package main

import (
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/lb/k8s"
)

// TestProxyDiscoverReloadExclusive: a discovery change that arrives while
// a SIGHUP reload runs waits for it, so the reload (which reads the
// discovered list first) cannot put an older list back; and a reload after
// it takes the discovered list, not the file's.
func TestProxyDiscoverReloadExclusive(t *testing.T) {
	fileBackends := []string{"192.0.2.1:6443"}
	p, err := lb.New(lb.Config{Listen: []string{"127.0.0.1:0"}, Backends: fileBackends,
		HealthCheck: lb.HealthCheck{Type: lb.CheckNone}}, lb.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	backends := func() []string {
		var a []string
		for _, b := range p.Status().Backends {
			a = append(a, b.Address)
		}
		slices.Sort(a)
		return a
	}
	d := &proxyDiscover{enabled: true, kubeconfig: "admin.conf", kc: &k8s.Kubeconfig{}}
	discovered := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.2:6443"), netip.MustParseAddrPort("192.0.2.3:6443")}

	inside, release := make(chan struct{}), make(chan struct{})
	reloaded := make(chan error, 1)
	go d.exclusive(func() {
		close(inside)
		<-release
		cfg := lb.Config{Listen: []string{"127.0.0.1:0"}, Backends: fileBackends, HealthCheck: lb.HealthCheck{Type: lb.CheckNone}}
		err := d.fill(&cfg)
		if err == nil {
			err = p.Reload(cfg)
		}
		reloaded <- err
	})
	<-inside
	updated := make(chan struct{})
	go func() { d.update(p, discovered); close(updated) }()
	select {
	case <-updated:
		t.Fatal("a discovery change was applied in the middle of a reload")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
	select {
	case <-updated:
	case <-time.After(10 * time.Second):
		t.Fatal("the discovery change never applied")
	}
	want := []string{"192.0.2.2:6443", "192.0.2.3:6443"}
	if got := backends(); !slices.Equal(got, want) {
		t.Errorf("backends after the change %v, want %v", got, want)
	}
	// A later reload keeps the discovered backends.
	cfg := lb.Config{Listen: []string{"127.0.0.1:0"}, Backends: fileBackends, HealthCheck: lb.HealthCheck{Type: lb.CheckNone}}
	if err := d.fill(&cfg); err != nil {
		t.Fatal(err)
	}
	if err := p.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := backends(); !slices.Equal(got, want) {
		t.Errorf("backends after a reload %v, want %v", got, want)
	}
}
