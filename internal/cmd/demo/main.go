// Command demo is `make demo`: three k0s controllers behind one virtual
// IP, in a network-namespace lab. Each controller host runs `nlb
// controller` (VRRP with k0s's CPLB settings, the user-space proxy on
// 6444, health tracking of the local API server) next to an API server:
// real kube-apiservers (internal/k8slab, with etcd) when the end-to-end
// build is cached, otherwise small TLS stand-ins. A client host reads
// https://VIP:6443 continuously, and a bystander on the same bridge
// timestamps every VRRP advertisement and ARP reply for the VIP.
//
// The acts: election; steady traffic; the master node dies (SIGKILL of
// nlb and its API server) and the timeline of the takeover; the node comes
// back as Backup (no preemption); the new master's API server alone stops,
// and the VIP follows /readyz; it comes back. A summary table ends it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nlb-dev/nlb/internal/benchrun"
	"github.com/nlb-dev/nlb/internal/k8slab"
	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/observe"
)

func main() { benchrun.Main("demo", run) }

// demo is one run.
type demo struct {
	out   io.Writer
	nlb   string
	dir   string
	lab   *netlab.Lab
	hosts []*netlab.Host // the three controller hosts
	cli   *netlab.Host   // the client host
	by    *netlab.Host   // the bystander that watches adverts and ARP
	vip   netip.Prefix
	api   *apiServers
	nodes []*node
	obs   *observe.Observer
	cl    *client
	rows  []summaryRow
}

func run(ctx context.Context, args []string, out, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nlbPath := fs.String("nlb", "bin/nlb", "nlb `binary`")
	standins := fs.Bool("standins", false, "use TLS stand-ins even when real kube-apiservers are available")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("the demo builds network namespaces, a bridge and veth links, and runs VRRP; " +
			"it needs root (CAP_NET_ADMIN and CAP_NET_RAW): run `sudo make demo`")
	}
	abs, err := benchrun.Binary(*nlbPath)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "nlb-demo-")
	if err != nil {
		return fmt.Errorf("scratch directory: %w", err)
	}
	defer os.RemoveAll(dir)

	began := time.Now()
	fmt.Fprintln(out, "== nlb demo: three k0s controllers behind one VIP; the master dies; clients keep reading")
	d := &demo{out: out, nlb: abs, dir: dir}
	apiserver, why := cachedAPIServer(ctx, *standins)
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		if d.lab != nil {
			fmt.Fprintln(out, "\nCleaned up: nlb and API server processes stopped, namespaces and bridge removed.")
		}
	}()
	if apiserver != "" {
		fmt.Fprintf(out, "\nAPI servers: real kube-apiservers (%s).\nStarting etcd and three kube-apiservers ...", why)
		t := time.Now()
		c, err := k8slab.Start(ctx, k8slab.Options{Name: "demo", APIServer: apiserver, Dir: filepath.Join(dir, "k8s"), Spares: 1})
		if err != nil {
			fmt.Fprintln(out)
			return err
		}
		cleanups = append(cleanups, func() { _ = c.Close() })
		// The proxies discover their backends from the `kubernetes`
		// EndpointSlices: wait until every API server has its lease there.
		wctx, wcancel := context.WithTimeout(ctx, 45*time.Second)
		_, werr := c.WaitAPIEndpoints(wctx, c.Controllers...)
		wcancel()
		if werr != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		fmt.Fprintf(out, " ready in %.1f s", time.Since(t).Seconds())
		if werr != nil {
			fmt.Fprintf(out, " (the `kubernetes` EndpointSlices do not list all three yet: %v)", werr)
		} else {
			fmt.Fprintf(out, "; the `kubernetes` EndpointSlices list all three")
		}
		fmt.Fprintln(out, ".")
		d.lab, d.hosts, d.cli, d.by = c.Lab, c.Lab.Hosts[:3], c.Worker, c.Spares[0]
		d.vip = c.Lab.VIP4(0)
		if d.api, err = realAPIServers(c); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, "\nAPI servers: TLS stand-ins (%s).\n", why)
		lab, err := netlab.New("demo", netlab.Options{Hosts: 5})
		if err != nil {
			return err
		}
		cleanups = append(cleanups, func() { _ = lab.Close() })
		d.lab, d.hosts, d.cli, d.by = lab, lab.Hosts[:3], lab.Hosts[3], lab.Hosts[4]
		d.vip = lab.VIP4(0)
		api, closeAll, err := standInAPIServers(ctx, d.hosts, d.vip.Addr())
		if err != nil {
			return err
		}
		cleanups = append(cleanups, closeAll)
		d.api = api
	}

	octx, ocancel := context.WithCancel(ctx)
	cleanups = append(cleanups, func() { ocancel(); d.obs.Wait() })
	if d.obs, err = observe.Listen(octx, observe.Config{Netns: d.by.NS, Interface: d.by.IfName, VIP: d.vip.Addr(), ProbeInterval: time.Millisecond}); err != nil {
		ocancel()
		return err
	}
	for i, h := range d.hosts {
		n, err := newNode(i, h, d.nlb, dir, d.vip, d.api.args(i))
		if err != nil {
			return err
		}
		d.nodes = append(d.nodes, n)
	}
	cleanups = append(cleanups, func() {
		for _, n := range d.nodes {
			n.stop()
		}
	})
	defer func() {
		if err != nil && ctx.Err() == nil {
			var b strings.Builder
			for _, n := range d.nodes {
				fmt.Fprintf(&b, "--- controller%d nlb log (last 15 lines):\n%s\n", n.i+1, n.logTail(15))
			}
			err = fmt.Errorf("%w\n%s", err, b.String())
		}
	}()

	d.describe()
	if err := d.acts(ctx, &cleanups); err != nil {
		return err
	}
	d.summary()
	fmt.Fprintf(out, "\nThe whole demo took %.0f s.\n", time.Since(began).Seconds())
	return nil
}

// cachedAPIServer returns the cached kube-apiserver build to use, or "" for
// stand-ins, and says why.
func cachedAPIServer(ctx context.Context, standins bool) (path, why string) {
	if standins {
		return "", "--standins"
	}
	dir, err := k8slab.DefaultCacheDir()
	if err != nil {
		return "", err.Error()
	}
	path, ok, err := k8slab.CachedAPIServer(ctx, dir)
	switch {
	case err != nil:
		return "", fmt.Sprintf("no cached kube-apiserver: %v", err)
	case !ok:
		return "", fmt.Sprintf("no kube-apiserver build in %s; `make test` builds it once", dir)
	}
	if _, err := exec.LookPath("etcd"); err != nil {
		return "", "etcd is not installed (Debian package etcd-server)"
	}
	return path, "the end-to-end build cached in " + filepath.Dir(path)
}

func (d *demo) describe() {
	out := d.out
	fmt.Fprintf(out, "\nLab (namespaces %s-*): three controller hosts, a client and a bystander on one bridge.\n", d.lab.ID)
	for i, h := range d.hosts {
		fmt.Fprintf(out, "  controller%d  %-12s MAC %s   nlb controller + API server (%s)\n", i+1, h.Addr4, h.MAC, apiServerName(i))
	}
	fmt.Fprintf(out, "  client       %-12s GET https://%s:6443%s\n"+
		"               on a new connection every %v, and on one long-lived connection every %v;\n"+
		"               timeout %v (connect, TLS and response)\n",
		d.cli.Addr4, d.vip.Addr(), d.api.path, freshEvery, longEvery, clientTimout)
	fmt.Fprintf(out, "  bystander    %-12s timestamps every VRRP advertisement and probes the VIP with ARP every 1 ms\n", d.by.Addr4)
	fmt.Fprintf(out, "\nAPI servers: %s.\n", d.api.describe())
	fmt.Fprintf(out, "\nEach controller host reads this k0s ClusterConfig (controller1's; only `interface` differs):\n\n")
	for _, l := range strings.Split(strings.TrimRight(controllerConfig(d.hosts[0].IfName, d.vip), "\n"), "\n") {
		fmt.Fprintf(out, "    %s\n", l)
	}
	fmt.Fprintf(out, "\nand runs, in its namespace:\n    %s\n", d.nodes[0].commandLine())
	fmt.Fprintf(out, "\nk0s's CPLB settings: VRRPv2, virtualRouterID %d, advertIntervalSeconds %d, priority %d on every\n"+
		"node, so Master_Down_Interval = 3 x 1 s + Skew_Time (256-200)/256 s = %s.\n"+
		"The VIP follows the local API server's health (%s):\n"+
		"checks every 500 ms, 3 failures give up mastership, 5 successes restore it.\n",
		vrid, advertSeconds, k0sPriority, fmtSec(masterDown()), d.api.check)
}

func (d *demo) acts(ctx context.Context, cleanups *[]func()) error {
	out := d.out
	// Act 1: election.
	fmt.Fprintln(out, "\n-- 1. Election: the three controllers start, all as Backup (as k0s configures keepalived)")
	mark := d.obs.Len()
	t0 := time.Now()
	for _, n := range d.nodes {
		if err := n.start(); err != nil {
			return err
		}
	}
	if _, err := d.waitARP(ctx, mark, -1, 20*time.Second); err != nil {
		return err
	}
	master, err := d.settle(ctx, -1)
	if err != nil {
		return err
	}
	tl := &timeline{t0: t0}
	tl.add(t0, "three `nlb controller`s started")
	d.adverts(tl, mark, -1, "advertises: it claims Master")
	d.arps(tl, mark, -1)
	tl.print(out)
	if d.claimants(mark, -1) > 1 {
		fmt.Fprintf(out, "  Equal priorities and timers started together: more than one claimed Master; the highest\n"+
			"  address wins and the others step back (RFC 3768 §6.4.3).\n")
	}
	fmt.Fprintf(out, "  Settled: %s is Master and holds %s; the others are Backup. `nlb status` there:\n\n", d.name(master), d.vip.Addr())
	st, err := d.nodes[master].nlbStatus(ctx)
	if err != nil {
		return err
	}
	for _, l := range strings.Split(strings.TrimRight(st, "\n"), "\n") {
		if l = strings.TrimRight(l, " "); l == "" {
			fmt.Fprintln(out)
			continue
		}
		fmt.Fprintf(out, "    %s\n", l)
	}
	ms, err := d.nodes[master].status(ctx)
	if err != nil {
		return err
	}
	steer := ms.Steering.Mode
	if steer == "off" || steer == "" {
		fmt.Fprintf(out, "\n  Steering mode: off (not available in this nlb build). VIP:6443 reaches the master's own API server\n"+
			"  directly (it binds 0.0.0.0:6443); the proxy listens on :%d on every controller.\n", proxyPort)
	} else {
		fmt.Fprintf(out, "\n  Steering mode: %s. On the master, VIP:6443 is steered into the proxy on :%d, which\n"+
			"  spreads connections over the three API servers.\n", steer, proxyPort)
	}

	// Act 2: steady traffic.
	fmt.Fprintln(out, "\n-- 2. Steady traffic through the VIP")
	cctx, ccancel := context.WithCancel(ctx)
	d.cl = newClient(d.cli, netip.AddrPortFrom(d.vip.Addr(), k8slab.APIServerPort), d.api)
	d.cl.run(cctx)
	*cleanups = append(*cleanups, func() { ccancel(); d.cl.wait() })
	if err := netlab.Sleep(ctx, 500*time.Millisecond); err != nil {
		return err
	}
	w0 := time.Now()
	if err := netlab.Sleep(ctx, 3*time.Second); err != nil {
		return err
	}
	d.steady(w0, time.Now())
	if steer == "off" || steer == "" {
		if err := d.proxySample(ctx); err != nil {
			return err
		}
	}

	// Act 3: the master node dies.
	fmt.Fprintf(out, "\n-- 3. %s dies: its link goes down and its nlb and API server are SIGKILLed\n"+
		"   (no goodbye advertisement, no FIN or RST for open connections: silence)\n", d.name(master))
	next, err := d.nodeDeath(ctx, master)
	if err != nil {
		return err
	}

	// Act 4: it comes back.
	fmt.Fprintf(out, "\n-- 4. %s comes back: it boots (link up, no VIP), then its API server and nlb start\n", d.name(master))
	if err := d.comeBack(ctx, master, next, true); err != nil {
		return err
	}

	// Act 5: only the new master's API server stops.
	fmt.Fprintf(out, "\n-- 5. Only %s's API server stops; its nlb keeps running, and its health check fails\n"+
		"   (%s)\n", d.name(next), d.api.check)
	third, err := d.apiDown(ctx, next)
	if err != nil {
		return err
	}

	// Act 6: the API server comes back.
	fmt.Fprintf(out, "\n-- 6. %s's API server comes back\n", d.name(next))
	return d.comeBack(ctx, next, third, false)
}

// steady prints what the client saw in [from, to).
func (d *demo) steady(from, to time.Time) {
	var fresh, ok, long, longOK int
	by := make([]int, len(d.hosts))
	conns := map[int]int{}
	for _, s := range d.cl.since(from) {
		if !s.start.Before(to) {
			break
		}
		if s.long {
			long++
			if s.ok() {
				longOK++
				conns[s.conn] = s.who
			}
			continue
		}
		fresh++
		if s.ok() {
			ok++
			by[s.who]++
		}
	}
	secs := to.Sub(from).Seconds()
	fmt.Fprintf(d.out, "  In %.1f s: %d of %d requests on new connections succeeded (%.0f requests/s), answered by the\n  API servers of ",
		secs, ok, fresh, float64(ok)/secs)
	var parts []string
	for i, n := range by {
		parts = append(parts, fmt.Sprintf("%s %d", d.name(i), n))
	}
	fmt.Fprintf(d.out, "%s.\n", strings.Join(parts, ", "))
	var who []string
	for c, w := range conns {
		who = append(who, fmt.Sprintf("#%d to %s's API server", c, d.name(w)))
	}
	fmt.Fprintf(d.out, "  The long-lived connection: %d of %d requests succeeded, on connection %s.\n", longOK, long, strings.Join(who, ", "))
}

// proxySample sends requests to VIP:6444, the proxy itself, to show the
// balancing when steering is off.
func (d *demo) proxySample(ctx context.Context) error {
	const n = 30
	by := make([]int, len(d.hosts))
	target := netip.AddrPortFrom(d.vip.Addr(), proxyPort)
	fails := 0
	for range n {
		who, err := d.cl.once(ctx, target)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			fails++
			continue
		}
		by[who]++
	}
	var parts []string
	for i, c := range by {
		parts = append(parts, fmt.Sprintf("%s %d", d.name(i), c))
	}
	fmt.Fprintf(d.out, "  The proxy itself, asked directly on VIP:%d (%d requests, round robin), reached the API servers of\n  %s", proxyPort, n, strings.Join(parts, ", "))
	if fails > 0 {
		fmt.Fprintf(d.out, ", %d failed", fails)
	}
	fmt.Fprintln(d.out, ".")
	return nil
}

// nodeDeath kills node m's nlb and API server and prints the takeover.
func (d *demo) nodeDeath(ctx context.Context, m int) (int, error) {
	mark := d.obs.Len()
	t0 := time.Now()
	if err := d.hosts[m].LinkDown(); err != nil {
		return 0, fmt.Errorf("%s link down: %w", d.name(m), err)
	}
	if err := d.nodes[m].kill(); err != nil {
		return 0, err
	}
	if err := d.api.servers[m].Kill(); err != nil {
		return 0, err
	}
	ev, err := d.waitARP(ctx, mark, m, 20*time.Second)
	if err != nil {
		return 0, err
	}
	next, err := d.settle(ctx, m)
	if err != nil {
		return 0, err
	}
	if err := d.waitClient(ctx, ev.Time, 10*time.Second); err != nil {
		return 0, err
	}
	tl := &timeline{t0: t0}
	tl.add(t0, fmt.Sprintf("%s's link down; SIGKILL its nlb and API server", d.name(m)))
	last := d.lastAdvert(mark, m)
	if !last.IsZero() {
		tl.add(last, fmt.Sprintf("last advertisement from %s", d.name(m)))
	}
	first := d.adverts(tl, mark, m, "advertises: it claims Master")
	d.arps(tl, mark, m)
	cs := d.clientLines(tl, t0)
	wrong, wrongHost := d.arpLines(tl, t0, ev.Time, next)
	tl.print(d.out)
	if n := d.claimants(mark, m); n > 1 {
		fmt.Fprintf(d.out, "  Both Backups have priority %d: their timers expired together and both claimed Master;\n"+
			"  the one with the lower address heard the other and stepped back (RFC 3768 §6.4.3).\n", k0sPriority)
	}
	d.wrongARP(wrong, wrongHost, next)
	fmt.Fprintf(d.out, "  => takeover %s after the last advertisement (Master_Down_Interval is %s);\n",
		fmtSec(first.Sub(lastOr(last, t0))), fmtSec(masterDown()))
	cs.print(d.out, t0)
	fmt.Fprintf(d.out, "     Settled: %s holds the VIP.\n", d.name(next))
	d.rows = append(d.rows, summaryRow{
		act:    fmt.Sprintf("node death (%s)", d.name(m)),
		vip:    fmt.Sprintf("to %s in %s (MDI %s)", d.name(next), fmtSec(first.Sub(lastOr(last, t0))), fmtSec(masterDown())),
		client: cs,
		arp:    wrong,
	})
	return next, nil
}

// apiDown stops node m's API server only and prints the health-driven
// handover.
func (d *demo) apiDown(ctx context.Context, m int) (int, error) {
	mark := d.obs.Len()
	t0 := time.Now()
	if err := d.api.servers[m].Kill(); err != nil {
		return 0, err
	}
	ev, err := d.waitARP(ctx, mark, m, 20*time.Second)
	if err != nil {
		return 0, err
	}
	next, err := d.settle(ctx, -1)
	if err != nil {
		return 0, err
	}
	if next == m {
		return 0, fmt.Errorf("%s is still Master without its API server", d.name(m))
	}
	if err := d.waitClient(ctx, ev.Time, 10*time.Second); err != nil {
		return 0, err
	}
	st, err := d.nodes[m].status(ctx)
	if err != nil {
		return 0, err
	}
	tl := &timeline{t0: t0}
	tl.add(t0, fmt.Sprintf("%s's API server stops (SIGKILL); its nlb runs on", d.name(m)))
	var release time.Time
	for _, e := range d.obs.Events()[mark:] {
		if e.Kind == observe.Advert && e.Src == d.hosts[m].Addr4 && e.Priority == 0 {
			release = e.Time
			tl.add(e.Time, fmt.Sprintf("%s advertises priority 0: unhealthy, it gives up the VIP", d.name(m)))
			break
		}
	}
	first := d.adverts(tl, mark, m, "advertises: it claims Master")
	d.arps(tl, mark, m)
	cs := d.clientLines(tl, t0)
	wrong, wrongHost := d.arpLines(tl, t0, ev.Time, next)
	tl.print(d.out)
	if n := d.claimants(mark, m); n > 1 {
		fmt.Fprintf(d.out, "  Both Backups heard the priority-0 advertisement and waited Skew_Time: both claimed Master;\n"+
			"  the one with the lower address heard the other and stepped back (RFC 3768 §6.4.3).\n")
	}
	d.wrongARP(wrong, wrongHost, next)
	if len(st.Instances) > 0 {
		fmt.Fprintf(d.out, "  %s's nlb: %s, priority %d (%s)", d.name(m), st.state(), st.Instances[0].Priority, st.Instances[0].LastReason)
		if st.Health != nil && st.Health.Tracked.LastError != "" {
			fmt.Fprintf(d.out, ";\n  last failed check: %s", st.Health.Tracked.LastError)
		}
		fmt.Fprintln(d.out, ".")
	}
	detect, handover := "-", "-"
	if !release.IsZero() {
		detect = fmtSec(release.Sub(t0))
		handover = fmtSec(first.Sub(release))
		fmt.Fprintf(d.out, "  => unhealthy after %s (3 failed checks 500 ms apart), VIP handed over %s later\n"+
			"     (Skew_Time %s after a priority-0 advertisement);\n", detect, handover, fmtSec(skewTime()))
	}
	cs.print(d.out, t0)
	fmt.Fprintf(d.out, "     Settled: %s holds the VIP.\n", d.name(next))
	d.rows = append(d.rows, summaryRow{
		act:    fmt.Sprintf("API server down (%s)", d.name(m)),
		vip:    fmt.Sprintf("to %s in %s (%s + %s)", d.name(next), fmtSec(first.Sub(t0)), detect, handover),
		client: cs,
		arp:    wrong,
	})
	return next, nil
}

// comeBack brings node m back and checks that it rejoins as a healthy
// Backup while master keeps the VIP. After a node death (boot) the node
// boots: its link comes up without the VIP (a reboot forgets addresses),
// then its API server and nlb start; otherwise only the API server starts
// again.
func (d *demo) comeBack(ctx context.Context, m, master int, boot bool) error {
	mark := d.obs.Len()
	t0 := time.Now()
	tl := &timeline{t0: t0}
	if boot {
		if err := d.hosts[m].RemoveAddr(d.vip); err != nil {
			return err
		}
		if err := d.hosts[m].LinkUp(); err != nil {
			return fmt.Errorf("%s link up: %w", d.name(m), err)
		}
		if err := d.nodes[m].start(); err != nil {
			return err
		}
		tl.add(t0, fmt.Sprintf("%s boots: link up; its API server and nlb start", d.name(m)))
	} else {
		tl.add(t0, fmt.Sprintf("%s's API server starts again", d.name(m)))
	}
	if err := d.api.servers[m].Start(ctx); err != nil {
		return err
	}
	tl.add(time.Now(), fmt.Sprintf("%s's API server is ready", d.name(m)))
	// Healthy again (rise 5) and Backup at priority 200.
	var st status
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		st, err = d.nodes[m].status(ctx)
		if err == nil && st.state() == "Backup" && st.Instances[0].Priority == k0sPriority &&
			(st.Health == nil || st.Health.Tracked.Healthy) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not rejoin as a healthy Backup: %+v %v", d.name(m), st, err)
		}
		if err := netlab.Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	tl.add(time.Now(), fmt.Sprintf("%s's nlb counts its API server healthy (5 good checks): Backup, priority %d", d.name(m), k0sPriority))
	// Hold: no preemption with equal priorities.
	if err := netlab.Sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	now, err := d.settle(ctx, -1)
	if err != nil {
		return err
	}
	if now != master {
		return fmt.Errorf("the VIP moved from %s to %s when %s came back", d.name(master), d.name(now), d.name(m))
	}
	if has, _ := d.hosts[m].HasAddr(d.vip); has {
		return fmt.Errorf("%s has the VIP configured, but %s is Master", d.name(m), d.name(master))
	}
	for _, e := range d.obs.Events()[mark:] {
		if e.Kind == observe.Advert && e.Src == d.hosts[m].Addr4 {
			return fmt.Errorf("%s advertised (priority %d) after coming back", d.name(m), e.Priority)
		}
	}
	cs := d.clientLines(tl, t0)
	d.arpLines(tl, t0, t0, master)
	tl.print(d.out)
	fmt.Fprintf(d.out, "  %s keeps the VIP: an equal-priority Master is not preempted (no flapping back, as\n"+
		"  with k0s's keepalived); %s has not sent a single advertisement.\n", d.name(master), d.name(m))
	if cs.failed > 0 {
		fmt.Fprintf(d.out, "  The client saw %d of %d requests fail meanwhile (%s).\n", cs.failed, cs.total, cs.topReason())
	} else {
		fmt.Fprintf(d.out, "  The client saw no failed request meanwhile (%d requests).\n", cs.total)
	}
	act := fmt.Sprintf("%s back", d.name(m))
	if !boot {
		act = fmt.Sprintf("API server back (%s)", d.name(m))
	}
	d.rows = append(d.rows, summaryRow{act: act, vip: fmt.Sprintf("stays on %s", d.name(master)), client: cs})
	return nil
}

// settle waits until exactly one running node other than skip is Master
// and the others are Backup, twice 1.2 s apart, and returns the Master.
func (d *demo) settle(ctx context.Context, skip int) (int, error) {
	deadline := time.Now().Add(20 * time.Second)
	prev, lastErr := -1, error(nil)
	for time.Now().Before(deadline) {
		m, err := d.master(ctx, skip)
		switch {
		case err != nil:
			lastErr, prev = err, -1
		case m == prev:
			return m, nil
		default:
			prev = m
			if err := netlab.Sleep(ctx, 1200*time.Millisecond); err != nil {
				return 0, err
			}
			continue
		}
		if err := netlab.Sleep(ctx, 200*time.Millisecond); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("no single Master: %w", lastErr)
}

// master returns the one Master among the running nodes except skip.
func (d *demo) master(ctx context.Context, skip int) (int, error) {
	m := -1
	for i, n := range d.nodes {
		if i == skip || !n.running() {
			continue
		}
		st, err := n.status(ctx)
		if err != nil {
			return -1, err
		}
		switch st.state() {
		case "Master":
			if m >= 0 {
				return -1, fmt.Errorf("both %s and %s are Master", d.name(m), d.name(i))
			}
			m = i
		case "Backup":
		default:
			return -1, fmt.Errorf("%s is %q", d.name(i), st.state())
		}
	}
	if m < 0 {
		return -1, errors.New("no Master")
	}
	return m, nil
}

// waitARP waits for an ARP reply for the VIP from a host other than skip.
func (d *demo) waitARP(ctx context.Context, from, skip int, timeout time.Duration) (observe.Event, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ev, _, err := d.obs.WaitFor(wctx, from, func(e observe.Event) bool {
		return e.Kind == observe.ARPReply && (skip < 0 || e.MAC.String() != d.hosts[skip].MAC.String())
	})
	if err != nil {
		if ctx.Err() != nil {
			return ev, ctx.Err()
		}
		return ev, fmt.Errorf("no controller answered ARP for the VIP within %v: %w", timeout, err)
	}
	return ev, nil
}

// waitClient waits until both the fresh and the long-lived requests
// succeed again after t, then a second more for the record.
func (d *demo) waitClient(ctx context.Context, t time.Time, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var fresh, long bool
		for _, s := range d.cl.since(t) {
			if s.ok() {
				fresh = fresh || !s.long
				long = long || s.long
			}
		}
		if fresh && long {
			return netlab.Sleep(ctx, time.Second)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the client did not recover within %v of the VIP's move (fresh %v, long-lived %v)", timeout, fresh, long)
		}
		if err := netlab.Sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// adverts adds the first advertisement of every host other than skip
// after event mark to tl and returns the earliest one's time.
func (d *demo) adverts(tl *timeline, mark, skip int, what string) time.Time {
	seen := map[netip.Addr]bool{}
	var first time.Time
	for _, e := range d.obs.Events()[mark:] {
		i := d.index(e.Src.String())
		if e.Kind != observe.Advert || i == skip || i < 0 || seen[e.Src] || e.Priority == 0 {
			continue
		}
		seen[e.Src] = true
		if first.IsZero() {
			first = e.Time
		}
		tl.add(e.Time, fmt.Sprintf("%s %s (priority %d)", d.name(i), what, e.Priority))
	}
	return first
}

// wrongARP explains a client stuck on the MAC of a Backup after a move.
func (d *demo) wrongARP(wrong time.Duration, host, master int) {
	if wrong < 500*time.Millisecond {
		return
	}
	fmt.Fprintf(d.out, "  Note: for %s after the move the client's ARP entry pointed at %s, which gave the VIP\n"+
		"  back: both claimants sent gratuitous ARPs and %s's came last. The winner, %s, announces\n"+
		"  again only in its second burst, 5 s after becoming Master; keepalived's Master re-announces as\n"+
		"  soon as it hears the lower advertisement (vrrp_garp_lower_prio_repeat), nlb does not yet.\n",
		fmtSec(wrong), d.name(host), d.name(host), d.name(master))
}

// arps adds the first ARP reply for the VIP from every host other than
// skip after event mark to tl.
func (d *demo) arps(tl *timeline, mark, skip int) {
	seen := map[string]bool{}
	for _, e := range d.obs.Events()[mark:] {
		i := d.index(e.MAC.String())
		if e.Kind != observe.ARPReply || i == skip || seen[e.MAC.String()] {
			continue
		}
		seen[e.MAC.String()] = true
		tl.add(e.Time, fmt.Sprintf("the VIP answers ARP from %s (MAC %s)", d.name(i), e.MAC))
	}
}

// claimants counts the hosts other than skip that advertised after mark.
func (d *demo) claimants(mark, skip int) int {
	seen := map[netip.Addr]bool{}
	for _, e := range d.obs.Events()[mark:] {
		if e.Kind == observe.Advert && d.index(e.Src.String()) != skip && e.Priority > 0 {
			seen[e.Src] = true
		}
	}
	return len(seen)
}

// lastAdvert is the time of host i's last advertisement before mark.
func (d *demo) lastAdvert(mark, i int) time.Time {
	var last time.Time
	for _, e := range d.obs.Events()[:mark] {
		if e.Kind == observe.Advert && e.Src == d.hosts[i].Addr4 {
			last = e.Time
		}
	}
	return last
}

func (d *demo) index(key string) int {
	for i, h := range d.hosts {
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

func lastOr(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}
