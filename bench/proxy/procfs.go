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
)

// memSnapshot is the system and proxy memory state read before and after
// the idle connections are opened.
type memSnapshot struct {
	Meminfo map[string]int64 // /proc/meminfo, in KiB
	TCP     sockstat         // /proc/net/sockstat "TCP:" line
	RSSKiB  int64            // VmRSS of the proxy, 0 without a proxy
	FDs     int              // open fds of the proxy
	Pipes   int              // of which pipe ends
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

// parseVmRSS returns VmRSS in KiB from /proc/PID/status.
func parseVmRSS(b []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("status: bad VmRSS line %q", sc.Text())
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, errors.New("status: no VmRSS")
}

// parseStatCPU returns utime+stime in clock ticks from /proc/PID/stat.
// The command name (field 2) may contain spaces and parentheses, so fields
// are counted from the last ')'.
func parseStatCPU(b []byte) (int64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("stat: no ')'")
	}
	f := strings.Fields(string(b[i+1:]))
	// After ")": state(3) ppid(4) ... utime(14) stime(15): indexes 11 and 12.
	if len(f) < 13 {
		return 0, errors.New("stat: too few fields")
	}
	u, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat utime: %w", err)
	}
	s, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat stime: %w", err)
	}
	return u + s, nil
}

// clockTicks is USER_HZ, which is 100 on every Linux architecture Go
// supports.
const clockTicks = 100

// procCPUSeconds returns the CPU time (user+system) used so far by pid.
func procCPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	t, err := parseStatCPU(b)
	if err != nil {
		return 0, err
	}
	return float64(t) / clockTicks, nil
}

// countFDs counts the open fds of pid and how many of them are pipes.
func countFDs(pid int) (fds, pipes int, err error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	for _, e := range ents {
		fds++
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "pipe:") {
			pipes++
		}
	}
	return fds, pipes, nil
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
	if s.RSSKiB, err = parseVmRSS(b); err != nil {
		return s, err
	}
	s.FDs, s.Pipes, err = countFDs(pid)
	return s, err
}

// parseProcStatCPU returns the idle (idle+iowait) and total jiffies of the
// aggregate "cpu" line of /proc/stat.
func parseProcStatCPU(b []byte) (idle, total float64, ok bool) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, s := range f[1:] {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, 0, false
		}
		// guest and guest_nice (fields 9, 10) are already in user and nice.
		if i >= 8 {
			break
		}
		total += v
		if i == 3 || i == 4 {
			idle += v
		}
	}
	return idle, total, true
}
