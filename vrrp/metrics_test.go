package vrrp

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.setState("k0s-vip-0", 51, Backup)
	m.transition("k0s-vip-0", 51, Backup, Master)
	m.advertSent("k0s-vip-0", 51)
	m.advertSent("k0s-vip-0", 51)
	m.advertReceived("k0s-vip-0", 51)
	m.packetDropped("k0s-vip-0", 51, DropAuth)
	m.effectError("k0s-vip-0", effectAddVIPs)

	want := `
# HELP nlb_vrrp_adverts_received_total VRRP advertisements received that passed the receive checks.
# TYPE nlb_vrrp_adverts_received_total counter
nlb_vrrp_adverts_received_total{instance="k0s-vip-0",vrid="51"} 1
# HELP nlb_vrrp_adverts_sent_total VRRP advertisements sent, counted once per destination.
# TYPE nlb_vrrp_adverts_sent_total counter
nlb_vrrp_adverts_sent_total{instance="k0s-vip-0",vrid="51"} 2
# HELP nlb_vrrp_effect_errors_total Failed side effects (address changes, announcements, sends).
# TYPE nlb_vrrp_effect_errors_total counter
nlb_vrrp_effect_errors_total{effect="add_vips",instance="k0s-vip-0"} 1
# HELP nlb_vrrp_packets_dropped_total Received VRRP packets discarded by the receive checks, by reason.
# TYPE nlb_vrrp_packets_dropped_total counter
nlb_vrrp_packets_dropped_total{instance="k0s-vip-0",reason="auth",vrid="51"} 1
# HELP nlb_vrrp_state VRRP state of the instance: 0 Initialize, 1 Backup, 2 Master.
# TYPE nlb_vrrp_state gauge
nlb_vrrp_state{instance="k0s-vip-0",vrid="51"} 2
# HELP nlb_vrrp_transitions_total VRRP state transitions.
# TYPE nlb_vrrp_transitions_total counter
nlb_vrrp_transitions_total{from="Backup",instance="k0s-vip-0",to="Master",vrid="51"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}

	// A second registration of the same names fails.
	if _, err := NewMetrics(reg); err == nil || !strings.HasPrefix(err.Error(), "vrrp: ") {
		t.Errorf("second NewMetrics = %v, want a vrrp: error", err)
	}
	// Unregistered instruments work too.
	if _, err := NewMetrics(nil); err != nil {
		t.Error(err)
	}
}

func TestMetricsNil(t *testing.T) {
	var m *Metrics
	m.setState("x", 1, Master)
	m.transition("x", 1, Backup, Master)
	m.advertSent("x", 1)
	m.advertReceived("x", 1)
	m.packetDropped("x", 1, DropTTL)
	m.effectError("x", effectSend)
}
