//go:build linux

package dsr

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
)

// readSysctls reads ARP settings in the host's namespace.
func readSysctls(t *testing.T, h *netlab.Host, keys ...string) map[string]string {
	t.Helper()
	out := make(map[string]string, len(keys))
	err := h.Run(func() error {
		for _, k := range keys {
			b, err := os.ReadFile(filepath.Join("/proc/sys", k))
			if err != nil {
				return err
			}
			out[k] = strings.TrimSpace(string(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// dsrAddrs are the addresses marked as nlb's DR addresses in h.
func dsrAddrs(t *testing.T, h *netlab.Host) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	err := h.Run(func() error {
		r, err := openRTNL()
		if err != nil {
			return err
		}
		defer r.close()
		addrs, err := r.addrs()
		for _, a := range addrs {
			if a.proto == AddrProto {
				out = append(out, a.prefix)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUpDownCrashRestart: Up puts the VIPs on dummyvip0 or lo (this
// kernel may have no dummy link type) and sets the ARP sysctls, so that
// a neighbour gets no ARP or NDP answer for a VIP; a crash (Close without
// Down) and a restart with fewer VIPs keep the originals and remove the
// leftover; Down restores everything.
func TestUpDownCrashRestart(t *testing.T) {
	lab := netlab.NewT(t, "dsr", netlab.Options{Hosts: 2})
	h1, h2 := lab.Hosts[0], lab.Hosts[1]
	vip4, vip6, gone := lab.VIP4(0).Addr(), lab.VIP6(0).Addr(), lab.VIP4(1).Addr()
	keys := []string{
		"net/ipv4/conf/all/arp_ignore", "net/ipv4/conf/all/arp_announce",
		"net/ipv4/conf/" + h1.IfName + "/arp_ignore", "net/ipv4/conf/" + h1.IfName + "/arp_announce",
	}
	before := readSysctls(t, h1, keys...)
	var logs netlab.SyncBuffer
	cfg := Config{
		VIPs:       []netip.Addr{vip4, vip6, gone},
		Interfaces: []string{h1.IfName},
		StateFile:  filepath.Join(t.TempDir(), "run", "dsr.json"),
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
	}
	rs, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	if err := h1.Run(rs.Up); err != nil {
		t.Fatalf("Up: %v", err)
	}
	if rs.Link() == "lo" && !strings.Contains(logs.String(), "no dummy link type") {
		t.Errorf("VIPs on lo and the log does not say so:\n%s", logs.String())
	}
	want := []netip.Prefix{netip.PrefixFrom(vip4, 32), netip.PrefixFrom(vip6, 128), netip.PrefixFrom(gone, 32)}
	if got := dsrAddrs(t, h1); !sameSet(got, want) {
		t.Errorf("DR addresses %v, want %v", got, want)
	}
	after := readSysctls(t, h1, keys...)
	for _, k := range keys {
		w := "1"
		if strings.HasSuffix(k, "arp_announce") {
			w = "2"
		}
		if after[k] != w {
			t.Errorf("after Up: %s = %s, want %s", k, after[k], w)
		}
	}

	// The VIP is local on h1 (a server bound to it accepts), yet h1
	// answers neither ARP nor NDP for it: h2 cannot reach it.
	for _, vip := range []netip.Addr{vip4, vip6} {
		ln, err := h1.Listen("tcp", netip.AddrPortFrom(vip, 6443).String())
		if err != nil {
			t.Fatalf("listen on the VIP %s: %v", vip, err)
		}
		defer ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := h2.Dialer(4*time.Second)(ctx, "tcp", netip.AddrPortFrom(vip, 6443).String())
		cancel()
		if err == nil {
			c.Close()
			t.Errorf("h2 reached %s on h1: h1 answered ARP/NDP for a DR VIP", vip)
		}
		if mac, _ := h2.Neighbor(vip); bytesEqual(mac, h1.MAC) {
			t.Errorf("h2 learnt h1's MAC for %s", vip)
		}
	}

	// A crash: nothing undone. The successor runs with one VIP fewer.
	rs.Close()
	cfg.VIPs = []netip.Addr{vip4, vip6}
	rs2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs2.Close() })
	if err := h1.Run(rs2.Up); err != nil {
		t.Fatalf("Up after a crash: %v", err)
	}
	if got := dsrAddrs(t, h1); !sameSet(got, want[:2]) {
		t.Errorf("after the restart: DR addresses %v, want %v (the leftover %s removed)", got, want[:2], gone)
	}
	b, err := os.ReadFile(cfg.StateFile)
	if err != nil {
		t.Fatal(err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if st.Sysctls[k] != before[k] {
			t.Errorf("state file after the restart: %s = %q, want the original %q", k, st.Sysctls[k], before[k])
		}
	}

	// Down from another goroutine: it acts in the namespace of Up.
	if err := rs2.Down(); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if got := dsrAddrs(t, h1); len(got) != 0 {
		t.Errorf("after Down: DR addresses %v, want none", got)
	}
	if got := readSysctls(t, h1, keys...); !sameMap(got, before) {
		t.Errorf("after Down: sysctls %v, want the originals %v", got, before)
	}
	if _, err := os.Stat(cfg.StateFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Down: state file %v, want it removed", err)
	}
	if rs2.Link() != "lo" {
		var exists bool
		_ = h1.Run(func() error { _, err := net.InterfaceByName(DefaultLink); exists = err == nil; return nil })
		if exists {
			t.Errorf("after Down: %s still there", DefaultLink)
		}
	}
}

// TestDownAfterCrash: a node whose nlb crashed and that no longer runs
// the mode is cleaned by Remove (no VIPs, no Up), from the state file;
// Remove again finds nothing to do.
func TestDownAfterCrash(t *testing.T) {
	lab := netlab.NewT(t, "dsrdown", netlab.Options{Hosts: 1})
	h := lab.Hosts[0]
	keys := []string{"net/ipv4/conf/all/arp_ignore", "net/ipv4/conf/" + h.IfName + "/arp_announce"}
	before := readSysctls(t, h, keys...)
	cfg := Config{
		VIPs:       []netip.Addr{lab.VIP4(2).Addr(), lab.VIP6(2).Addr()},
		Interfaces: []string{h.IfName},
		StateFile:  filepath.Join(t.TempDir(), "dsr.json"),
		Logger:     slog.New(slog.DiscardHandler),
	}
	rs, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Run(rs.Up); err != nil {
		t.Fatal(err)
	}
	rs.Close()
	if err := h.Run(func() error { return Remove(cfg.StateFile, nil) }); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if got := dsrAddrs(t, h); len(got) != 0 {
		t.Errorf("DR addresses %v, want none", got)
	}
	if got := readSysctls(t, h, keys...); !sameMap(got, before) {
		t.Errorf("sysctls %v, want the originals %v", got, before)
	}
	if err := h.Run(func() error { return Remove(cfg.StateFile, nil) }); err != nil {
		t.Errorf("Remove with nothing to undo: %v", err)
	}
}

func sameSet(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	m := make(map[netip.Prefix]bool, len(a))
	for _, p := range a {
		m[p] = true
	}
	for _, p := range b {
		if !m[p] {
			return false
		}
	}
	return true
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func bytesEqual(a, b net.HardwareAddr) bool { return len(a) > 0 && a.String() == b.String() }
