package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/nlb-dev/nlb/internal/benchtool"
)

// memSnapshot is the system and proxy memory state read before and after
// the idle connections are opened.
type memSnapshot struct {
	Meminfo map[string]int64 // /proc/meminfo, in KiB
	TCP     sockstat         // /proc/net/sockstat "TCP:" line
	RSSKiB  int64            // VmRSS of the proxy, 0 without a proxy
	FDs     fdUsage          // the proxy's fds
}

// kernelKiB is the kernel's share of used memory: everything that is not
// free, not anonymous user memory and not page cache. It covers slab
// (sockets, files, epoll entries, pipe inodes), page-allocator allocations
// that slab accounting misses (large pipe buffer rings), socket buffers,
// page tables and kernel stacks. User memory of the load generator and the
// backend is anonymous, so their heaps do not leak into this figure.
func (s memSnapshot) kernelKiB() int64 {
	m := s.Meminfo
	used := m["MemTotal"] - m["MemFree"]
	return used - m["AnonPages"] - m["Buffers"] - m["Cached"]
}

// parseMeminfo parses /proc/meminfo into KiB values keyed by field name.
func parseMeminfo(b []byte) (map[string]int64, error) {
	out := make(map[string]int64)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("meminfo %s: %w", name, err)
		}
		if len(f) > 1 && f[1] != "kB" {
			return nil, fmt.Errorf("meminfo %s: unit %q", name, f[1])
		}
		out[name] = v
	}
	for _, k := range []string{"MemTotal", "MemFree", "AnonPages", "Buffers", "Cached"} {
		if _, ok := out[k]; !ok {
			return nil, fmt.Errorf("meminfo: no %s", k)
		}
	}
	return out, nil
}

// sockstat is the TCP line of /proc/net/sockstat.
type sockstat struct {
	InUse    int64 // TCP sockets in use system-wide (not TIME_WAIT)
	MemPages int64 // pages of socket buffer memory
}

// parseSockstat parses the "TCP:" line of /proc/net/sockstat.
func parseSockstat(b []byte) (sockstat, error) {
	var s sockstat
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "TCP:" {
			continue
		}
		found := 0
		for i := 1; i+1 < len(f); i += 2 {
			var dst *int64
			switch f[i] {
			case "inuse":
				dst = &s.InUse
			case "mem":
				dst = &s.MemPages
			default:
				continue
			}
			v, err := strconv.ParseInt(f[i+1], 10, 64)
			if err != nil {
				return s, fmt.Errorf("sockstat %s: %w", f[i], err)
			}
			*dst = v
			found++
		}
		if found != 2 {
			return s, errors.New("sockstat: TCP line lacks inuse or mem")
		}
		return s, nil
	}
	return s, errors.New("sockstat: no TCP line")
}

// countFDs counts the open fds of pid.
func countFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

// fdUsage is what a process's fds hold in the kernel.
type fdUsage struct {
	FDs        int
	Sockets    int
	PipeFDs    int
	Pipes      []pipeState // one per distinct pipe
	EpollWatch int         // fds registered in the process's epoll sets
}

// pipeState is the capacity and content of one pipe.
type pipeState struct {
	Size, Queued int64 // bytes
}

// inspectFDs lists pid's fds: sockets, pipes (capacity and queued bytes,
// read by opening the pipe through /proc, which neither reads nor adds
// data), and the registrations in its epoll sets (from fdinfo "tfd:" lines).
func inspectFDs(pid int) (fdUsage, error) {
	var u fdUsage
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return u, err
	}
	seen := make(map[string]bool)
	for _, e := range ents {
		u.FDs++
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		switch {
		case strings.HasPrefix(l, "socket:"):
			u.Sockets++
		case strings.HasPrefix(l, "pipe:"):
			u.PipeFDs++
			if seen[l] {
				continue
			}
			seen[l] = true
			if ps, err := statPipe(filepath.Join(dir, e.Name())); err == nil {
				u.Pipes = append(u.Pipes, ps)
			}
		case l == "anon_inode:[eventpoll]":
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name())); err == nil {
				u.EpollWatch += countEpollWatches(b)
			}
		}
	}
	return u, nil
}

// countEpollWatches counts the "tfd:" lines of an epoll fd's fdinfo.
func countEpollWatches(fdinfo []byte) int {
	n := 0
	for l := range strings.SplitSeq(string(fdinfo), "\n") {
		if strings.HasPrefix(l, "tfd:") {
			n++
		}
	}
	return n
}

// statPipe opens a pipe through /proc/PID/fd/N (non-blocking, read-only,
// so no data moves) and returns its capacity and queued bytes.
func statPipe(path string) (pipeState, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return pipeState{}, err
	}
	defer f.Close()
	const fGetPipeSz = 1032 // F_GETPIPE_SZ
	size, _, errno := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), fGetPipeSz, 0)
	if errno != 0 {
		return pipeState{}, errno
	}
	var queued int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TIOCINQ, uintptr(unsafe.Pointer(&queued))); errno != 0 {
		return pipeState{}, errno
	}
	return pipeState{Size: int64(size), Queued: int64(queued)}, nil
}

// slabSizes are kernel object sizes in bytes: from /proc/slabinfo where
// readable, otherwise the values of Linux 6.18 on x86-64.
type slabSizes struct {
	tcp, sockInode, dentry, filp, epi, inode int64
}

func defaultSlabSizes() slabSizes {
	return slabSizes{tcp: 2368, sockInode: 832, dentry: 192, filp: 192, epi: 128, inode: 624}
}

// parseSlabinfo overrides s with the object sizes found in /proc/slabinfo.
func parseSlabinfo(b []byte, s slabSizes) slabSizes {
	dst := map[string]*int64{
		"TCP": &s.tcp, "sock_inode_cache": &s.sockInode, "dentry": &s.dentry,
		"filp": &s.filp, "eventpoll_epi": &s.epi, "inode_cache": &s.inode,
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || dst[f[0]] == nil {
			continue
		}
		if v, err := strconv.ParseInt(f[3], 10, 64); err == nil && v > 0 {
			*dst[f[0]] = v
		}
	}
	return s
}

// Sizes slabinfo does not show.
const (
	pipeInodeInfoSize = 192 // struct pipe_inode_info (~170 B) in kmalloc-192
	pipeBufferSize    = 40  // struct pipe_buffer, one per page of capacity
	pageSize          = 4096
)

// kmallocSize is what kmalloc really takes for n bytes: the next kmalloc
// size class up to 8 KiB, else whole pages in a power-of-two order.
func kmallocSize(n int64) int64 {
	if n <= 0 {
		return 0
	}
	if n <= 8192 {
		for _, c := range []int64{8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192} {
			if n <= c {
				return c
			}
		}
	}
	p := int64(pageSize)
	for p < n {
		p *= 2
	}
	return p
}

// kernelBytes prices an fdUsage: per socket the TCP sock, its socket inode
// and dentry; per fd a struct file; per epoll registration an epitem; per
// pipe its inode, dentry, pipe_inode_info, buffer ring and queued pages.
// Socket buffers are not included: an idle socket holds none (the
// system-wide sockstat "mem" is printed alongside to confirm).
func (u fdUsage) kernelBytes(s slabSizes) int64 {
	b := int64(u.Sockets)*(s.tcp+s.sockInode+s.dentry) + int64(u.FDs)*s.filp + int64(u.EpollWatch)*s.epi
	for _, p := range u.Pipes {
		b += s.inode + s.dentry + pipeInodeInfoSize + kmallocSize(p.Size/pageSize*pipeBufferSize)
		b += (p.Queued + pageSize - 1) / pageSize * pageSize
	}
	return b
}

// readMemSnapshot reads system memory and, when pid > 0, the proxy's RSS
// and fds.
func readMemSnapshot(pid int) (memSnapshot, error) {
	var s memSnapshot
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return s, err
	}
	if s.Meminfo, err = parseMeminfo(b); err != nil {
		return s, err
	}
	if b, err = os.ReadFile("/proc/net/sockstat"); err != nil {
		return s, err
	}
	if s.TCP, err = parseSockstat(b); err != nil {
		return s, err
	}
	if pid <= 0 {
		return s, nil
	}
	if b, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err != nil {
		return s, err
	}
	st, err := benchtool.ParseStatus(b)
	if err != nil {
		return s, err
	}
	s.RSSKiB = st.VmRSSKiB
	s.FDs, err = inspectFDs(pid)
	return s, err
}
