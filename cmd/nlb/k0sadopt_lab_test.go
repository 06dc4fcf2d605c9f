//go:build linux

package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
)

// adoptionDir holds the README k0s recipe's files: k0s's own k0s.yaml
// (k0s's fields only, checked against k0s's schema by config's tests)
// and nlb's overlay.
const adoptionDir = "../../config/testdata/k0s-adoption"

// renderAdoption returns the recipe's k0s.yaml for the lab: the VIP and
// the address k0s advertises replaced by vip, and the instance given
// ifName as its interface (a k0s field; the recipe leaves it to k0s's
// default-route detection, and lab hosts have no default route). It
// also returns the overlay's path, used as it is.
func renderAdoption(t *testing.T, ifName string, vip netip.Prefix) (k0s []byte, overlay string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(adoptionDir, "k0s.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	const recipeVIP = "192.0.2.100"
	if strings.Count(s, recipeVIP+"/24") != 1 || strings.Count(s, recipeVIP) != 3 {
		t.Fatalf("%s/k0s.yaml: want its VIP %s/24 once and %s three times (VIP, externalAddress, sans):\n%s", adoptionDir, recipeVIP, recipeVIP, s)
	}
	s = strings.ReplaceAll(s, recipeVIP+"/24", vip.String())
	s = strings.ReplaceAll(s, recipeVIP, vip.Addr().String())
	const entry = "        - virtualIPs: "
	i := strings.Index(s, entry)
	if i < 0 {
		t.Fatalf("%s/k0s.yaml: no %q line", adoptionDir, entry)
	}
	s = s[:i] + "        - interface: " + ifName + "\n          virtualIPs: " + s[i+len(entry):]
	return []byte(s), filepath.Join(adoptionDir, "overlay.yaml")
}

// TestLabK0sAdoption runs the README's k0s recipe: nlb controller from
// k0s's own k0s.yaml (controlPlaneLoadBalancing enabled: false, k0s's
// fields only) plus nlb's overlay with --run-disabled-cplb, on a lab
// host with a stand-in API server. The node becomes Master of the
// recipe's VRID with the VIP on its interface; /status shows the
// overlay's settings in effect (priority 150, apiServerHealth fall 3 and
// rise 5; k0s's file alone gives neither); and a client reaches the
// API server through VIP:6443, steered into the proxy.
func TestLabK0sAdoption(t *testing.T) {
	netlab.Require(t)
	lab := netlab.NewT(t, "", netlab.Options{Hosts: 2})
	h, client := lab.Hosts[0], lab.Hosts[1]
	vip := lab.VIP4(0)
	k0s, overlay := renderAdoption(t, h.IfName, vip)
	startNameServer(t, h)
	api := netip.AddrPortFrom(h.Addr4, 6443).String()
	n := startNLBCommand(t, h, k0s, "controller", "--overlay", overlay, "--run-disabled-cplb",
		"--backend", api, "--local-api-server", api)
	nlbtest.Eventually(t, unitWait, "Master of VRID 51 with the overlay's settings", func() error {
		st, err := n.controllerStatus()
		if err != nil {
			return err
		}
		if len(st.Instances) != 1 {
			return fmt.Errorf("%d instances, want 1: %+v", len(st.Instances), st.Instances)
		}
		in := st.Instances[0]
		if in.VRID != 51 || in.Interface != h.IfName || in.Priority != 150 {
			return fmt.Errorf("instance VRID %d on %s priority %d, want VRID 51 on %s priority 150 (the overlay's)", in.VRID, in.Interface, in.Priority, h.IfName)
		}
		if st.Health == nil || st.Health.Fall != 3 || st.Health.Rise != 5 {
			return fmt.Errorf("health %+v, want the overlay's fall 3 and rise 5", st.Health)
		}
		if in.State != "Master" || !in.VIPsConfigured {
			return fmt.Errorf("instance %s, VIPs configured %v, want Master with its VIPs", in.State, in.VIPsConfigured)
		}
		return nil
	})
	if ok, err := h.HasAddr(vip); err != nil || !ok {
		t.Errorf("VIP %s on %s: %v %v", vip, h.IfName, ok, err)
	}
	nlbtest.Eventually(t, unitWait, "VIP:6443 through the proxy", func() error {
		who, err := ask(client, netip.AddrPortFrom(vip.Addr(), 6443))
		if err != nil || who != h.Name {
			return fmt.Errorf("VIP:6443 answered %q %v, want %s", who, err, h.Name)
		}
		return nil
	})
}
