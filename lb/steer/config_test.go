package steer_test

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/nlb-dev/nlb/lb/steer"
)

func TestValidate(t *testing.T) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tl := ln.(*net.TCPListener)
	port := uint16(tl.Addr().(*net.TCPAddr).Port)

	vips := []netip.Addr{netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("2001:db8::100")}
	good := func() steer.Config {
		return steer.Config{Mode: steer.ModeSKLookup, VIPs: vips, Port: 6443, ProxyPort: port, Listeners: []*net.TCPListener{tl}}
	}
	many := make([]netip.Addr, steer.MaxVIPs+1)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})
	}

	for _, tc := range []struct {
		name string
		edit func(*steer.Config)
		want []string // substrings of the error; none: valid
	}{
		{"valid sklookup", func(*steer.Config) {}, nil},
		{"valid auto, empty mode", func(c *steer.Config) { c.Mode = "" }, nil},
		{"valid nftables without listeners", func(c *steer.Config) { c.Mode = steer.ModeNFTables; c.Listeners = nil }, nil},
		{"valid auto without listeners", func(c *steer.Config) { c.Mode = steer.ModeAuto; c.Listeners = nil }, nil},
		{"IPv4-mapped VIP", func(c *steer.Config) { c.VIPs = []netip.Addr{netip.MustParseAddr("::ffff:192.0.2.100")} }, nil},
		{"unknown mode", func(c *steer.Config) { c.Mode = "iptables" }, []string{`mode "iptables"`}},
		{"no VIPs", func(c *steer.Config) { c.VIPs = nil }, []string{"no VIPs"}},
		{"too many VIPs", func(c *steer.Config) { c.VIPs = many }, []string{"at most 64"}},
		{"zero VIP", func(c *steer.Config) { c.VIPs = []netip.Addr{{}} }, []string{"VIPs[0]"}},
		{"unspecified VIP", func(c *steer.Config) { c.VIPs = []netip.Addr{vips[0], netip.IPv6Unspecified()} }, []string{"VIPs[1]"}},
		{"multicast VIP", func(c *steer.Config) { c.VIPs = []netip.Addr{netip.MustParseAddr("224.0.0.18")} }, []string{"not a unicast"}},
		{"loopback VIP", func(c *steer.Config) { c.VIPs = []netip.Addr{netip.MustParseAddr("127.0.0.1")} }, []string{"not a unicast"}},
		{"zoned VIP", func(c *steer.Config) { c.VIPs = []netip.Addr{netip.MustParseAddr("fe80::1%eth0")} }, []string{"not a unicast"}},
		{"port 0", func(c *steer.Config) { c.Port = 0 }, []string{"port: must be"}},
		{"proxy port 0", func(c *steer.Config) { c.ProxyPort = 0 }, []string{"proxy port: must be", "not on proxy port 0"}},
		{"same ports", func(c *steer.Config) { c.Port = port }, []string{"both"}},
		{"sklookup without listeners", func(c *steer.Config) { c.Listeners = nil }, []string{"no listeners"}},
		{"nil listener", func(c *steer.Config) { c.Listeners = []*net.TCPListener{nil} }, []string{"listeners[0]: nil"}},
		{"listener on another port", func(c *steer.Config) { c.ProxyPort = 6444 }, []string{"not on proxy port 6444"}},
		{"every problem at once", func(c *steer.Config) { c.Mode = "x"; c.VIPs = nil; c.Port = 0 }, []string{`mode "x"`, "no VIPs", "port: must be"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.edit(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "steer: config: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			// Attach validates first: it fails the same way, without
			// touching the system (no root needed here).
			if _, aerr := steer.Attach(c); aerr == nil || aerr.Error() != err.Error() {
				t.Errorf("Attach: %v, want %v", aerr, err)
			}
		})
	}
}
