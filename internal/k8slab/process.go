package k8slab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
)

// Process is a daemon of the cluster (etcd or an API server) running in a
// lab namespace. It can be killed, stopped and started again with the same
// arguments; its output goes to LogFile, appended across restarts.
type Process struct {
	// Name labels the process in errors and logs ("etcd", "apiserver-1").
	Name string
	// LogFile receives the process's standard output and error.
	LogFile string

	host *netlab.Host
	argv []string

	mu   sync.Mutex
	pid  int
	done chan struct{} // closed when the current run has exited
	err  error         // how the current run ended, valid after done
}

func newProcess(name, logFile string, host *netlab.Host, argv []string) *Process {
	done := make(chan struct{})
	close(done)
	return &Process{Name: name, LogFile: logFile, host: host, argv: argv, done: done}
}

// Start runs the process unless it is running already. It does not wait
// for the process to be ready.
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
		return fmt.Errorf("k8slab: %s log: %w", p.Name, err)
	}
	fmt.Fprintf(f, "=== k8slab: start %s at %s\n", p.Name, time.Now().Format(time.RFC3339Nano))
	// ip netns exec execs the command, so the pid is the daemon's own.
	cmd := p.host.Exec(context.Background(), p.argv[0], p.argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("k8slab: start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.pid, p.done, p.err = cmd.Process.Pid, done, nil
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(f, "=== k8slab: %s exited at %s: %v\n", p.Name, time.Now().Format(time.RFC3339Nano), err)
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
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
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

// Kill sends SIGKILL to the process (a crash: no graceful shutdown) and
// waits up to 10 s for it to exit. Killing a process that is not running
// does nothing.
func (p *Process) Kill() error {
	return p.signal(syscall.SIGKILL, 10*time.Second)
}

// Stop sends SIGTERM and waits up to timeout for the process to exit, then
// kills it. An API server stopped this way removes itself from the
// `kubernetes` endpoints at once.
func (p *Process) Stop(timeout time.Duration) error {
	if err := p.signal(syscall.SIGTERM, timeout); err == nil {
		return nil
	}
	return p.Kill()
}

func (p *Process) signal(sig syscall.Signal, timeout time.Duration) error {
	p.mu.Lock()
	pid, done := p.pid, p.done
	p.mu.Unlock()
	select {
	case <-done:
		return nil
	default:
	}
	// The process leads its own group; signal the group so nothing it
	// started survives it.
	if err := syscall.Kill(-pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("k8slab: signal %s: %w", p.Name, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("k8slab: %s did not exit within %v of %v", p.Name, timeout, sig)
	}
}

// Wait waits up to timeout for the current run to end and returns how it
// ended.
func (p *Process) Wait(timeout time.Duration) error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("k8slab: %s still running after %v", p.Name, timeout)
	}
}

// Tail returns the last n lines of the process's log.
func (p *Process) Tail(n int) string {
	b, err := os.ReadFile(p.LogFile)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return tail(string(b), n)
}
