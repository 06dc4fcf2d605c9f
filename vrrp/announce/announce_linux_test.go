//go:build linux

package announce

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
	"github.com/nlb-dev/nlb/vrrp/vip"
	"golang.org/x/net/ipv6"
)

const wait = 3 * time.Second

var staleMAC = net.HardwareAddr{0x02, 0xde, 0xad, 0xbe, 0xef, 0x01}

type capturedNA struct {
	na       *ndp.NeighborAdvertisement
	src      netip.Addr
	hopLimit int
}

// captureARP returns the first ARP frame h receives whose sender protocol
// address is ip.
func captureARP(t *testing.T, h *netlab.Host, ip netip.Addr) (<-chan *ethernet.Frame, func()) {
	t.Helper()
	var pc *packet.Conn
	if err := h.Run(func() error {
		ifi, err := net.InterfaceByName(h.IfName)
		if err != nil {
			return err
		}
		pc, err = packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *ethernet.Frame, 1)
	go func() {
		defer close(ch)
		_ = pc.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, 1514)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var f ethernet.Frame
			var p arp.Packet
			if f.UnmarshalBinary(buf[:n]) != nil || p.UnmarshalBinary(f.Payload) != nil || p.SenderIP != ip {
				continue
			}
			ch <- &f
			return
		}
	}()
	return ch, func() { pc.Close() }
}

// captureNA returns the first Neighbor Advertisement h receives for target.
func captureNA(t *testing.T, h *netlab.Host, target netip.Addr) (<-chan capturedNA, func()) {
	t.Helper()
	var c *ndp.Conn
	if err := h.Run(func() error {
		ifi, err := net.InterfaceByName(h.IfName)
		if err != nil {
			return err
		}
		c, _, err = ndp.Listen(ifi, ndp.Unspecified)
		if err != nil {
			return err
		}
		return c.SetControlMessage(ipv6.FlagHopLimit, true)
	}); err != nil {
		t.Fatal(err)
	}
	ch := make(chan capturedNA, 1)
	go func() {
		defer close(ch)
		_ = c.SetReadDeadline(time.Now().Add(wait))
		for {
			m, cm, src, err := c.ReadFrom()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, net.ErrClosed) {
					return
				}
				continue // a message ndp cannot parse (MLD, ...)
			}
			na, ok := m.(*ndp.NeighborAdvertisement)
			if !ok || na.TargetAddress != target {
				continue
			}
			got := capturedNA{na: na, src: src.WithZone(""), hopLimit: -1}
			if cm != nil {
				got.hopLimit = cm.HopLimit
			}
			ch <- got
			return
		}
	}()
	return ch, func() { c.Close() }
}

// waitNeighbor waits (nlbtest.Poll, at most wait) until h's neighbour
// entry for ip has want's MAC address.
func waitNeighbor(t *testing.T, h *netlab.Host, ip netip.Addr, want net.HardwareAddr) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	err := nlbtest.Poll(ctx, nlbtest.PollInterval, fmt.Sprintf("%s: neighbour %v", h.Name, ip), func() error {
		got, err := h.Neighbor(ip)
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			return fmt.Errorf("%v, want %v", got, want)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func TestAnnounce(t *testing.T) {
	l := netlab.NewT(t, "announce", netlab.Options{Hosts: 2})
	h1, h2 := l.Hosts[0], l.Hosts[1]
	v4, v6 := l.VIP4(1), netip.PrefixFrom(l.VIP6(1).Addr(), 128)
	unconfigured := l.VIP6(2).Addr() // announced but not on h1: link-local source

	m := vip.New(h1.IfName, []netip.Prefix{v4, v6}, vip.Options{})
	if err := h1.Run(m.Add); err != nil {
		t.Fatal(err)
	}
	// Linux updates, but does not create, neighbour entries from
	// gratuitous ARP / unsolicited NA: seed stale, wrong ones.
	for _, ip := range []netip.Addr{v4.Addr(), v6.Addr(), unconfigured} {
		if err := h2.SetNeighbor(ip, staleMAC); err != nil {
			t.Fatal(err)
		}
	}

	arpc, closeARP := captureARP(t, h2, v4.Addr())
	defer closeARP()
	nac, closeNA := captureNA(t, h2, v6.Addr())
	defer closeNA()
	nac2, closeNA2 := captureNA(t, h2, unconfigured)
	defer closeNA2()

	var a *Announcer
	if err := h1.Run(func() error {
		var err error
		a, err = Dial(h1.IfName)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Announce([]netip.Addr{v4.Addr(), v6.Addr(), unconfigured}); err != nil {
		t.Fatal(err)
	}

	// GARP, as captured on h2.
	f, ok := <-arpc
	if !ok {
		t.Fatal("no gratuitous ARP captured on h2")
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		t.Fatal(err)
	}
	bc := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	if f.Destination.String() != bc.String() || f.Source.String() != h1.MAC.String() ||
		p.Operation != arp.OperationRequest || p.SenderHardwareAddr.String() != h1.MAC.String() ||
		p.SenderIP != v4.Addr() || p.TargetIP != v4.Addr() || p.TargetHardwareAddr.String() != bc.String() {
		t.Errorf("GARP: eth %v > %v, %+v", f.Source, f.Destination, p)
	}

	// NA from the VIP itself.
	for _, tt := range []struct {
		ch      <-chan capturedNA
		wantSrc netip.Addr
	}{
		{nac, v6.Addr()},
		{nac2, h1.LinkLocal},
	} {
		got, ok := <-tt.ch
		if !ok {
			t.Fatalf("no neighbor advertisement captured for source %v", tt.wantSrc)
		}
		na := got.na
		lla, _ := na.Options[0].(*ndp.LinkLayerAddress)
		if got.src != tt.wantSrc || got.hopLimit != 255 || !na.Override || na.Solicited || na.Router ||
			len(na.Options) != 1 || lla == nil || lla.Direction != ndp.Target || lla.Addr.String() != h1.MAC.String() {
			t.Errorf("NA from %v hop limit %d: %+v (want source %v)", got.src, got.hopLimit, na, tt.wantSrc)
		}
	}

	// And h2's neighbour table follows.
	for _, ip := range []netip.Addr{v4.Addr(), v6.Addr(), unconfigured} {
		waitNeighbor(t, h2, ip, h1.MAC)
	}
}

func TestDialErrors(t *testing.T) {
	l := netlab.NewT(t, "annerr", netlab.Options{Hosts: 1})
	h := l.Hosts[0]
	if err := h.Run(func() error {
		_, err := Dial("nlbnosuchif0")
		return err
	}); err == nil {
		t.Error("Dial on a missing interface succeeded")
	}
	// Loopback has no Ethernet address.
	if err := h.Run(func() error {
		_, err := Dial("lo")
		return err
	}); err == nil {
		t.Error("Dial on lo succeeded")
	}
}
