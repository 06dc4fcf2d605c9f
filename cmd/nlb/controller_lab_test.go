//go:build linux

package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/cplb"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
)

// readyzServer stands in for a controller's kube-apiserver: HTTPS /readyz
// on the host's address, answering from a script of results.
type readyzServer struct {
	mu     sync.Mutex
	script string // '+' 200, '-' 500, consumed one per request; the last stays
	served int
	failed int
	srv    *http.Server
}

// set replaces the script.
func (s *readyzServer) set(script string) {
	s.mu.Lock()
	s.script = script
	s.mu.Unlock()
}

// counts returns how many requests were served and failed.
func (s *readyzServer) counts() (served, failed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served, s.failed
}

func (s *readyzServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/readyz" {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	c := byte('+')
	if s.script != "" {
		c = s.script[0]
		if len(s.script) > 1 {
			s.script = s.script[1:]
		}
	}
	s.served++
	if c == '-' {
		s.failed++
	}
	s.mu.Unlock()
	if c == '-' {
		http.Error(w, "[-]etcd failed: reason withheld\nreadyz check failed", http.StatusInternalServerError)
		return
	}
	_, _ = w.Write([]byte("ok"))
}

// startReadyz serves /readyz on h's address:6443 inside h's namespace with
// a certificate of ca.
func startReadyz(t *testing.T, h *netlab.Host, ca *testCA) *readyzServer {
	t.Helper()
	cert, _, _ := ca.issue(t, "kube-apiserver", false, h.Addr4.String(), "kubernetes")
	ln, err := h.Listen("tcp", netip.AddrPortFrom(h.Addr4, 6443).String())
	if err != nil {
		t.Fatal(err)
	}
	s := &readyzServer{}
	s.srv = &http.Server{Handler: s, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ReadHeaderTimeout: time.Second}
	go func() { _ = s.srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = s.srv.Close() })
	return s
}

// controllerStatus is the controller's /status, decoded into its one
// declaration.
func (n *node) controllerStatus() (cplb.Status, error) {
	var st cplb.Status
	return st, n.getJSON("/status", &st)
}

// TestLabControllerHealth: the VIP follows the local API server's /readyz.
// Three controllers with equal priority and VIPs only
// (disableLoadBalancer); each checks its own stand-in API server with an
// admin kubeconfig (CA verified, client certificate).
//   - The master's /readyz fails: after `fall` failures it gives up
//     mastership (priority 0) and another node takes the VIP.
//   - It recovers: after `rise` successes its priority is back; with equal
//     priorities it stays Backup (no needless move).
//   - The new master's check alternates between success and failure: the
//     VIP does not move (fall 5 is not reached even if a loaded machine
//     makes one success in a row late).
//   - A node that fails again soon after recovering needs twice as many
//     successes next time (flap damping).
func TestLabControllerHealth(t *testing.T) {
	netlab.Require(t)
	lab := netlab.NewT(t, "", netlab.Options{Hosts: 3})
	vip := lab.VIP4(0)
	ca := newTestCA(t, "lab-ca")
	_, adminCert, adminKey := ca.issue(t, "admin", true)
	extra := nlbtest.K0sConfig{
		DisableLoadBalancer: true,
		Health:              &nlbtest.Health{Interval: 200 * time.Millisecond, Timeout: 200 * time.Millisecond, Fall: 5, Rise: 3},
	}
	c := cluster{vrid: vrid, vip: vip}
	api := map[*node]*readyzServer{}
	for _, h := range lab.Hosts {
		srv := startReadyz(t, h, ca)
		kc := filepath.Join(t.TempDir(), "admin.conf")
		writeKubeconfig(t, kc, "https://"+netip.AddrPortFrom(h.Addr4, 6443).String(), ca.CertPEM, adminCert, adminKey)
		conf := controllerConf(h.IfName, extra, controllerVRRP(vip))
		n := startNLBCommand(t, h, conf, "controller", "--kubeconfig", kc)
		c.nodes = append(c.nodes, n)
		api[n] = srv
	}
	nlbtest.Eventually(t, fastWait, "election", func() error { return c.exactlyMaster(nil, netip.Addr{}) })
	old := masterOf(t, c)

	// The master's API server stops being ready: the VIP moves.
	api[old].set("-")
	nlbtest.Eventually(t, fastWait, "health-driven handover", func() error {
		// old first: once it is a dormant Backup it stays one, so the
		// Master found next is another node.
		in, err := old.inst(vrid)
		if err != nil {
			return err
		}
		if in.State != "Backup" || in.Priority != 0 {
			return fmt.Errorf("%s: %s priority %d, want Backup priority 0", old.name, in.State, in.Priority)
		}
		return c.exactlyMaster(nil, netip.Addr{})
	})
	next := masterOf(t, c)
	if in, _ := old.inst(vrid); !strings.Contains(in.LastReason, "priority set to 0") {
		t.Errorf("%s: last reason %q, want the priority-0 release", old.name, in.LastReason)
	}

	// It recovers: priority back to 200, and it stays Backup.
	api[old].set("+")
	nlbtest.Eventually(t, fastWait, "recovery", func() error {
		in, err := old.inst(vrid)
		if err != nil {
			return err
		}
		if in.Priority != 200 {
			return fmt.Errorf("%s: priority %d, want 200", old.name, in.Priority)
		}
		return nil
	})
	if err := c.exactlyMaster(next, next.h.Addr4); err != nil {
		t.Errorf("after recovery: %v", err)
	}

	// A flapping check on the master does not move the VIP.
	served0, failed0 := api[next].counts()
	api[next].set(strings.Repeat("-+", 30) + "+")
	nlbtest.Consistently(t, 4*time.Second, "master with an alternating /readyz", func() error {
		return c.exactlyMaster(next, next.h.Addr4)
	})
	served, failed := api[next].counts()
	if served-served0 < 10 || failed-failed0 < 5 {
		t.Fatalf("the flapping check ran %d times with %d failures; want at least 10 and 5", served-served0, failed-failed0)
	}
	if in, err := next.inst(vrid); err != nil || in.Priority != 200 {
		t.Errorf("%s after flapping: %+v %v, want priority 200", next.name, in, err)
	}

	// Damping: old fails again soon after its recovery: its next recovery
	// needs twice rise (6) successes; 3 are no longer enough.
	tracked := func(want func(healthy bool, changes, needed int) bool, what string) func() error {
		return func() error {
			st, err := old.controllerStatus()
			if err != nil {
				return err
			}
			if st.Health == nil {
				return fmt.Errorf("%s: no health in /status", old.name)
			}
			tr := st.Health.Tracked
			if !want(tr.Healthy, int(tr.Changes), tr.NeededToRecover) {
				return fmt.Errorf("%s tracked %+v, want %s", old.name, tr, what)
			}
			return nil
		}
	}
	api[old].set("-")
	nlbtest.Eventually(t, fastWait, "second failure", tracked(func(h bool, c, n int) bool { return !h && c == 3 && n == 6 },
		"failed, 3 changes, 6 successes needed"))
	s0, _ := api[old].counts()
	api[old].set("+++-")
	nlbtest.Eventually(t, fastWait, "three successes and more failures", func() error {
		if s, _ := api[old].counts(); s < s0+6 {
			return fmt.Errorf("%d checks so far", s-s0)
		}
		return nil
	})
	if err := tracked(func(h bool, c, n int) bool { return !h && c == 3 }, "still failed after 3 successes")(); err != nil {
		t.Error(err)
	}
	api[old].set("+")
	nlbtest.Eventually(t, fastWait, "recovery after 6", tracked(func(h bool, c, n int) bool { return h && c == 4 }, "healthy after 4 changes"))
	// nlb status renders the same from inside the node.
	out, err := old.h.Exec(context.Background(), nlbBinary(t), "status").CombinedOutput()
	if err != nil {
		t.Fatalf("nlb status: %v: %s", err, out)
	}
	for _, want := range []string{"VRRP", "k0s-vip-0", "Health (the VIP follows it)", "healthy: local API server", "Recent transitions", "Master -> Backup"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("nlb status lacks %q:\n%s", want, out)
		}
	}
	if st, err := old.controllerStatus(); err != nil || st.Steering.Mode != "off" {
		t.Errorf("steering mode %q (%v), want off with disableLoadBalancer", st.Steering.Mode, err)
	}
}

// controllerVRRP is the VRRP instance of the controller lab tests: VRRPv3
// at 300 ms (Master_Down_Interval about 1.1 s), slower than fastInterval
// so that a loaded CI machine (the race detector, parallel labs) stalling
// a Master for half a second does not move the VIP in the middle of a
// check that it stays put.
func controllerVRRP(vip netip.Prefix) vrrpOpts {
	return vrrpOpts{VRID: vrid, VIPs: []netip.Prefix{vip}, Version: 3, Interval: 300 * time.Millisecond}
}

// masterOf returns the one Master of c.
func masterOf(t *testing.T, c cluster) *node {
	t.Helper()
	for _, n := range c.nodes {
		if s, err := n.state(c.vrid); err == nil && s == "Master" {
			return n
		}
	}
	t.Fatal("no master")
	return nil
}
