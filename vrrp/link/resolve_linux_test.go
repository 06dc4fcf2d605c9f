//go:build linux

package link

import (
	"net"
	"testing"
)

// TestResolver only reads the host's links and routes.
func TestResolver(t *testing.T) {
	r := NewResolver()
	if err := r.InterfaceExists("lo"); err != nil {
		t.Errorf("lo: %v", err)
	}
	if err := r.InterfaceExists("nlb-no-such0"); err == nil {
		t.Error("nonexistent link reported as existing")
	}
	if _, err := r.InterfaceByMAC(net.HardwareAddr{0x02, 0, 0x5e, 0xff, 0xff, 0xfe}); err == nil {
		t.Error("found a link for an unused MAC")
	}
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifs {
		if len(ifc.HardwareAddr) == 6 {
			name, err := r.InterfaceByMAC(ifc.HardwareAddr)
			if err != nil {
				t.Errorf("MAC of %s: %v", ifc.Name, err)
			} else if got, _ := net.InterfaceByName(name); got == nil || got.HardwareAddr.String() != ifc.HardwareAddr.String() {
				t.Errorf("MAC of %s resolved to %s", ifc.Name, name)
			}
			break
		}
	}
	if name, err := r.DefaultRouteInterface(); err == nil {
		if err := r.InterfaceExists(name); err != nil {
			t.Errorf("default route link %q: %v", name, err)
		}
	} else {
		t.Logf("no default route here: %v", err)
	}
}
