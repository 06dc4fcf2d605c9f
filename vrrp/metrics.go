package vrrp

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Effect names, the values of the "effect" label of
// nlb_vrrp_effect_errors_total.
const (
	effectAddVIPs     = "add_vips"
	effectRefreshVIPs = "refresh_vips"
	effectRemoveVIPs  = "remove_vips"
	effectAnnounce    = "announce"
	effectSend        = "send_advert"
)

// Metrics are the Prometheus instruments of the VRRP instances of one
// process. One Metrics is shared by all instances; they are told apart by
// the "instance" and "vrid" labels. A nil *Metrics is valid and records
// nothing.
//
//	nlb_vrrp_state{instance,vrid}                       gauge: 0 Initialize, 1 Backup, 2 Master
//	nlb_vrrp_transitions_total{instance,vrid,from,to}   counter
//	nlb_vrrp_adverts_sent_total{instance,vrid}          counter
//	nlb_vrrp_adverts_received_total{instance,vrid}      counter: adverts that passed the Filter
//	nlb_vrrp_packets_dropped_total{instance,vrid,reason} counter: reason is a DropReason
//	nlb_vrrp_effect_errors_total{instance,effect}       counter: effect is add_vips,
//	                                                     refresh_vips, remove_vips, announce
//	                                                     or send_advert
type Metrics struct {
	state        *prometheus.GaugeVec
	transitions  *prometheus.CounterVec
	sent         *prometheus.CounterVec
	received     *prometheus.CounterVec
	dropped      *prometheus.CounterVec
	effectErrors *prometheus.CounterVec
}

// NewMetrics creates the VRRP instruments and registers them with reg. A
// nil reg creates unregistered instruments. It fails if any of them is
// already registered.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nlb_vrrp_state",
			Help: "VRRP state of the instance: 0 Initialize, 1 Backup, 2 Master.",
		}, []string{"instance", "vrid"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nlb_vrrp_transitions_total",
			Help: "VRRP state transitions.",
		}, []string{"instance", "vrid", "from", "to"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nlb_vrrp_adverts_sent_total",
			Help: "VRRP advertisements sent, counted once per destination.",
		}, []string{"instance", "vrid"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nlb_vrrp_adverts_received_total",
			Help: "VRRP advertisements received that passed the receive checks.",
		}, []string{"instance", "vrid"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nlb_vrrp_packets_dropped_total",
			Help: "Received VRRP packets discarded by the receive checks, by reason.",
		}, []string{"instance", "vrid", "reason"}),
		effectErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nlb_vrrp_effect_errors_total",
			Help: "Failed side effects (address changes, announcements, sends).",
		}, []string{"instance", "effect"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.state, m.transitions, m.sent, m.received, m.dropped, m.effectErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("vrrp: registering metrics: %w", err)
		}
	}
	return m, nil
}

func vridLabel(vrid uint8) string { return strconv.Itoa(int(vrid)) }

func (m *Metrics) setState(instance string, vrid uint8, s State) {
	if m == nil {
		return
	}
	m.state.WithLabelValues(instance, vridLabel(vrid)).Set(float64(s))
}

func (m *Metrics) transition(instance string, vrid uint8, from, to State) {
	if m == nil {
		return
	}
	m.transitions.WithLabelValues(instance, vridLabel(vrid), from.String(), to.String()).Inc()
	m.state.WithLabelValues(instance, vridLabel(vrid)).Set(float64(to))
}

func (m *Metrics) advertSent(instance string, vrid uint8) {
	if m == nil {
		return
	}
	m.sent.WithLabelValues(instance, vridLabel(vrid)).Inc()
}

func (m *Metrics) advertReceived(instance string, vrid uint8) {
	if m == nil {
		return
	}
	m.received.WithLabelValues(instance, vridLabel(vrid)).Inc()
}

func (m *Metrics) packetDropped(instance string, vrid uint8, reason DropReason) {
	if m == nil {
		return
	}
	m.dropped.WithLabelValues(instance, vridLabel(vrid), string(reason)).Inc()
}

func (m *Metrics) effectError(instance, effect string) {
	if m == nil {
		return
	}
	m.effectErrors.WithLabelValues(instance, effect).Inc()
}
