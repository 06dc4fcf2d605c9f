//go:build !linux

package lb

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

var errNotLinux = errors.New("lb: the proxy data path needs Linux")

type waiter struct{ rc syscall.RawConn }

func (w *waiter) init(*net.TCPConn, *sync.Pool) error { return errNotLinux }
func (w *waiter) wait() (int, error)                  { return 0, errNotLinux }
func (w *waiter) take() *buffer                       { return nil }

type parker struct{}

func newParker() (*parker, error)         { return nil, errNotLinux }
func (pk *parker) park(*direction) error  { return errNotLinux }
func (pk *parker) unpark(*direction) bool { return false }
func (pk *parker) run()                   {}
func (pk *parker) stop()                  {}
func (pk *parker) close()                 {}

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
