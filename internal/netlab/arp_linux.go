//go:build linux

package netlab

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// arpPoll bounds one blocking read of ARPProbe.
const arpPoll = 50 * time.Millisecond

// ARPProbe asks, from the host's segment-0 interface, who has ip (one ARP
// request, RFC 826) and returns the sender hardware address of the first
// reply, or an error if none arrives within timeout. Benchmarks use it to
// see which node answers for a virtual address.
func (h *Host) ARPProbe(ip netip.Addr, timeout time.Duration) (net.HardwareAddr, error) {
	if !ip.Is4() {
		return nil, fmt.Errorf("netlab: ARP probe of %s: not IPv4", ip)
	}
	var mac net.HardwareAddr
	err := h.Run(func() error {
		var err error
		mac, err = arpProbe(h.Index, h.MAC, h.Addr4, ip, timeout)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlab: %s: ARP probe of %s: %w", h.NS, ip, err)
	}
	return mac, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func arpProbe(ifIndex int, srcMAC net.HardwareAddr, srcIP, target netip.Addr, timeout time.Duration) (net.HardwareAddr, error) {
	proto := htons(unix.ETH_P_ARP)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(proto))
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifIndex}); err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}
	// RFC 826 request: Ethernet, IPv4, op 1.
	req := make([]byte, 28)
	binary.BigEndian.PutUint16(req[0:], 1)
	binary.BigEndian.PutUint16(req[2:], unix.ETH_P_IP)
	req[4], req[5] = 6, 4
	binary.BigEndian.PutUint16(req[6:], 1)
	copy(req[8:14], srcMAC)
	copy(req[14:18], srcIP.AsSlice())
	copy(req[24:28], target.AsSlice())
	dst := &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifIndex, Halen: 6}
	copy(dst.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if err := unix.Sendto(fd, req, 0, dst); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	want := target.AsSlice()
	buf := make([]byte, 1500)
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("no reply within %v", timeout)
		}
		tv := unix.NsecToTimeval(min(left, arpPoll).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return nil, fmt.Errorf("set timeout: %w", err)
		}
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("receive: %w", err)
		}
		p := buf[:n]
		if n < 28 || binary.BigEndian.Uint16(p[6:]) != 2 || !bytes.Equal(p[14:18], want) {
			continue
		}
		return net.HardwareAddr(bytes.Clone(p[8:14])), nil
	}
}
