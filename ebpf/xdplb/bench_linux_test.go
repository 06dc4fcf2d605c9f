//go:build linux

package xdplb

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// The program's cost per packet through BPF_PROG_RUN, as the kernel times
// it (the "ns/run" metric; ns/op adds the Go side). Speed goals: at most
// 100 ns for an established flow, 300 ns for a new one. Run as root:
//
//	go test -run '^$' -bench ProgRun ./ebpf/xdplb/

func benchLab(b *testing.B, vip netip.AddrPort) *lab {
	svc := Service{VIP: vip.Addr(), Port: vip.Port(), Backends: backends(vip.Addr().Is6(), 7, -1), Table: identity(7)}
	return newLab(b, Options{}, svc)
}

func benchFamilies(b *testing.B, fn func(b *testing.B, client, vip netip.AddrPort)) {
	b.Run("IPv4", func(b *testing.B) { fn(b, client4, vip4) })
	b.Run("IPv6", func(b *testing.B) { fn(b, client6, vip6) })
}

// BenchmarkProgRunEstablished: one established flow's packet, repeated by
// the kernel b.N times in one BPF_PROG_RUN.
func BenchmarkProgRunEstablished(b *testing.B) {
	benchFamilies(b, func(b *testing.B, client, vip netip.AddrPort) {
		l := benchLab(b, vip)
		l.run(tcpFrame(client, vip, syn, nil))
		f := tcpFrame(client, vip, ack|psh, make([]byte, 100))
		repeat(b, l, f, xdpTX)
	})
}

// BenchmarkProgRunNonVIP: TCP to another port of the VIP address.
func BenchmarkProgRunNonVIP(b *testing.B) {
	l := benchLab(b, vip4)
	repeat(b, l, tcpFrame(client4, netip.AddrPortFrom(vip4.Addr(), 10250), ack, nil), xdpPass)
}

func repeat(b *testing.B, l *lab, f []byte, want uint32) {
	ret, d, err := l.o.Program().Benchmark(f, b.N, b.ResetTimer)
	if err != nil {
		b.Fatal(err)
	}
	if ret != want {
		b.Fatalf("verdict %d, want %d", ret, want)
	}
	b.ReportMetric(float64(d.Nanoseconds()), "ns/run")
}

// BenchmarkProgRunNewFlow: a SYN with a distinct 5-tuple on every run, one
// BPF_PROG_RUN each (the kernel reuses its input for repeated runs), into
// the default-sized flow table, which starts evicting after
// DefaultFlowTableSize flows. The kernel's timing of a single run adds
// about one clock read to it (compare BenchmarkProgRunEstablishedPerCall).
func BenchmarkProgRunNewFlow(b *testing.B) {
	benchFamilies(b, func(b *testing.B, client, vip netip.AddrPort) {
		l := benchLab(b, vip)
		f := tcpFrame(client, vip, syn, nil)
		// The client address's last byte (198.51.100.x, 2001:db8:1::x)
		// and the client port: 2^24 distinct flows.
		addr, port := 14+12+3, 14+20
		if vip.Addr().Is6() {
			addr, port = 14+8+15, 14+40
		}
		perCall(b, l, f, func(i int) {
			f[addr] = byte(i >> 16)
			binary.BigEndian.PutUint16(f[port:], uint16(i))
		})
		if n := l.service(vip).NewFlows; n < uint64(b.N) {
			b.Fatalf("%d new flows in %d runs", n, b.N)
		}
	})
}

// BenchmarkProgRunEstablishedPerCall: BenchmarkProgRunEstablished timed
// like BenchmarkProgRunNewFlow, one BPF_PROG_RUN per packet.
func BenchmarkProgRunEstablishedPerCall(b *testing.B) {
	benchFamilies(b, func(b *testing.B, client, vip netip.AddrPort) {
		l := benchLab(b, vip)
		l.run(tcpFrame(client, vip, syn, nil))
		perCall(b, l, tcpFrame(client, vip, ack|psh, make([]byte, 100)), func(int) {})
	})
}

func perCall(b *testing.B, l *lab, f []byte, next func(i int)) {
	p := l.o.Program()
	var total int64
	b.ResetTimer()
	for i := range b.N {
		next(i)
		ret, d, err := p.Benchmark(f, 1, nil)
		if err != nil {
			b.Fatal(err)
		}
		if ret != xdpTX {
			b.Fatalf("run %d: verdict %d, want XDP_TX", i, ret)
		}
		total += d.Nanoseconds()
	}
	b.ReportMetric(float64(total)/float64(b.N), "ns/run")
}
