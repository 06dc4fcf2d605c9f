// Command demo is `make demo`: three nlb nodes float one virtual IP in a
// network-namespace lab, with the settings k0s uses for CPLB (VRRPv2, 1 s
// advertisements, priority 200 everywhere). A bystander on the same bridge
// watches the advertisements and probes the VIP with ARP, the way a client
// on the LAN would see a failover. The demo kills the master, brings it
// back, stops the next master gracefully, and prints each timeline.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/observe"
	"github.com/nlb-dev/nlb/internal/vrrplab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// k0sPriority is the priority k0s gives every node (keepalived template).
const k0sPriority = 200

type demo struct {
	out    io.Writer
	nlb    string
	dir    string
	lab    *netlab.Lab
	obs    *observe.Observer
	params vrrplab.Params
	nodes  []*vrrplab.Node
	names  map[string]string // MAC or address -> node name
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	nlbPath := fs.String("nlb", "bin/nlb", "nlb binary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("the demo builds network namespaces, a bridge and veth links, and runs VRRP; " +
			"it needs root (CAP_NET_ADMIN and CAP_NET_RAW): run `sudo make demo`")
	}
	abs, err := filepath.Abs(*nlbPath)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "nlb-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fmt.Fprintln(out, "== nlb demo: a control-plane VIP that survives the death of its holder")
	lab, err := netlab.New("demo", netlab.Options{Hosts: 4})
	if err != nil {
		return err
	}
	defer func() {
		_ = lab.Close()
		fmt.Fprintln(out, "\nLab removed (namespaces, bridge, links).")
	}()
	d := &demo{out: out, nlb: abs, dir: dir, lab: lab, names: map[string]string{}}
	d.params = vrrplab.Params{Version: 2, Interval: time.Second, VRID: 51, VIP: lab.VIP4(0), AuthPass: "k0sdemo"}
	for i, h := range lab.Hosts[:3] {
		name := fmt.Sprintf("controller%d", i+1)
		d.names[h.MAC.String()] = name
		d.names[h.Addr4.String()] = name
	}
	client := lab.Hosts[3]
	octx, cancel := context.WithCancel(ctx)
	defer cancel()
	if d.obs, err = observe.Listen(octx, observe.Config{Netns: client.NS, Interface: client.IfName, VIP: d.params.VIP.Addr(), ProbeInterval: time.Millisecond}); err != nil {
		return err
	}
	defer func() {
		for _, n := range d.nodes {
			if n != nil {
				n.Stop()
			}
		}
	}()

	fmt.Fprintf(out, "\nLab: three controllers and a client on one bridge (namespaces %s-*).\n", lab.ID)
	for i, h := range lab.Hosts[:3] {
		fmt.Fprintf(out, "  controller%d  %-12s MAC %s\n", i+1, h.Addr4, h.MAC)
	}
	fmt.Fprintf(out, "  client       %-12s probes VIP %s with ARP every 1 ms\n", client.Addr4, d.params.VIP.Addr())
	fmt.Fprintf(out, "\nEvery controller runs `nlb vrrp` with k0s's CPLB settings: VRRPv2, virtualRouterID 51,\n"+
		"advertIntervalSeconds 1, authPass, priority %d on every node. Master_Down_Interval = 3 x 1 s +\n"+
		"Skew_Time (256-200)/256 s = %s.\n", k0sPriority, d.params.MasterDown(k0sPriority))

	// Act 1: election.
	fmt.Fprintln(out, "\n-- 1. Election")
	mark := d.obs.Len()
	start := time.Now()
	d.nodes = make([]*vrrplab.Node, 3)
	for i := range 3 {
		if err := d.startNode(i); err != nil {
			return err
		}
	}
	ev, err := d.waitARP(ctx, mark, nil, 15*time.Second)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  +%s  the VIP answers ARP for the first time (from %s).\n", fmtDur(ev.Time.Sub(start)), d.name(d.index(ev.MAC.String())))
	master, err := d.settle(ctx, -1)
	if err != nil {
		return err
	}
	if claims := d.claims(mark, -1); len(claims) > 1 {
		fmt.Fprintf(out, "  %s timed out together and each claimed Master; with equal priorities the\n"+
			"  highest primary address wins (RFC 3768 §6.4.3).\n", strings.Join(claims, ", "))
	} else {
		fmt.Fprintf(out, "  All start as Backup (as k0s configures keepalived). %s started first, so its\n"+
			"  Master_Down timer expired first; its advertisement reset the others' timers (RFC 3768 §6.4.2).\n", d.name(master))
	}
	fmt.Fprintf(out, "  Settled: %s holds the VIP; the others are Backup.\n", d.name(master))

	// Act 2: crash.
	fmt.Fprintf(out, "\n-- 2. SIGKILL the Master (%s): no goodbye, the Backups must notice the silence\n", d.name(master))
	next, err := d.failover(ctx, master, "kill")
	if err != nil {
		return err
	}
	if has, _ := lab.Hosts[master].HasAddr(d.params.VIP); has {
		fmt.Fprintf(out, "  Note: the killed process could not remove its VIP: %s still has %s configured.\n",
			d.name(master), d.params.VIP)
	}

	// Act 3: the crashed node returns.
	fmt.Fprintf(out, "\n-- 3. %s restarts\n", d.name(master))
	if err := d.startNode(master); err != nil {
		return err
	}
	if err := waitNoAddr(ctx, lab.Hosts[master], d.params.VIP, 10*time.Second); err != nil {
		return err
	}
	fmt.Fprintf(out, "  nlb removed the stale VIP at start-up and joined as Backup: %s keeps the VIP, because an\n"+
		"  equal-priority Master is not preempted (no flapping back, as in k0s's keepalived setup).\n", d.name(next))
	if err := netlab.Sleep(ctx, 3*time.Second); err != nil {
		return err
	}
	if has, _ := lab.Hosts[master].HasAddr(d.params.VIP); has {
		return fmt.Errorf("%s took the VIP back; expected it to stay Backup", d.name(master))
	}

	// Act 4: graceful stop.
	fmt.Fprintf(out, "\n-- 4. SIGTERM the Master (%s): it sends a priority-0 advertisement and removes the VIP\n", d.name(next))
	if _, err := d.failover(ctx, next, "term"); err != nil {
		return err
	}
	if err := d.nodes[next].Wait(5 * time.Second); err != nil {
		return fmt.Errorf("%s did not exit cleanly: %w", d.name(next), err)
	}
	if has, _ := lab.Hosts[next].HasAddr(d.params.VIP); has {
		return fmt.Errorf("%s still has the VIP after SIGTERM", d.name(next))
	}
	fmt.Fprintf(out, "  %s exited with status 0 and left no VIP behind.\n", d.name(next))
	fmt.Fprintln(out, "\nMeasure it against keepalived: `make bench-failover`.")
	return nil
}

func (d *demo) startNode(i int) error {
	dir := filepath.Join(d.dir, fmt.Sprintf("node%d-%d", i, time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	n, err := vrrplab.Start(vrrplab.NLB, d.nlb, d.lab.Hosts[i], d.params, k0sPriority, dir)
	if err != nil {
		return err
	}
	d.nodes[i] = n
	return nil
}

// failover signals node i and prints the timeline of the takeover.
func (d *demo) failover(ctx context.Context, i int, how string) (int, error) {
	old := d.lab.Hosts[i]
	mark := d.obs.Len()
	t0 := time.Now()
	sig, wait, rule := d.nodes[i].Kill, d.params.MasterDown(k0sPriority), "Master_Down_Interval"
	if how == "term" {
		sig, wait, rule = d.nodes[i].Term, d.params.Skew(k0sPriority), "Skew_Time"
	}
	if err := sig(); err != nil {
		return 0, err
	}
	notOld := func(mac string) bool { return mac != old.MAC.String() }
	ev, err := d.waitARP(ctx, mark, notOld, 15*time.Second)
	if err != nil {
		return 0, err
	}
	next, err := d.settle(ctx, i)
	if err != nil {
		return 0, err
	}
	evs := d.obs.Events()
	var last time.Time
	for _, e := range evs[:mark] {
		if e.Kind == observe.Advert && e.Src == old.Addr4 {
			last = e.Time
		}
	}
	type line struct {
		t   time.Time
		msg string
	}
	lines := []line{{t0, "signal sent to " + d.name(i)}}
	if !last.IsZero() {
		lines = append(lines, line{last, fmt.Sprintf("last advertisement from %s before the signal", d.name(i))})
	}
	seenAdv, seenARP := map[string]bool{}, map[string]bool{}
	for _, e := range evs[mark:] {
		switch {
		case e.Kind == observe.Advert && e.Src == old.Addr4 && e.Priority == 0:
			last = e.Time // Skew_Time runs from the release
			lines = append(lines, line{e.Time, fmt.Sprintf("%s advertises priority 0: \"I am leaving\"", d.name(i))})
		case e.Kind == observe.Advert && e.Src != old.Addr4 && !seenAdv[e.Src.String()]:
			seenAdv[e.Src.String()] = true
			lines = append(lines, line{e.Time, fmt.Sprintf("%s advertises (priority %d): it claims Master", d.name(d.index(e.Src.String())), e.Priority)})
		case e.Kind == observe.ARPReply && notOld(e.MAC.String()) && !seenARP[e.MAC.String()]:
			seenARP[e.MAC.String()] = true
			lines = append(lines, line{e.Time, fmt.Sprintf("the VIP answers ARP from %s", d.name(d.index(e.MAC.String())))})
		}
	}
	for j := 1; j < len(lines); j++ { // insertion sort: a handful of lines
		for k := j; k > 0 && lines[k].t.Before(lines[k-1].t); k-- {
			lines[k], lines[k-1] = lines[k-1], lines[k]
		}
	}
	for _, l := range lines {
		fmt.Fprintf(d.out, "  %-9s %s\n", fmtOffset(l.t.Sub(t0)), l.msg)
	}
	if len(seenAdv) > 1 {
		fmt.Fprintf(d.out, "  Both Backups have priority %d, so their timers expired together and both claimed Master;\n"+
			"  the one with the lower address heard the other and stepped back (RFC 3768 §6.4.3).\n", k0sPriority)
	}
	fmt.Fprintf(d.out, "  => the client reached the VIP again %s after the signal. RFC %s for\n"+
		"     priority %d is %s; from %s's last advertisement%s the takeover took %s.\n"+
		"     Settled: %s holds the VIP.\n",
		fmtDur(ev.Time.Sub(t0)), rule, k0sPriority, wait, d.name(i), map[bool]string{true: " (priority 0)", false: ""}[how == "term"], fmtDur(ev.Time.Sub(lastOr(last, t0))), d.name(next))
	return next, nil
}

// settle waits two advertisement intervals and returns the one node,
// other than skip, that holds the VIP.
func (d *demo) settle(ctx context.Context, skip int) (int, error) {
	if err := netlab.Sleep(ctx, 2*d.params.Interval+500*time.Millisecond); err != nil {
		return 0, err
	}
	holder := -1
	for i, h := range d.lab.Hosts[:3] {
		if i == skip {
			continue
		}
		has, err := h.HasAddr(d.params.VIP)
		if err != nil {
			return 0, err
		}
		if has {
			if holder >= 0 {
				return 0, fmt.Errorf("both %s and %s hold the VIP", d.name(holder), d.name(i))
			}
			holder = i
		}
	}
	if holder < 0 {
		return 0, errors.New("no node holds the VIP")
	}
	return holder, nil
}

// claims lists the nodes, other than skip, that advertised after event
// index mark.
func (d *demo) claims(mark, skip int) []string {
	seen := map[string]bool{}
	var names []string
	for _, e := range d.obs.Events()[mark:] {
		i := d.index(e.Src.String())
		if e.Kind == observe.Advert && i != skip && !seen[e.Src.String()] {
			seen[e.Src.String()] = true
			names = append(names, d.name(i))
		}
	}
	return names
}

func lastOr(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}

func (d *demo) waitARP(ctx context.Context, from int, ok func(mac string) bool, timeout time.Duration) (observe.Event, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ev, _, err := d.obs.WaitFor(wctx, from, func(e observe.Event) bool {
		return e.Kind == observe.ARPReply && (ok == nil || ok(e.MAC.String()))
	})
	if err != nil {
		var logs strings.Builder
		for i, n := range d.nodes {
			if n != nil {
				fmt.Fprintf(&logs, "--- %s log:\n%s\n", d.name(i), n.Log())
			}
		}
		return ev, fmt.Errorf("no node answered ARP for the VIP: %w\n%s", err, logs.String())
	}
	return ev, nil
}

func (d *demo) index(key string) int {
	for i, h := range d.lab.Hosts[:3] {
		if h.MAC.String() == key || h.Addr4.String() == key {
			return i
		}
	}
	return -1
}

func (d *demo) name(i int) string {
	if i < 0 {
		return "an unknown host"
	}
	return fmt.Sprintf("controller%d", i+1)
}

func waitNoAddr(ctx context.Context, h *netlab.Host, p netip.Prefix, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if has, err := h.HasAddr(p); err == nil && !has {
			return nil
		}
		if err := netlab.Sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s still has %s after %s", h.Name, p, timeout)
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

func fmtOffset(d time.Duration) string {
	if d < 0 {
		return fmt.Sprintf("-%.0f ms", float64(-d.Microseconds())/1000)
	}
	return fmt.Sprintf("+%.0f ms", float64(d.Microseconds())/1000)
}
