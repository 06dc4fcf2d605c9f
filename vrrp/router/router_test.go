package router

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/vrrp"
)

// TestStatusOf: the mapping of a protocol status to /status's JSON, field
// by field, and the JSON names the labs, the demo and nlb status read.
func TestStatusOf(t *testing.T) {
	in := config.Instance{Name: "k0s-vip-0", Interface: "eth1",
		VIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24"), netip.MustParsePrefix("192.0.2.101/32")}}
	at := time.Date(2026, 11, 21, 13, 0, 0, 5, time.FixedZone("CET", 3600))
	for _, tc := range []struct {
		name string
		s    vrrp.InstanceStatus
		want string
	}{{
		name: "master",
		s: vrrp.InstanceStatus{Name: "k0s-vip-0", VRID: 51, State: vrrp.Master, Priority: 200,
			Master: netip.MustParseAddr("192.0.2.11"), MasterDownInterval: 3218750 * time.Microsecond,
			Transitions: 2, LastTransition: at, LastReason: "master down timer expired", VIPsConfigured: true},
		want: `{"name":"k0s-vip-0","vrid":51,"interface":"eth1","state":"Master","priority":200,"master":"192.0.2.11",` +
			`"vips":["192.0.2.100/24","192.0.2.101/32"],"vips_configured":true,"transitions":2,` +
			`"last_transition":"2026-11-21T12:00:00.000000005Z","last_reason":"master down timer expired","master_down_interval_ms":3218.75}`,
	}, {
		name: "fault, nothing seen yet",
		s:    vrrp.InstanceStatus{Name: "k0s-vip-0", VRID: 51, State: vrrp.Initialize, Priority: 100, Fault: true},
		want: `{"name":"k0s-vip-0","vrid":51,"interface":"eth1","state":"Initialize","priority":100,` +
			`"vips":["192.0.2.100/24","192.0.2.101/32"],"vips_configured":false,"fault":true,"transitions":0,"master_down_interval_ms":0}`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(StatusOf(in, tc.s))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("got  %s\nwant %s", b, tc.want)
			}
		})
	}
}

// fakeRunner is an instance for runAll.
type fakeRunner struct {
	name    string
	fail    error // returned at once when set
	stopped chan struct{}
}

func (f *fakeRunner) Config() config.Instance { return config.Instance{Name: f.name} }

func (f *fakeRunner) Run(ctx context.Context) error {
	defer close(f.stopped)
	if f.fail != nil {
		return f.fail
	}
	<-ctx.Done()
	return nil
}

// TestRunAllOneFailingStopsAll: an instance that fails stops the others,
// and the error names it.
func TestRunAllOneFailingStopsAll(t *testing.T) {
	boom := errors.New("socket: read: boom")
	a := &fakeRunner{name: "a", stopped: make(chan struct{})}
	b := &fakeRunner{name: "b", fail: boom, stopped: make(chan struct{})}
	c := &fakeRunner{name: "c", stopped: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- runAll(context.Background(), []runner{a, b, c}) }()
	select {
	case err := <-done:
		if !errors.Is(err, boom) || err.Error() != "vrrp: instance b: socket: read: boom" {
			t.Errorf("err = %v, want vrrp: instance b: %v", err, boom)
		}
	case <-time.After(time.Minute): // a safety bound, not a measure
		t.Fatal("runAll did not return after an instance failed")
	}
	for _, r := range []*fakeRunner{a, c} {
		select {
		case <-r.stopped:
		default:
			t.Errorf("instance %s still running after runAll returned", r.name)
		}
	}
}

// TestRunAllStopsOnCancel: every instance gets the cancellation, and a
// clean stop is no error.
func TestRunAllStopsOnCancel(t *testing.T) {
	var rs []runner
	var fakes []*fakeRunner
	for _, n := range []string{"a", "b"} {
		f := &fakeRunner{name: n, stopped: make(chan struct{})}
		rs, fakes = append(rs, f), append(fakes, f)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var err error
	wg.Add(1)
	go func() { defer wg.Done(); err = runAll(ctx, rs) }()
	cancel()
	wg.Wait()
	if err != nil {
		t.Errorf("runAll = %v after cancel, want nil", err)
	}
	for _, f := range fakes {
		select {
		case <-f.stopped:
		default:
			t.Errorf("instance %s not stopped", f.name)
		}
	}
}

// TestListenErrors: what fails before any socket is opened says which
// instance and interface, and opens nothing (no root needed).
func TestListenErrors(t *testing.T) {
	const missing = "nlb-nosuch0" // no such link; nothing is created
	in := config.Instance{Name: "k0s-vip-0", Interface: missing, VRID: 51, Priority: 100, Version: vrrp.Version3,
		Interval: time.Second, VIPs: []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24")}}
	_, err := Listen(in, Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "vrrp: instance k0s-vip-0 on "+missing+": ") {
		t.Errorf("Listen on a missing link: %v, want an error naming the instance and the interface", err)
	}
}

// TestListenGroupErrors: a configuration whose interface does not exist,
// or that has nothing to run, fails before any instance is opened, and
// registers no metrics.
func TestListenGroupErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{{
		name: "missing interface",
		doc:  "enabled: true\nkeepalived:\n  vrrpInstances:\n  - {virtualIPs: [192.0.2.100/24], authPass: x, interface: nlb-nosuch0}\n",
		want: "nlb-nosuch0",
	}, {
		name: "nothing to run",
		doc:  "enabled: false\n",
		want: "nothing to run",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Load(strings.NewReader(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			g, err := ListenGroup(cfg, reg, Options{})
			if err == nil {
				_ = g.Close()
				t.Fatalf("ListenGroup succeeded, want an error mentioning %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
			if _, err := vrrp.NewMetrics(reg); err != nil {
				t.Errorf("a failed start left its metrics registered: %v", err)
			}
		})
	}
}
