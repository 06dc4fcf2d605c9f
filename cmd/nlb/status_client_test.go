package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/nllb"
)

// TestRenderClientStatus: nlb status shows nlb client's /status (the
// nllb.Status it serves) with both listeners and the discovered list, and
// no client sections for another command's document.
func TestRenderClientStatus(t *testing.T) {
	doc, err := json.Marshal(nllb.Status{
		APIServer: lb.Status{Listeners: []string{"127.0.0.1:7443"}, Active: 3, Total: 7, Backends: []lb.BackendStatus{
			{Address: "192.0.2.11:6443", Healthy: true, Active: 3, Total: 7},
			{Address: "192.0.2.12:6443"},
		}},
		Konnectivity:     lb.Status{Listeners: []string{"127.0.0.1:7132"}, Backends: []lb.BackendStatus{{Address: "192.0.2.11:8132", Healthy: true}}},
		Discovered:       []string{"192.0.2.11:6443", "192.0.2.12:6443"},
		KubeconfigServer: "192.0.2.11:6443",
	})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := renderStatus(&out, doc, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Proxy: API server\n  listening on 127.0.0.1:7443; 3 active connections, 7 in total\n",
		"192.0.2.11:6443  healthy", "192.0.2.12:6443  unhealthy",
		"Proxy: konnectivity\n  listening on 127.0.0.1:7132;", "192.0.2.11:8132  healthy",
		"  discovered: 192.0.2.11:6443, 192.0.2.12:6443\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("nlb status of a client lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	proxyDoc := `{"listeners":["127.0.0.1:6444"],"backends":[{"address":"192.0.2.1:6443","healthy":true}]}`
	if err := renderStatus(&out, []byte(proxyDoc), time.Now()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "API server") || strings.Contains(out.String(), "konnectivity") {
		t.Errorf("nlb status of a proxy shows client sections:\n%s", out.String())
	}
}
