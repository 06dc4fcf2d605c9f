//go:build linux

package main

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
)

// TestLabNotify runs `nlb vrrp` and `nlb controller` in a namespace as
// systemd runs their Type=notify units (NOTIFY_SOCKET set): READY=1 comes
// once the mode serves (the admin server answers /status with the VRRP
// instance in it; the controller's proxy port accepts), STOPPING=1 follows
// SIGTERM; and a mode that cannot open what it serves (the admin port, the
// proxy port taken) exits without READY=1.
func TestLabNotify(t *testing.T) {
	netlab.Require(t)
	for _, mode := range []string{"vrrp", "controller"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			lab := netlab.NewT(t, "", netlab.Options{Hosts: 1})
			h := lab.Hosts[0]
			conf := controllerConf(h.IfName, nlbtest.K0sConfig{}, controllerVRRP(lab.VIP4(0)))
			start := func(t *testing.T, s *notifySocket) *netlab.Process {
				t.Helper()
				dir := t.TempDir()
				path := filepath.Join(dir, "k0s.yaml")
				if err := os.WriteFile(path, conf, 0o600); err != nil {
					t.Fatal(err)
				}
				argv := []string{"env", "NOTIFY_SOCKET=" + s.path, nlbBinary(t), mode, "--config", path, "--admin", adminAddr}
				if mode == "controller" {
					argv = append(argv, "--backend", netip.AddrPortFrom(h.Addr4, 6443).String())
				}
				p := netlab.NewProcess("nlb "+mode, filepath.Join(dir, "nlb.log"), h, argv...)
				if err := p.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = p.Kill() })
				return p
			}

			t.Run("ready", func(t *testing.T) {
				s := listenNotify(t)
				p := start(t, s)
				s.await(t, "READY=1", p.Done(), p.Log)
				n := &node{t: t, h: h, name: "nlb@" + h.Name, proc: p, client: h.HTTPClient(notifyWait)}
				if st, err := n.status(); err != nil || len(st.Instances) != 1 {
					t.Fatalf("READY=1 sent, but /status: %+v %v", st, err)
				}
				if mode == "controller" {
					conn, err := h.Dialer(notifyWait)(context.Background(), "tcp", netip.AddrPortFrom(h.Addr4, 6444).String())
					if err != nil {
						t.Fatalf("READY=1 sent, but the proxy port does not accept: %v", err)
					}
					conn.Close()
				}
				if err := p.Signal(syscall.SIGTERM, false, 0); err != nil {
					t.Fatal(err)
				}
				s.await(t, "STOPPING=1", nil, p.Log)
				if err := p.Wait(notifyWait); err != nil {
					t.Errorf("after SIGTERM: %v\n%s", err, p.Log())
				}
			})

			t.Run("cannot listen", func(t *testing.T) {
				// The admin server (vrrp) or the proxy (controller) opens
				// last before READY=1.
				addr := adminAddr
				if mode == "controller" {
					addr = ":6444"
				}
				ln, err := h.Listen("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				s := listenNotify(t)
				p := start(t, s)
				select {
				case <-p.Done():
				case <-time.After(notifyWait):
					t.Fatalf("still running with %s taken after %v:\n%s", addr, notifyWait, p.Log())
				}
				if p.Err() == nil {
					t.Errorf("exit 0 with %s taken:\n%s", addr, p.Log())
				}
				if got := s.drain(t); len(got) != 0 {
					t.Errorf("nlb %s that could not listen on %s sent %q", mode, addr, got)
				}
			})
		})
	}
}
