//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/ebpf/sklookup"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
	"github.com/nlb-dev/nlb/lb/steer/nft"
)

// startNameServer stands in for h's API server on h's address:6443: it
// writes h's name and closes, so a client can tell who answered.
func startNameServer(t *testing.T, h *netlab.Host) {
	t.Helper()
	ln, err := h.Listen("tcp", netip.AddrPortFrom(h.Addr4, 6443).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				// The name, then the connection stays open until the
				// client closes it (bounded), like a watch.
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(time.Minute))
				if _, err := c.Write([]byte(h.Name + "\n")); err == nil {
					_, _ = io.Copy(io.Discard, c)
				}
			}()
		}
	}()
}

// ask connects from h to addr and returns the first line it is sent.
func ask(h *netlab.Host, addr netip.AddrPort) (string, error) {
	var line string
	err := h.Run(func() error {
		c, err := net.DialTimeout("tcp", addr.String(), 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		line, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	return strings.TrimSpace(line), err
}

// proxyTotal returns the proxy's accepted-connection count from /status.
func (n *node) proxyTotal() (uint64, string, error) {
	st, err := n.controllerStatus()
	if err != nil {
		return 0, "", err
	}
	if st.Proxy == nil {
		return 0, st.Steering.Mode, fmt.Errorf("%s: no proxy in /status", n.name)
	}
	return st.Proxy.Total, st.Steering.Mode, nil
}

// steeringLeft counts what a steering mode leaves in h's namespace: links
// of our sk_lookup program, or nlb nftables rules.
func steeringLeft(t *testing.T, h *netlab.Host) (links, rules int) {
	t.Helper()
	ns := "/run/netns/" + h.NS
	ids, err := sklookup.Links(ns)
	if err != nil {
		t.Fatal(err)
	}
	c, err := nft.Count(ns)
	if err != nil {
		t.Fatal(err)
	}
	return len(ids), c.Rules
}

// TestLabControllerSteering: three `nlb controller`s with the proxy on
// 6444 in front of stand-in API servers on 6443, for each steering mode.
//   - A client connecting to VIP:6443 is steered into the holder's proxy
//     (its connection count grows by exactly the client's connections),
//     while a connection to a node's own address:6443 reaches that node's
//     API server directly (no proxy involved).
//   - The holder is SIGKILLed: the VIP moves and the new holder steers;
//     the killed node's steering is gone with it (sk_lookup: the link dies
//     with the process) or left once (nftables: the table survives); a
//     restart leaves exactly one copy; SIGTERM removes everything.
func TestLabControllerSteering(t *testing.T) {
	netlab.Require(t)
	for _, mode := range []string{"sklookup", "nftables"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			lab := netlab.NewT(t, "", netlab.Options{Hosts: 4})
			vip := lab.VIP4(0)
			client := lab.Hosts[3]
			c := cluster{vrid: vrid, vip: vip}
			var backends []string
			for _, h := range lab.Hosts[:3] {
				startNameServer(t, h)
				backends = append(backends, "--backend", netip.AddrPortFrom(h.Addr4, 6443).String())
			}
			start := func(h *netlab.Host) *node {
				conf := controllerConf(h.IfName, nlbtest.K0sConfig{Steering: mode, Health: &nlbtest.Health{Interval: 200 * time.Millisecond, Fall: 5, Rise: 3}},
					controllerVRRP(vip))
				args := append([]string{"--local-api-server", netip.AddrPortFrom(h.Addr4, 6443).String()}, backends...)
				return startNLBCommand(t, h, conf, "controller", args...)
			}
			for _, h := range lab.Hosts[:3] {
				c.nodes = append(c.nodes, start(h))
			}
			nlbtest.Eventually(t, fastWait, "election", func() error { return c.exactlyMaster(nil, netip.Addr{}) })
			holder := masterOf(t, c)

			steeredMetric := func(n *node) float64 {
				t.Helper()
				v, err := n.metricSum("nlb_steering_connections_total", map[string]string{"result": "steered"})
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			steered := func(n *node, count int) {
				t.Helper()
				before, gotMode, err := n.proxyTotal()
				if err != nil {
					t.Fatal(err)
				}
				mBefore := steeredMetric(n)
				if gotMode != mode {
					t.Errorf("%s: steering mode %q, want %q", n.name, gotMode, mode)
				}
				for i := range count {
					who, err := ask(client, netip.AddrPortFrom(vip.Addr(), 6443))
					if err != nil || !strings.HasPrefix(who, "h") {
						t.Fatalf("VIP:6443 connection %d: %q %v", i, who, err)
					}
				}
				after, _, err := n.proxyTotal()
				if err != nil {
					t.Fatal(err)
				}
				if after-before != uint64(count) {
					t.Errorf("%s proxy accepted %d connections for %d to VIP:6443, want all steered", n.name, after-before, count)
				}
				// sk_lookup counts them in nlb_steering_connections_total;
				// nftables keeps no counters of ours.
				want := float64(count)
				if mode == "nftables" {
					want = 0
				}
				if got := steeredMetric(n) - mBefore; got != want {
					t.Errorf("%s: nlb_steering_connections_total{result=\"steered\"} grew by %v, want %v", n.name, got, want)
				}
			}
			steered(holder, 6)

			// A node's own address is not steered: its API server answers.
			other := c.nodes[0]
			if other == holder {
				other = c.nodes[1]
			}
			before, _, _ := other.proxyTotal()
			if who, err := ask(client, netip.AddrPortFrom(other.h.Addr4, 6443)); err != nil || who != other.h.Name {
				t.Errorf("%s:6443 answered %q %v, want %s directly", other.h.Addr4, who, err, other.h.Name)
			}
			if after, _, _ := other.proxyTotal(); after != before {
				t.Errorf("%s's proxy saw a connection to the node address", other.name)
			}
			if l, r := steeringLeft(t, holder.h); (mode == "sklookup" && (l != 1 || r != 0)) || (mode == "nftables" && (l != 0 || r == 0)) {
				t.Errorf("%s: %d sk_lookup links, %d nft rules while running %s", holder.name, l, r, mode)
			}
			_, rulesRunning := steeringLeft(t, holder.h)

			// The holder dies: the VIP moves and the new holder steers.
			holder.signal(syscall.SIGKILL)
			_ = holder.wait()
			rest := cluster{vrid: vrid, vip: vip}
			for _, n := range c.nodes {
				if n != holder {
					rest.nodes = append(rest.nodes, n)
				}
			}
			// (The killed node keeps the VIP address until its restart
			// removes it as stale.)
			nlbtest.Eventually(t, fastWait, "takeover", func() error { return rest.exactlyMaster(nil, netip.Addr{}) })
			l, r := steeringLeft(t, holder.h)
			switch mode {
			case "sklookup":
				if l != 0 {
					t.Errorf("after SIGKILL: %d sk_lookup links left, want 0 (they die with the process)", l)
				}
			case "nftables":
				if r != rulesRunning {
					t.Errorf("after SIGKILL: %d nft rules, want the %d of the dead process", r, rulesRunning)
				}
			}
			restarted := start(holder.h)
			for i, n := range c.nodes {
				if n == holder {
					c.nodes[i] = restarted
				}
			}
			nlbtest.Eventually(t, fastWait, "one master after the restart", func() error { return c.exactlyMaster(nil, netip.Addr{}) })
			// Until its restart the killed node still had the VIP and
			// answered ARP for it, so the client may still send to its
			// MAC (with nftables its REDIRECT would even serve that as a
			// Backup). A client that resolves the VIP afresh reaches the
			// new holder.
			if out, err := client.Exec(context.Background(), "ip", "neigh", "flush", "to", vip.Addr().String()).CombinedOutput(); err != nil {
				t.Fatalf("ip neigh flush: %v: %s", err, out)
			}
			steered(masterOf(t, c), 4)
			l, r = steeringLeft(t, restarted.h)
			if (mode == "sklookup" && (l != 1 || r != 0)) || (mode == "nftables" && (l != 0 || r != rulesRunning)) {
				t.Errorf("after restart: %d sk_lookup links, %d nft rules; want exactly one copy", l, r)
			}

			// SIGTERM of the holder, with a client connection through
			// the VIP open: the VIP moves, the connection (whose client
			// now reaches the new holder) is closed rather than drained
			// for 30 s, so the process exits within exitWait, and the
			// steering is gone.
			m := masterOf(t, c)
			var held net.Conn
			if err := client.Run(func() error {
				var err error
				held, err = net.DialTimeout("tcp", netip.AddrPortFrom(vip.Addr(), 6443).String(), 2*time.Second)
				if err != nil {
					return err
				}
				_ = held.SetDeadline(time.Now().Add(5 * time.Second))
				_, err = bufio.NewReader(held).ReadString('\n')
				return err
			}); err != nil {
				t.Fatalf("a held connection through the VIP: %v", err)
			}
			defer held.Close()
			m.signal(syscall.SIGTERM)
			if err := m.wait(); err != nil {
				t.Errorf("%s after SIGTERM: %v", m.name, err)
			}
			if lg := m.log(); !strings.Contains(lg, "closed connections to addresses that left the host") ||
				!strings.Contains(lg, "connections=1") {
				t.Errorf("%s did not close its one VIP connection at the handover:\n%s", m.name, lg)
			}
			// Closed while the VIP was still there: the client got the
			// FIN, and can reconnect at once.
			_ = held.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := held.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
				t.Errorf("the held connection through the VIP: %v, want the end of stream", err)
			}
			if l, r := steeringLeft(t, m.h); l != 0 || r != 0 {
				t.Errorf("after SIGTERM: %d sk_lookup links, %d nft rules left", l, r)
			}
		})
	}
}
