//go:build linux

package lb

import (
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The loops' system calls, made raw: without the runtime's
// entersyscall/exitsyscall. Every one of them is non-blocking (the
// sockets, pipes and epoll sets are O_NONBLOCK, epoll_pwait is called
// with a zero timeout, close never lingers), but a loop makes one to two
// dozen per connection, and each of them carries the kernel's TCP work
// (on loopback, the receiving side's too) for up to tens of
// microseconds. Announced to the runtime, such calls look like blocking
// ones to sysmon, which then hands the loop's P to another thread and
// keeps waking itself every 20 µs; the loop pays for the handoffs when
// the call returns. Raw, the loop simply keeps its P, as it would while
// computing.

func rawErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func rawRead(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		r, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}

// send writes p to a socket: no SIGPIPE for a peer gone (the error says
// so), and flags (MSG_MORE) as given.
func send(fd int, p []byte, flags int) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
			uintptr(flags|unix.MSG_NOSIGNAL), 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}

// splice moves up to n bytes between a socket and a pipe.
func splice(from, to, n int) (int, error) {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(from), 0, uintptr(to), 0, uintptr(n),
			unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}

func accept4(fd int, rsa *unix.RawSockaddrAny) (int, error) {
	n := uint32(unix.SizeofSockaddrAny)
	r, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(rsa)), uintptr(unsafe.Pointer(&n)),
		unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

func rawSocket(family int) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// rawConnect starts a connect to ap's address, which the caller checked
// is an IP address without a zone.
func rawConnect(fd int, b *backend) error {
	a, port := b.ap.Addr(), b.ap.Port()
	var e unix.Errno
	if a.Is4() {
		sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4()}
		pp := (*[2]byte)(unsafe.Pointer(&sa.Port))
		pp[0], pp[1] = byte(port>>8), byte(port)
		_, _, e = unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unix.SizeofSockaddrInet4)
	} else {
		sa := unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
		pp := (*[2]byte)(unsafe.Pointer(&sa.Port))
		pp[0], pp[1] = byte(port>>8), byte(port)
		_, _, e = unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unix.SizeofSockaddrInet6)
	}
	return rawErr(e)
}

func setsockoptInt(fd, level, opt, v int) error {
	iv := int32(v)
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&iv)), 4, 0)
	return rawErr(e)
}

// setCongestion selects a socket's TCP congestion control algorithm. Not a
// raw system call: the kernel may load the algorithm's module.
func setCongestion(fd int, name string) error {
	if err := unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, name); err != nil {
		return fmt.Errorf("lb: setsockopt TCP_CONGESTION %q: %w", name, err)
	}
	return nil
}

func getsockoptInt(fd, level, opt int) (int, error) {
	var iv int32
	n := uint32(4)
	_, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&iv)), uintptr(unsafe.Pointer(&n)), 0)
	return int(iv), rawErr(e)
}

// setLingerZero makes close send RST (SO_LINGER with a zero timeout).
func setLingerZero(fd int) error {
	lg := unix.Linger{Onoff: 1, Linger: 0}
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_LINGER,
		uintptr(unsafe.Pointer(&lg)), unsafe.Sizeof(lg), 0)
	return rawErr(e)
}

func rawShutdown(fd, how int) error {
	_, _, e := unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), uintptr(how), 0)
	return rawErr(e)
}

// rawClose closes a socket or pipe of a loop; none lingers, so it never
// blocks.
func rawClose(fd int) error {
	_, _, e := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
	return rawErr(e)
}

func epollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	return rawErr(e)
}

// epollPoll returns the ready events without waiting (epoll_pwait, which
// every architecture has, with no signal mask).
func epollPoll(epfd int, events []unix.EpollEvent) (int, error) {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
			uintptr(len(events)), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h),
// which x/sys/unix does not define; SO_ORIGINAL_DST is its IPv4 twin.
const ip6tSOOriginalDst = 80

// originalDst returns the destination address a NATed (REDIRECT, DNAT)
// connection's client dialled, from conntrack; the zero Addr when there is
// no such record.
func originalDst(fd int, ipv4 bool) netip.Addr {
	var raw unix.RawSockaddrAny
	n := uint32(unsafe.Sizeof(raw))
	level, opt := unix.SOL_IP, unix.SO_ORIGINAL_DST
	if !ipv4 {
		level, opt = unix.SOL_IPV6, ip6tSOOriginalDst
	}
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&raw)), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return netip.Addr{}
	}
	switch raw.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&raw))
		return netip.AddrFrom4(sa.Addr)
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&raw))
		return netip.AddrFrom16(sa.Addr).Unmap()
	}
	return netip.Addr{}
}
