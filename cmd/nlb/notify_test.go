package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
)

// notifyWait bounds every wait of the sd_notify tests: a safety bound, the
// waits themselves end on events (a datagram, the process's exit).
const notifyWait = 30 * time.Second

// notifySocket is the test's end of the sd_notify protocol: the unixgram
// socket a Type=notify unit's NOTIFY_SOCKET names.
type notifySocket struct {
	path string
	conn *net.UnixConn
	msgs chan string
}

// listenNotify opens a notification socket in a temporary directory and
// reads its datagrams, one state line each, into msgs.
func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	// A short directory: a socket path has at most 107 bytes.
	dir, err := os.MkdirTemp("", "nlb-notify-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &notifySocket{path: filepath.Join(dir, "notify"), msgs: make(chan string, 64)}
	s.conn, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: s.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.conn.Close() })
	go func() {
		defer close(s.msgs)
		buf := make([]byte, 4096)
		for {
			n, err := s.conn.Read(buf)
			if err != nil {
				return
			}
			for l := range strings.SplitSeq(strings.TrimSpace(string(buf[:n])), "\n") {
				s.msgs <- l
			}
		}
	}()
	return s
}

// await waits for the state line want, bounded by notifyWait and by done
// (the process's exit); it returns the lines received before it.
func (s *notifySocket) await(t *testing.T, want string, done <-chan struct{}, what func() string) []string {
	t.Helper()
	var before []string
	timer := time.NewTimer(notifyWait)
	defer timer.Stop()
	for {
		select {
		case m, ok := <-s.msgs:
			if !ok {
				t.Fatalf("notification socket closed before %s", want)
			}
			if m == want {
				return before
			}
			before = append(before, m)
		case <-done:
			t.Fatalf("the process exited before sending %s (received %q):\n%s", want, before, what())
		case <-timer.C:
			t.Fatalf("no %s within %v (received %q):\n%s", want, notifyWait, before, what())
		}
	}
}

// drain returns the state lines received so far. Called after the process
// has exited it sees everything it sent: a unix datagram is queued on the
// receiving socket before the sender's write returns.
func (s *notifySocket) drain(t *testing.T) []string {
	t.Helper()
	// Let the reader goroutine take what is queued: a zero deadline
	// makes its blocked Read return once the queue is empty.
	if err := s.conn.SetReadDeadline(time.Now()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range s.msgs {
		got = append(got, m)
	}
	return got
}

// freeTCPPort returns the port of a loopback address from freePort.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(freePort(t))
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// startNotified starts the built nlb with args and NOTIFY_SOCKET set to s;
// it is killed when the test ends. done closes when it has exited.
func startNotified(t *testing.T, s *notifySocket, args ...string) (cmd *exec.Cmd, out *netlab.SyncBuffer, done chan struct{}) {
	t.Helper()
	cmd = exec.Command(nlbBinary(t), args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+s.path)
	out = &netlab.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	return cmd, out, done
}

// TestNotifyClient runs `nlb client` as systemd would run its Type=notify
// unit: READY=1 arrives only once its listeners accept connections (the
// API server's, konnectivity's and the admin server's are dialled the
// moment READY=1 is read), STOPPING=1 follows SIGTERM, and a client whose
// listener cannot bind exits without ever sending READY=1.
func TestNotifyClient(t *testing.T) {
	c := newFakeCluster(t)
	args := func(api, konn, admin int) []string {
		return []string{"client", "--kubeconfig", c.kubeconfig, "--bind", "127.0.0.1", "--cache-file", "",
			"--api-port", strconv.Itoa(api), "--konnectivity-port", strconv.Itoa(konn),
			"--konnectivity-upstream-port", strconv.Itoa(c.konnPort), "--admin", "127.0.0.1:" + strconv.Itoa(admin),
			"--log-level", "debug"}
	}

	t.Run("ready", func(t *testing.T) {
		s := listenNotify(t)
		api, konn, admin := freeTCPPort(t), freeTCPPort(t), freeTCPPort(t)
		cmd, out, done := startNotified(t, s, args(api, konn, admin)...)
		if before := s.await(t, "READY=1", done, out.String); len(before) != 0 {
			t.Errorf("before READY=1: %q", before)
		}
		for _, port := range []int{api, konn, admin} {
			conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), notifyWait)
			if err != nil {
				t.Fatalf("READY=1 sent, but port %d does not accept: %v\n%s", port, err, out.String())
			}
			conn.Close()
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		s.await(t, "STOPPING=1", nil, out.String)
		select {
		case <-done:
		case <-time.After(notifyWait):
			t.Fatalf("no exit within %v after SIGTERM", notifyWait)
		}
		if !cmd.ProcessState.Success() {
			t.Errorf("exit after SIGTERM: %v\n%s", cmd.ProcessState, out.String())
		}
	})

	t.Run("listen fails", func(t *testing.T) {
		s := listenNotify(t)
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		api := taken.Addr().(*net.TCPAddr).Port
		cmd, out, done := startNotified(t, s, args(api, freeTCPPort(t), freeTCPPort(t))...)
		select {
		case <-done:
		case <-time.After(notifyWait):
			t.Fatalf("still running with its port taken after %v:\n%s", notifyWait, out.String())
		}
		if cmd.ProcessState.Success() {
			t.Errorf("exit 0 with its API server port taken:\n%s", out.String())
		}
		if got := s.drain(t); len(got) != 0 {
			t.Errorf("a client that could not listen sent %q", got)
		}
	})
}
