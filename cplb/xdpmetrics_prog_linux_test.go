//go:build linux

package cplb

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nlb-dev/nlb/ebpf/xdplb"
	"github.com/nlb-dev/nlb/internal/netlab"
)

// synFrame is an Ethernet frame carrying an IPv4 TCP SYN from client to
// vip, built by hand (xdplb's frame builders are its tests' own). The
// program checks lengths, not checksums.
func synFrame(dstMAC net.HardwareAddr, client, vip netip.AddrPort) []byte {
	f := make([]byte, 14+20+20)
	copy(f[0:6], dstMAC)
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 0x01})
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 40)
	ip[8], ip[9] = 64, 6
	src, dst := client.Addr().As4(), vip.Addr().As4()
	copy(ip[12:], src[:])
	copy(ip[16:], dst[:])
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], client.Port())
	binary.BigEndian.PutUint16(tcp[2:], vip.Port())
	tcp[12], tcp[13] = 0x50, 0x02 // data offset 5, SYN
	return f
}

// TestXDPMetricsFromProgram: the metrics read the loaded program's maps
// through *xdplb.Objects: a SYN to the VIP run through BPF_PROG_RUN counts
// as a packet and a new flow of the service and its backend, and a frame
// cut after the Ethernet header as a malformed event.
func TestXDPMetricsFromProgram(t *testing.T) {
	netlab.Require(t)
	o, err := xdplb.Load(xdplb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	lbMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x10}
	vip := netip.MustParseAddrPort("192.0.2.10:6443")
	be := netip.MustParseAddr("192.0.2.11")
	if err := o.SetMAC(lbMAC); err != nil {
		t.Fatal(err)
	}
	if err := o.SetMaster(true); err != nil {
		t.Fatal(err)
	}
	if err := o.SetService(xdplb.Service{VIP: vip.Addr(), Port: vip.Port(), Table: []uint32{0},
		Backends: []xdplb.Backend{{Addr: be, MAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x21}}}}); err != nil {
		t.Fatal(err)
	}
	syn := synFrame(lbMAC, netip.MustParseAddrPort("198.51.100.7:40000"), vip)
	for _, f := range [][]byte{syn, syn[:14]} {
		opts := ebpf.RunOptions{Data: f, DataOut: make([]byte, len(f)+512)}
		if _, err := o.Program().Run(&opts); err != nil {
			t.Fatalf("BPF_PROG_RUN: %v", err)
		}
	}

	reg := prometheus.NewRegistry()
	if err := RegisterXDPMetrics(reg, o); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP nlb_xdp_backend_new_flows_total SYNs that missed the XDP program's flow table, per backend of a service.
# TYPE nlb_xdp_backend_new_flows_total counter
nlb_xdp_backend_new_flows_total{backend="192.0.2.11",port="6443",vip="192.0.2.10"} 1
# HELP nlb_xdp_backend_packets_total Packets the XDP program handled (forwarded, or passed to the local backend; ICMP errors included), per backend of a service.
# TYPE nlb_xdp_backend_packets_total counter
nlb_xdp_backend_packets_total{backend="192.0.2.11",port="6443",vip="192.0.2.10"} 1
# HELP nlb_xdp_bytes_total Bytes (Ethernet header and IP packet) the XDP program handled, per service.
# TYPE nlb_xdp_bytes_total counter
nlb_xdp_bytes_total{port="6443",vip="192.0.2.10"} 54
# HELP nlb_xdp_events_total What the XDP program passed to the local stack instead of forwarding (malformed, fragment, loop_guard, local, no_backend), the ICMP errors about VIP flows it forwarded (icmp_forwarded), and the VIP traffic it forwarded while Backup (backup: clients with a stale ARP entry after a VIP move).
# TYPE nlb_xdp_events_total counter
nlb_xdp_events_total{event="backup"} 0
nlb_xdp_events_total{event="fragment"} 0
nlb_xdp_events_total{event="icmp_forwarded"} 0
nlb_xdp_events_total{event="local"} 0
nlb_xdp_events_total{event="loop_guard"} 0
nlb_xdp_events_total{event="malformed"} 1
nlb_xdp_events_total{event="no_backend"} 0
# HELP nlb_xdp_new_flows_total SYNs that missed the XDP program's flow table, per service.
# TYPE nlb_xdp_new_flows_total counter
nlb_xdp_new_flows_total{port="6443",vip="192.0.2.10"} 1
# HELP nlb_xdp_packets_total Packets the XDP program handled (forwarded, or passed to the local backend; ICMP errors included), per service.
# TYPE nlb_xdp_packets_total counter
nlb_xdp_packets_total{port="6443",vip="192.0.2.10"} 1
# HELP nlb_xdp_rehashed_flows_total Other TCP packets that missed the XDP program's flow table and were sent by the Maglev table, per service.
# TYPE nlb_xdp_rehashed_flows_total counter
nlb_xdp_rehashed_flows_total{port="6443",vip="192.0.2.10"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "nlb_xdp_packets_total", "nlb_xdp_bytes_total",
		"nlb_xdp_new_flows_total", "nlb_xdp_rehashed_flows_total", "nlb_xdp_backend_packets_total",
		"nlb_xdp_backend_new_flows_total", "nlb_xdp_events_total"); err != nil {
		t.Error(err)
	}
}
