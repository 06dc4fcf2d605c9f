package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/vrrp"
)

func TestRenderControllerStatus(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	st := controllerStatus{
		Instances: []controllerInstance{{
			instanceStatus: instanceStatus{Name: "k0s-vip-0", VRID: 51, Interface: "eth0", State: "Backup", Priority: 0,
				Master: "192.0.2.12", VIPs: []string{"192.0.2.100/24"}, Transitions: 3,
				LastTransition: now.Add(-12 * time.Second).Format(time.RFC3339Nano), LastReason: "priority set to 0 (releasing)"},
			Recent: []transitionStatus{{At: now.Add(-12 * time.Second).Format(time.RFC3339), From: "Master", To: "Backup", Reason: "priority set to 0 (releasing)"}},
		}},
		Health: &healthStatus{Target: "192.0.2.11:6443", Interval: "500ms", Fall: 3, Rise: 5,
			Tracked: vrrp.TrackStatus{Healthy: false, Priority: 0, NeededToRecover: 10, Changes: 3, LastError: "GET /readyz: 500"}},
		Steering: steeringStatus{Mode: "sklookup", VIPs: []string{"192.0.2.100"}, Port: 6443, ProxyPort: 6444},
		Proxy: &lb.Status{Listeners: []string{"[::]:6444"}, Active: 2, Total: 9, Backends: []lb.BackendStatus{
			{Address: "192.0.2.11:6443", Healthy: false, Active: 0, Total: 4, DialFailures: 2},
			{Address: "192.0.2.12:6443", Healthy: true, Active: 2, Total: 5, BytesIn: 2048, BytesOut: 3 << 20},
		}},
	}
	body, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := renderStatus(&out, body, now); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"k0s-vip-0", "Backup", "192.0.2.12", "12s ago: priority set to 0 (releasing)",
		"FAILED: local API server 192.0.2.11:6443", "now 10 while flapping", "last error: GET /readyz: 500",
		"sklookup: 192.0.2.100 port 6443 -> proxy port 6444",
		"192.0.2.11:6443  unhealthy", "192.0.2.12:6443  healthy", "3.0 MiB", "2.0 KiB",
		"Recent transitions", "Master -> Backup",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

func TestStatusCommand(t *testing.T) {
	// nlb proxy's /status is an lb.Status at the top level.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(lb.Status{Listeners: []string{"127.0.0.1:6444"}, FailOpen: true,
			Backends: []lb.BackendStatus{{Address: "198.51.100.7:6443"}}})
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"status", "--admin", srv.URL}, &out, &errb); err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	for _, want := range []string{"listening on 127.0.0.1:6444", "FAILING OPEN", "198.51.100.7:6443  unhealthy"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := run(context.Background(), []string{"status", "--admin", srv.URL, "--json"}, &out, &errb); err != nil || !json.Valid(out.Bytes()) {
		t.Errorf("--json: %v: %q", err, out.String())
	}
	if err := run(context.Background(), []string{"status", "--admin", "127.0.0.1:1", "--timeout", "1s"}, &out, &errb); err == nil ||
		!strings.Contains(err.Error(), "is nlb running") {
		t.Errorf("unreachable admin: %v", err)
	}
}
