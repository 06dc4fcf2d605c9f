package benchtool

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ProcStatus is what the benchmarks read from /proc/PID/status (or a
// thread's /proc/PID/task/TID/status).
type ProcStatus struct {
	VmRSSKiB     int64 // resident memory; 0 for a kernel thread
	Voluntary    int64 // voluntary_ctxt_switches: the task waited
	Nonvoluntary int64 // nonvoluntary_ctxt_switches: it was preempted
}

// ParseStatus parses /proc/PID/status. The context-switch counters are
// required; VmRSS is absent for kernel threads.
func ParseStatus(b []byte) (ProcStatus, error) {
	var s ProcStatus
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "VmRSS":
			dst = &s.VmRSSKiB
		case "voluntary_ctxt_switches":
			dst, found = &s.Voluntary, found+1
		case "nonvoluntary_ctxt_switches":
			dst, found = &s.Nonvoluntary, found+1
		default:
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 || len(f) > 2 || len(f) == 2 && f[1] != "kB" {
			return s, fmt.Errorf("status: bad %s line %q", name, sc.Text())
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return s, fmt.Errorf("status %s: %w", name, err)
		}
		*dst = v
	}
	if found != 2 {
		return s, errors.New("status: no voluntary_ctxt_switches or nonvoluntary_ctxt_switches")
	}
	return s, nil
}

// ContextSwitches returns the voluntary plus nonvoluntary context switches
// of every thread of pid so far, from PROC/PID/task/*/status (proc is
// "/proc" but for tests). The process's own status line counts only its
// main thread once the others have exited, hence the sum over threads.
func ContextSwitches(proc string, pid int) (int64, error) {
	tasks, err := os.ReadDir(filepath.Join(proc, strconv.Itoa(pid), "task"))
	if err != nil {
		return 0, err
	}
	var n int64
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "task", t.Name(), "status"))
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread exited meanwhile
		}
		if err != nil {
			return 0, err
		}
		s, err := ParseStatus(b)
		if err != nil {
			return 0, fmt.Errorf("task %s: %w", t.Name(), err)
		}
		n += s.Voluntary + s.Nonvoluntary
	}
	if len(tasks) == 0 {
		return 0, fmt.Errorf("%d: no threads", pid)
	}
	return n, nil
}

// ParseStatCPU returns utime+stime in clock ticks from /proc/PID/stat:
// every thread's CPU time, the process's own and that of its threads.
// The command name (field 2) may contain spaces and parentheses, so the
// fields are counted from the last ')'.
func ParseStatCPU(b []byte) (int64, error) {
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

// ClockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const ClockTicks = 100

// ProcCPUSeconds returns the CPU time (user+system) pid has used so far.
func ProcCPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	t, err := ParseStatCPU(b)
	if err != nil {
		return 0, err
	}
	return float64(t) / ClockTicks, nil
}

// ParseProcStat returns the busy and total CPU time in clock ticks of
// /proc/stat's aggregate "cpu" line (busy: everything but idle and
// iowait; guest time is already in user).
func ParseProcStat(b []byte) (busy, total float64, err error) {
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var idle float64
	// user nice system idle iowait irq softirq steal.
	for i, s := range f[1:min(len(f), 9)] {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %q: %w", line, err)
		}
		total += v
		if i == 3 || i == 4 {
			idle += v
		}
	}
	return total - idle, total, nil
}

// CPUTicks returns the machine's busy and total CPU time in clock ticks.
func CPUTicks() (busy, total float64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return ParseProcStat(b)
}

// BackgroundBusy returns the fraction of the machine busy over 0.5 s; a
// benchmark calls it while none of its load runs.
func BackgroundBusy(ctx context.Context) float64 {
	b0, t0, err0 := CPUTicks()
	select {
	case <-ctx.Done():
		return math.NaN()
	case <-time.After(500 * time.Millisecond):
	}
	b1, t1, err1 := CPUTicks()
	if err0 != nil || err1 != nil || t1 <= t0 {
		return math.NaN()
	}
	return (b1 - b0) / (t1 - t0)
}

// WaitQuiet waits up to 10 s for the background load to drop below 25 %,
// so that runs land in the quiet moments of a shared machine, and returns
// the last load seen (for the report).
func WaitQuiet(ctx context.Context) float64 {
	b := BackgroundBusy(ctx)
	for i := 0; i < 19 && b > 0.25 && ctx.Err() == nil; i++ {
		b = BackgroundBusy(ctx)
	}
	return b
}

// TCPSocket is one line of /proc/net/tcp or tcp6.
type TCPSocket struct {
	LocalPort, RemotePort int
	State                 int // 1 ESTABLISHED, 6 TIME_WAIT, 10 LISTEN (include/net/tcp_states.h)
}

// TCP states of TCPSocket.State.
const (
	TCPEstablished = 0x01
	TCPListen      = 0x0A
)

// TCPSockets returns the TCP sockets of pid's network namespace, from
// /proc/PID/net/tcp and tcp6.
func TCPSockets(pid int) ([]TCPSocket, error) {
	var all []TCPSocket
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			return nil, err
		}
		s, err := ParseProcNetTCP(b)
		if err != nil {
			return nil, fmt.Errorf("/proc/%d/net/%s: %w", pid, f, err)
		}
		all = append(all, s...)
	}
	return all, nil
}

// ListeningPorts returns the TCP ports some socket listens on in pid's
// network namespace: a server is ready for a benchmark once its port is
// there, found without connecting to it (a test connection would be a
// client to a proxy, and take a turn of its round robin).
func ListeningPorts(pid int) (map[int]bool, error) {
	socks, err := TCPSockets(pid)
	if err != nil {
		return nil, err
	}
	ports := map[int]bool{}
	for _, s := range socks {
		if s.State == TCPListen {
			ports[s.LocalPort] = true
		}
	}
	return ports, nil
}

// ParseProcNetTCP parses a /proc/net/tcp or tcp6 table.
func ParseProcNetTCP(b []byte) ([]TCPSocket, error) {
	var out []TCPSocket
	port := func(a string) (int, error) {
		_, hexPort, ok := strings.Cut(a, ":")
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if !ok || err != nil {
			return 0, fmt.Errorf("address %q", a)
		}
		return int(p), nil
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for first := true; sc.Scan(); first = false {
		f := strings.Fields(sc.Text())
		if first {
			if len(f) < 4 || f[1] != "local_address" {
				return nil, fmt.Errorf("unexpected header %q", sc.Text())
			}
			continue
		}
		if len(f) < 4 {
			return nil, fmt.Errorf("short line %q", sc.Text())
		}
		lp, err1 := port(f[1])
		rp, err2 := port(f[2])
		st, err3 := strconv.ParseUint(f[3], 16, 8)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("line %q: %w", sc.Text(), err)
		}
		out = append(out, TCPSocket{LocalPort: lp, RemotePort: rp, State: int(st)})
	}
	return out, sc.Err()
}
