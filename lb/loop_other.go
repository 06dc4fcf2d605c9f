//go:build !linux

package lb

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"
)

var errNotLinux = errors.New("lb: the proxy data path needs Linux")

// loop is the event loop of the data path, which needs Linux (epoll,
// splice); elsewhere Listen fails.
type loop struct{ gone chan struct{} }

func newLoop(*Proxy) (*loop, error)                          { return nil, errNotLinux }
func (l *loop) run([]*net.TCPListener, []*loop)              {}
func (l *loop) post(func()) bool                             { return false }
func (l *loop) stop()                                        {}
func (l *loop) close()                                       {}
func (l *loop) dropListeners()                               {}
func (l *loop) abort(*proxyConn, bool)                       {}
func (l *loop) closeAccepted([]*proxyConn, []netip.Addr) int { return 0 }
func setNoDelay(syscall.Conn) error                          { return errNotLinux }
func setSockoptsFD(int, *Config) error                       { return errNotLinux }
func setCongestion(int, string) error                        { return errNotLinux }

func setSockopts(c syscall.Conn, cfg *Config) error {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return errNotLinux // listeners: tune each accepted connection
	}
	return tc.SetKeepAliveConfig(net.KeepAliveConfig{
		Enable:   true,
		Idle:     time.Duration(cfg.KeepAlive.Idle),
		Interval: time.Duration(cfg.KeepAlive.Interval),
		Count:    cfg.KeepAlive.Count,
	})
}
