package netlab

import (
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a daemon (nlb, keepalived, HAProxy, etcd, an API server)
// running in a lab host's namespace: the labs' one process supervisor. It
// can be signalled, killed and started again with the same arguments; its
// standard output and error are appended to LogFile across restarts, each
// run framed by a start and an exit line.
type Process struct {
	// Name labels the process in errors and logs ("nlb@h1", "etcd").
	Name string
	// LogFile receives standard output and error.
	LogFile string

	host *Host
	argv []string

	mu   sync.Mutex
	pid  int
	done chan struct{} // closed when the current run has exited
	err  error         // how the current run ended, valid after done
}

// NewProcess prepares argv to run in host's namespace; Start runs it.
func NewProcess(name, logFile string, host *Host, argv ...string) *Process {
	done := make(chan struct{})
	close(done)
	return &Process{Name: name, LogFile: logFile, host: host, argv: argv, done: done}
}

// Start runs the process unless it runs already, and does not wait for it
// to be ready. It leads its own process group and dies with the calling
// program (Pdeathsig).
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
	default:
		return nil
	}
	f, err := os.OpenFile(p.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("netlab: %s log: %w", p.Name, err)
	}
	fmt.Fprintf(f, "=== netlab: start %s at %s: %s\n", p.Name, time.Now().Format(time.RFC3339Nano), strings.Join(p.argv, " "))
	// ip netns exec execs the command: the pid is the daemon's own.
	cmd := p.host.Exec(context.Background(), p.argv[0], p.argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("netlab: start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.pid, p.done, p.err = cmd.Process.Pid, done, nil
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(f, "=== netlab: %s exited at %s: %v\n", p.Name, time.Now().Format(time.RFC3339Nano), err)
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// Running reports whether the process has been started and not exited.
func (p *Process) Running() bool {
	select {
	case <-p.doneChan():
		return false
	default:
		return true
	}
}

// Pid returns the process id of the current or last run (0 if never run).
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// Err returns how the current or last run ended: nil while it runs or
// after a clean exit.
func (p *Process) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Done returns a channel that is closed when the current run has exited.
func (p *Process) Done() <-chan struct{} { return p.doneChan() }

func (p *Process) doneChan() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Kill sends SIGKILL to the process group (a crash: children such as
// keepalived's VRRP process or a running check script die too) and waits
// up to 10 s for the process to be reaped. Killing a process that is not
// running does nothing.
func (p *Process) Kill() error {
	return p.Signal(syscall.SIGKILL, true, 10*time.Second)
}

// Stop sends SIGTERM to the process alone (keepalived's parent stops its
// children itself), waits up to timeout, then kills the group. It returns
// an error when the process had to be killed or did not exit cleanly;
// dying of the SIGTERM itself (HAProxy in the foreground) is a clean stop.
func (p *Process) Stop(timeout time.Duration) error {
	select {
	case <-p.doneChan():
		return nil
	default:
	}
	if err := p.Signal(syscall.SIGTERM, false, timeout); err != nil {
		return errors.Join(err, p.Kill())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	if p.err != nil {
		return fmt.Errorf("netlab: %s after SIGTERM: %w", p.Name, p.err)
	}
	return nil
}

// Signal sends sig to the process (or, with group, to its whole process
// group) and waits up to timeout for it to exit; a timeout of 0 does not
// wait (SIGSTOP, SIGCONT). Signalling a process that is not running does
// nothing.
func (p *Process) Signal(sig syscall.Signal, group bool, timeout time.Duration) error {
	p.mu.Lock()
	pid, done := p.pid, p.done
	p.mu.Unlock()
	select {
	case <-done:
		return nil
	default:
	}
	target := pid
	if group {
		target = -pid
	}
	if err := syscall.Kill(target, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("netlab: signal %s: %w", p.Name, err)
	}
	if timeout == 0 {
		return nil
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return fmt.Errorf("netlab: %s did not exit within %v of %v", p.Name, timeout, sig)
	}
}

// Wait waits up to timeout for the current run to end and returns how it
// ended.
func (p *Process) Wait(timeout time.Duration) error {
	done := p.doneChan()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.err
	case <-t.C:
		return fmt.Errorf("netlab: %s still running after %v", p.Name, timeout)
	}
}

// Log returns the whole log of every run so far.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.LogFile)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

// Tail returns the last n lines of the process's log.
func (p *Process) Tail(n int) string { return Tail(p.Log(), n) }

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// GroupReport describes every process of process group pgid, for a test
// that waited in vain for it to exit: pid, command, state (R running,
// S sleeping, t stopped by a tracer, Z zombie), the kernel function it
// sleeps in and its threads' states. Go programs in the group are then
// sent SIGQUIT, which makes the runtime print every goroutine's stack to
// the program's standard error before it exits; quitGo says whether to.
func GroupReport(pgid int, quitGo bool) string {
	var b strings.Builder
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return fmt.Sprintf("netlab: /proc: %v", err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces and
		// parentheses, so split after its last ')'.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[2] != strconv.Itoa(pgid) {
			continue
		}
		comm := s[strings.IndexByte(s, '(')+1 : i]
		wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", pid))
		threads := map[string]int{}
		if ts, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid)); err == nil {
			for _, t := range ts {
				ts, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, t.Name()))
				if err != nil {
					continue
				}
				if j := strings.LastIndexByte(string(ts), ')'); j >= 0 {
					if tf := strings.Fields(string(ts[j+1:])); len(tf) > 0 {
						threads[tf[0]]++
					}
				}
			}
		}
		_, err = buildinfo.ReadFile(fmt.Sprintf("/proc/%d/exe", pid))
		goProg := err == nil
		fmt.Fprintf(&b, "pid %d (%s) state %s ppid %s wchan %q threads by state %v go %v\n",
			pid, comm, f[0], f[1], wchan, threads, goProg)
		if quitGo && goProg {
			_ = syscall.Kill(pid, syscall.SIGQUIT)
		}
	}
	return b.String()
}
