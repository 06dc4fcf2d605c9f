package netlab

import (
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// PassXDPOnPort attaches a program that passes every frame (XDP_PASS) to
// the switch-side peer of h's first link, in native mode. A veth drops the
// frames its end sends with XDP_TX (an XDP load balancer's forwarding)
// unless the peer runs an XDP program too (the veth NAPI path is active
// only then: xdp-project/xdp-tutorial#167 and #399); a NIC has no such
// condition. Close the returned closer to detach it; the lab's namespaces
// going away detach it as well.
func (l *Lab) PassXDPOnPort(h *Host) (interface{ Close() error }, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "peer_pass",
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()},
	})
	if err != nil {
		return nil, fmt.Errorf("netlab: XDP_PASS program: %w", err)
	}
	defer prog.Close() // the link holds it
	port, err := l.sw.LinkByName(h.Links[0].Port)
	if err != nil {
		return nil, fmt.Errorf("netlab: %s's port: %w", h.Name, err)
	}
	var lk link.Link
	err = runIn(l.swNS, func() error {
		var err error
		lk, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: port.Attrs().Index, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlab: XDP_PASS on %s's port: %w", h.Name, err)
	}
	return lk, nil
}

// TxChecksumOff turns off the transmit checksum offload of h's first
// interface (ethtool -K dev tx off), so that it sends complete TCP
// checksums. A veth otherwise hands its peer packets whose checksum is
// still to be filled in (CHECKSUM_PARTIAL), and native XDP on the
// receiving end loses that state: a frame it forwards with XDP_TX reaches
// its destination with a wrong checksum and is dropped. Frames from a
// real wire carry complete checksums.
func (h *Host) TxChecksumOff() error {
	return h.Run(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ev := struct{ cmd, data uint32 }{cmd: 0x17 /* ETHTOOL_STXCSUM */}
		var ifr struct {
			name [unix.IFNAMSIZ]byte
			data unsafe.Pointer
			_    [16]byte
		}
		copy(ifr.name[:], h.IfName)
		ifr.data = unsafe.Pointer(&ev)
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
			return fmt.Errorf("netlab: %s: tx checksum offload off: %w", h.Name, errno)
		}
		return nil
	})
}
