//go:build linux

package main

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
)

// TestLabUnitsMissingCapability runs nlb vrrp and nlb controller as their
// units would (TestLabUnits) but with one of the unit's capabilities
// dropped: each must exit at start with an error naming the missing
// capability and the instance, never take the VIP, and never report
// READY=1. Without CAP_NET_ADMIN a node used to start and become Master
// while every VIP add failed; without CAP_NET_RAW the error said only
// "socket: operation not permitted".
func TestLabUnitsMissingCapability(t *testing.T) {
	netlab.Require(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatal("setpriv is missing (Debian package util-linux)")
	}
	bin := nlbBinary(t)
	for _, tc := range []struct{ mode, drop, want string }{
		{"vrrp", "net_raw", "a raw socket needs CAP_NET_RAW: operation not permitted"},
		{"vrrp", "net_admin", "adding the VIPs needs CAP_NET_ADMIN: operation not permitted"},
		{"controller", "net_raw", "a raw socket needs CAP_NET_RAW: operation not permitted"},
		{"controller", "net_admin", "adding the VIPs needs CAP_NET_ADMIN: operation not permitted"},
	} {
		t.Run(tc.mode+"-without-"+tc.drop, func(t *testing.T) {
			t.Parallel()
			lab := netlab.NewT(t, "", netlab.Options{Hosts: 1})
			h := lab.Hosts[0]
			vip := lab.VIP4(0)
			dir := t.TempDir()
			conf := filepath.Join(dir, tc.mode+".yaml")
			if err := os.WriteFile(conf, controllerConf(h.IfName, nlbtest.K0sConfig{}, controllerVRRP(vip)), 0o600); err != nil {
				t.Fatal(err)
			}
			var args []string
			if tc.mode == "controller" {
				api := netip.AddrPortFrom(h.Addr4, 6443).String()
				args = []string{"--backend", api, "--local-api-server", api}
			}
			u := readUnit(t, "nlb-"+tc.mode+".service", map[string]string{"/usr/bin/nlb": bin, "/etc/nlb/" + tc.mode + ".yaml": conf}, args...)
			if !slices.Contains(u.caps, tc.drop) {
				t.Fatalf("the unit's capabilities %q lack %s", u.caps, tc.drop)
			}
			u.caps = slices.DeleteFunc(u.caps, func(c string) bool { return c == tc.drop })
			caps := "-all"
			for _, c := range u.caps {
				caps += ",+" + c
			}
			s := listenNotify(t)
			argv := append([]string{"setpriv", "--bounding-set=" + caps, "--inh-caps=" + caps, "--ambient-caps=" + caps, "--no-new-privs",
				"env", "NOTIFY_SOCKET=" + s.path}, u.argv...)
			p := netlab.NewProcess("nlb "+tc.mode, filepath.Join(dir, "nlb.log"), h, argv...)
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Kill() })
			err := p.Wait(unitWait)
			if err == nil || strings.Contains(err.Error(), "still running") {
				t.Fatalf("without CAP_%s: %v, want an exit with an error; log:\n%s", strings.ToUpper(tc.drop), err, tail(p.Log()))
			}
			log := p.Log()
			// One prefix per layer: the mode's (nlb vrrp's is the
			// instance's own "vrrp:"), then the instance.
			prefix := "nlb: vrrp: instance k0s-vip-0 on " + h.IfName
			if tc.mode != "vrrp" {
				prefix = "nlb: " + tc.mode + ": vrrp: instance k0s-vip-0 on " + h.IfName
			}
			if !strings.Contains(log, tc.want) || !strings.Contains(log, prefix) {
				t.Errorf("without CAP_%s the log lacks %q and %q:\n%s", strings.ToUpper(tc.drop), tc.want, prefix, tail(log))
			}
			if ok, err := h.HasAddr(vip); err != nil || ok {
				t.Errorf("VIP %s on %s after the failed start: %v %v", vip, h.Name, ok, err)
			}
		drain:
			for {
				select {
				case m, ok := <-s.msgs:
					if !ok {
						break drain
					}
					if m == "READY=1" {
						t.Errorf("READY=1 from a mode that could not start")
					}
				default:
					break drain
				}
			}
		})
	}
}
