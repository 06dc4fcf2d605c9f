package announce

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

// broadcast is the Ethernet broadcast address.
func broadcast() net.HardwareAddr { return net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} }

// AllNodes is ff02::1, the destination of an unsolicited Neighbor
// Advertisement (RFC 4861 §7.2.6).
func AllNodes() netip.Addr { return netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 15: 0x01}) }

// GratuitousARP returns keepalived's gratuitous ARP for vip from the
// interface with hardware address mac: a REQUEST whose sender and target
// protocol addresses are both vip and whose target hardware address is
// broadcast (RFC 5227 §3). vip must be IPv4 and mac 6 bytes.
func GratuitousARP(mac net.HardwareAddr, vip netip.Addr) (*arp.Packet, error) {
	if !vip.Is4() {
		return nil, fmt.Errorf("announce: gratuitous ARP for %v: not IPv4", vip)
	}
	if len(mac) != 6 {
		return nil, fmt.Errorf("announce: gratuitous ARP for %v: hardware address %v is not Ethernet", vip, mac)
	}
	p, err := arp.NewPacket(arp.OperationRequest, mac, vip, broadcast(), vip)
	if err != nil {
		return nil, fmt.Errorf("announce: gratuitous ARP for %v: %w", vip, err)
	}
	return p, nil
}

// GratuitousARPFrame returns the whole Ethernet frame of [GratuitousARP]:
// broadcast destination, source mac, EtherType ARP, padded to the
// minimum frame size.
func GratuitousARPFrame(mac net.HardwareAddr, vip netip.Addr) ([]byte, error) {
	p, err := GratuitousARP(mac, vip)
	if err != nil {
		return nil, err
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("announce: gratuitous ARP for %v: %w", vip, err)
	}
	f := &ethernet.Frame{
		Destination: broadcast(),
		Source:      mac,
		EtherType:   ethernet.EtherTypeARP,
		Payload:     pb,
	}
	b, err := f.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("announce: gratuitous ARP for %v: %w", vip, err)
	}
	return b, nil
}

// UnsolicitedNA returns the unsolicited Neighbor Advertisement for vip
// from the interface with hardware address mac (RFC 4861 §7.2.6): Override
// set, Solicited and Router clear, with a Target Link-Layer Address
// option. vip must be IPv6.
func UnsolicitedNA(mac net.HardwareAddr, vip netip.Addr) (*ndp.NeighborAdvertisement, error) {
	if !vip.Is6() || vip.Is4In6() {
		return nil, fmt.Errorf("announce: neighbor advertisement for %v: not IPv6", vip)
	}
	if len(mac) == 0 {
		return nil, fmt.Errorf("announce: neighbor advertisement for %v: no hardware address", vip)
	}
	return &ndp.NeighborAdvertisement{
		Router:        false,
		Solicited:     false,
		Override:      true,
		TargetAddress: vip.WithZone(""),
		Options: []ndp.Option{&ndp.LinkLayerAddress{
			Direction: ndp.Target,
			Addr:      mac,
		}},
	}, nil
}
