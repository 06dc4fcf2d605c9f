package chaoslab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
)

// Daemon is a load balancer process (nlb, keepalived or HAProxy) in a lab
// host's namespace. It can be killed and started again with the same
// arguments; its output is appended to LogFile across restarts.
type Daemon struct {
	// Name labels the process in errors ("nlb@h1", "haproxy@h2").
	Name string
	// LogFile receives standard output and error.
	LogFile string

	host *netlab.Host
	argv []string

	mu   sync.Mutex
	pid  int
	done chan struct{} // closed when the current run has exited
	err  error
}

// NewDaemon prepares argv to run in host's namespace; Start runs it.
func NewDaemon(name, logFile string, host *netlab.Host, argv ...string) *Daemon {
	done := make(chan struct{})
	close(done)
	return &Daemon{Name: name, LogFile: logFile, host: host, argv: argv, done: done}
}

// Start runs the process unless it runs already. It leads its own process
// group, and dies with the calling program.
func (d *Daemon) Start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	select {
	case <-d.done:
	default:
		return nil
	}
	f, err := os.OpenFile(d.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("chaoslab: %s log: %w", d.Name, err)
	}
	fmt.Fprintf(f, "=== chaoslab: start %s at %s: %s\n", d.Name, time.Now().Format(time.RFC3339Nano), strings.Join(d.argv, " "))
	// ip netns exec execs the command: the pid is the daemon's own.
	cmd := d.host.Exec(context.Background(), d.argv[0], d.argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("chaoslab: start %s: %w", d.Name, err)
	}
	done := make(chan struct{})
	d.pid, d.done, d.err = cmd.Process.Pid, done, nil
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(f, "=== chaoslab: %s exited at %s: %v\n", d.Name, time.Now().Format(time.RFC3339Nano), err)
		f.Close()
		d.mu.Lock()
		d.err = err
		d.mu.Unlock()
		close(done)
	}()
	return nil
}

// Running reports whether the process runs.
func (d *Daemon) Running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL to the process group (a crash: children such as
// keepalived's VRRP process and a running check script die too) and
// waits up to 10 s for the process to be reaped.
func (d *Daemon) Kill() error {
	return d.signal(syscall.SIGKILL, true, 10*time.Second)
}

// Stop sends SIGTERM to the process alone (keepalived's parent stops its
// children itself), waits up to timeout, then kills the group. It returns
// an error when the process had to be killed or did not exit cleanly.
func (d *Daemon) Stop(timeout time.Duration) error {
	d.mu.Lock()
	done := d.done
	d.mu.Unlock()
	select {
	case <-done:
		return nil
	default:
	}
	if err := d.signal(syscall.SIGTERM, false, timeout); err != nil {
		return errors.Join(err, d.Kill())
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Dying of the SIGTERM itself (HAProxy in the foreground) is a clean
	// stop too.
	var ee *exec.ExitError
	if errors.As(d.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	if d.err != nil {
		return fmt.Errorf("chaoslab: %s after SIGTERM: %w", d.Name, d.err)
	}
	return nil
}

func (d *Daemon) signal(sig syscall.Signal, group bool, timeout time.Duration) error {
	d.mu.Lock()
	pid, done := d.pid, d.done
	d.mu.Unlock()
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
		return fmt.Errorf("chaoslab: signal %s: %w", d.Name, err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return fmt.Errorf("chaoslab: %s did not exit within %v of %v", d.Name, timeout, sig)
	}
}

// Tail returns the last n lines of the log.
func (d *Daemon) Tail(n int) string {
	b, err := os.ReadFile(d.LogFile)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
