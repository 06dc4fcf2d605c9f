package dsr

import (
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ok := Config{VIPs: []netip.Addr{netip.MustParseAddr("192.0.2.100")}, StateFile: "/run/nlb/dsr.json", Logger: log}
	if rs, err := New(ok); err != nil || rs.cfg.Link != DefaultLink {
		t.Fatalf("New(%+v): %v, link %q; want no error and %s", ok, err, rs.cfg.Link, DefaultLink)
	}
	bad := Config{
		VIPs: []netip.Addr{
			netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("::ffff:192.0.2.100"),
			netip.MustParseAddr("224.0.0.18"), netip.MustParseAddr("127.0.0.1"), {},
		},
		Link:       "lo",
		Interfaces: []string{"eth0", "../all"},
	}
	_, err := New(bad)
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{
		"VIPs[1]: 192.0.2.100 is also VIPs[0]", "VIPs[2]", "VIPs[3]", "VIPs[4]",
		"Link: lo", "Interfaces[1]", "StateFile", "Logger",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if _, err := New(Config{StateFile: "x", Logger: log}); err == nil || !strings.Contains(err.Error(), "VIPs: none") {
		t.Errorf("no VIPs: %v", err)
	}
}

func TestSysctlKeyOK(t *testing.T) {
	for k, want := range map[string]bool{
		"net/ipv4/conf/all/arp_ignore":    true,
		"net/ipv4/conf/eth0/arp_announce": true,
		"net/ipv4/conf/../arp_ignore":     false,
		"net/ipv4/conf/all/forwarding":    false,
		"kernel/core_pattern":             false,
		"net/ipv4/conf/all/x/arp_ignore":  false,
		"net/ipv4/conf//arp_ignore":       false,
	} {
		if got := sysctlKeyOK(k); got != want {
			t.Errorf("sysctlKeyOK(%q) = %v, want %v", k, got, want)
		}
	}
}
