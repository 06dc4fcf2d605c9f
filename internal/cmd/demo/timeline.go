package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// timeline is a list of events relative to t0, printed in time order.
type timeline struct {
	t0    time.Time
	lines []timelineLine
}

type timelineLine struct {
	t   time.Time
	msg string
}

func (tl *timeline) add(t time.Time, msg string) {
	if !t.IsZero() {
		tl.lines = append(tl.lines, timelineLine{t, msg})
	}
}

func (tl *timeline) print(w io.Writer) {
	slices.SortStableFunc(tl.lines, func(a, b timelineLine) int { return a.t.Compare(b.t) })
	for _, l := range tl.lines {
		fmt.Fprintf(w, "  %9s  %s\n", fmtOffset(l.t.Sub(tl.t0)), l.msg)
	}
}

// clientStats is what the client saw in a window.
type clientStats struct {
	total, failed int
	reasons       map[string]int
	firstFail     time.Time // start of the first failed request
	lastFail      time.Time // start of the last failed request
	recovered     time.Time // end of the first success after the last failure
	recoveredBy   int
	gapFrom       time.Time // the longest run of failures: start of its first request
	gapTo         time.Time // and end of the first success after it

	longBroke    time.Time // the long-lived connection's first failure
	longErr      string
	longConn     int // the connection that broke
	longConnWho  int
	longBack     time.Time // first success on a new connection after it broke
	longBackConn int
	longBackWho  int
}

// clientStats summarises the client's requests that ended at or after
// from and started before to.
func (d *demo) clientStats(from, to time.Time) clientStats {
	cs := clientStats{reasons: map[string]int{}, recoveredBy: -1, longConnWho: -1, longBackWho: -1}
	d.cl.mu.Lock()
	samples := slices.Clone(d.cl.samples)
	d.cl.mu.Unlock()
	slices.SortFunc(samples, func(a, b sample) int { return a.start.Compare(b.start) })
	lastLong := sample{who: -1}
	var runFrom time.Time // start of the current run of failures
	for _, s := range samples {
		if s.end.Before(from) {
			if s.long && s.ok() {
				lastLong = s
			}
			continue
		}
		if !s.start.Before(to) {
			break
		}
		if s.long {
			switch {
			case !s.ok() && cs.longBroke.IsZero():
				cs.longBroke, cs.longErr, cs.longConn, cs.longConnWho = s.end, s.err, lastLong.conn, lastLong.who
			case s.ok() && !cs.longBroke.IsZero() && cs.longBack.IsZero() && s.conn != cs.longConn:
				cs.longBack, cs.longBackConn, cs.longBackWho = s.end, s.conn, s.who
			case s.ok() && cs.longBroke.IsZero():
				lastLong = s
			}
			continue
		}
		cs.total++
		if !s.ok() && runFrom.IsZero() {
			runFrom = s.start
		}
		if s.ok() && !runFrom.IsZero() {
			if s.end.Sub(runFrom) > cs.gapTo.Sub(cs.gapFrom) {
				cs.gapFrom, cs.gapTo = runFrom, s.end
			}
			runFrom = time.Time{}
		}
		if !s.ok() {
			cs.failed++
			cs.reasons[s.err]++
			if cs.firstFail.IsZero() {
				cs.firstFail = s.start
			}
			cs.lastFail = s.start
			cs.recovered, cs.recoveredBy = time.Time{}, -1
			continue
		}
		if !cs.lastFail.IsZero() && cs.recovered.IsZero() {
			cs.recovered, cs.recoveredBy = s.end, s.who
		}
	}
	return cs
}

// clientLines adds what the client saw since t0 to tl.
func (d *demo) clientLines(tl *timeline, t0 time.Time) clientStats {
	cs := d.clientStats(t0, time.Now())
	if cs.failed > 0 {
		tl.add(cs.firstFail, "client: first failed request ("+cs.topReason()+")")
		if !cs.recovered.IsZero() {
			tl.add(cs.recovered, fmt.Sprintf("client: first successful request after the failures, answered by %s's API server", d.name(cs.recoveredBy)))
		}
	}
	if !cs.longBroke.IsZero() {
		tl.add(cs.longBroke, fmt.Sprintf("client: the long-lived connection #%d (to %s's API server) breaks: %s", cs.longConn, d.name(cs.longConnWho), cs.longErr))
		if !cs.longBack.IsZero() {
			tl.add(cs.longBack, fmt.Sprintf("client: long-lived connection #%d answers, from %s's API server", cs.longBackConn, d.name(cs.longBackWho)))
		}
	}
	return cs
}

// arpLines adds the changes of the client's ARP entry for the VIP since
// t0 to tl, and returns how long after the VIP's move (at moved) the entry
// pointed at a live host other than master, and which.
func (d *demo) arpLines(tl *timeline, t0, moved time.Time, master int) (time.Duration, int) {
	entries := d.cl.arpSince(t0)
	var wrong time.Duration
	wrongHost := -1
	for k, e := range entries {
		if e.t.Before(t0) {
			continue
		}
		i := d.index(e.mac)
		switch {
		case e.mac == "":
			tl.add(e.t, "client's ARP entry for the VIP: none (resolving)")
		default:
			tl.add(e.t, fmt.Sprintf("client's ARP entry for the VIP -> %s", d.name(i)))
		}
		if i >= 0 && i != master && !e.t.Before(moved) {
			end := time.Now()
			if k+1 < len(entries) {
				end = entries[k+1].t
			}
			wrong += end.Sub(e.t)
			wrongHost = i
		}
	}
	return wrong, wrongHost
}

// topReason lists the failure reasons, most frequent first.
func (cs clientStats) topReason() string {
	type rc struct {
		r string
		n int
	}
	var rs []rc
	for r, n := range cs.reasons {
		rs = append(rs, rc{r, n})
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].n > rs[j].n || rs[i].n == rs[j].n && rs[i].r < rs[j].r })
	var parts []string
	for _, x := range rs {
		parts = append(parts, fmt.Sprintf("%s x%d", x.r, x.n))
	}
	return strings.Join(parts, ", ")
}

// outage is the longest run of failed requests: from the start of its
// first request to the end of the success that ended it.
func (cs clientStats) outage() time.Duration {
	if cs.gapTo.IsZero() {
		return 0
	}
	return cs.gapTo.Sub(cs.gapFrom)
}

// print writes the client's part of an act's conclusion.
func (cs clientStats) print(w io.Writer, t0 time.Time) {
	if cs.failed == 0 {
		fmt.Fprintf(w, "     the client: no request on a new connection failed (%d requests);\n", cs.total)
	} else {
		fmt.Fprintf(w, "     the client: %d of %d requests on new connections failed (%s),\n"+
			"     started between %s and %s; the longest outage %s (%s to %s);\n",
			cs.failed, cs.total, cs.topReason(), fmtOffset(cs.firstFail.Sub(t0)), fmtOffset(cs.lastFail.Sub(t0)),
			fmtSec(cs.outage()), fmtOffset(cs.gapFrom.Sub(t0)), fmtOffset(cs.gapTo.Sub(t0)))
	}
	if cs.longBroke.IsZero() {
		fmt.Fprintf(w, "     the long-lived connection survived;\n")
	} else if !cs.longBack.IsZero() {
		fmt.Fprintf(w, "     the long-lived connection broke at %s and a new one answered at %s;\n",
			fmtOffset(cs.longBroke.Sub(t0)), fmtOffset(cs.longBack.Sub(t0)))
	}
}

// summaryRow is one line of the closing table.
type summaryRow struct {
	act    string
	vip    string
	client clientStats
	arp    time.Duration // the client's ARP entry pointed at a losing claimant this long
}

func (d *demo) summary() {
	fmt.Fprintln(d.out, "\n-- Summary")
	tw := tabwriter.NewWriter(d.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ACT\tVIP\tFAILED REQUESTS\tLONGEST OUTAGE\tLONG-LIVED CONNECTION")
	var notes []string
	for _, r := range d.rows {
		failed := fmt.Sprintf("%d of %d", r.client.failed, r.client.total)
		outage, long := "-", "kept"
		if r.client.failed > 0 {
			outage = fmtShort(r.client.outage())
			if r.arp >= 500*time.Millisecond {
				outage += " *"
				notes = append(notes, fmt.Sprintf("  * %s: the client's ARP entry pointed at the losing claimant for %s (see the note above).",
					r.act, fmtShort(r.arp)))
			}
		}
		if !r.client.longBroke.IsZero() {
			long = "broke, new one in " + fmtShort(r.client.longBack.Sub(r.client.longBroke))
			if r.client.longBack.IsZero() {
				long = "broke"
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", r.act, r.vip, failed, outage, long)
	}
	tw.Flush()
	for _, n := range notes {
		fmt.Fprintln(d.out, n)
	}
	fmt.Fprintf(d.out, "\n  Requests on new connections every %v, %v timeout each. A connection terminated on\n"+
		"  the old VIP holder cannot survive the move of the VIP; the client dials again.\n", freshEvery, clientTimout)
}

func fmtSec(d time.Duration) string {
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// fmtShort is milliseconds below a second, else seconds.
func fmtShort(d time.Duration) string {
	if d < time.Second {
		return fmtMs(d)
	}
	return fmtSec(d)
}

func fmtMs(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000)
}

func fmtOffset(d time.Duration) string {
	if d = d.Round(time.Millisecond); d < 0 {
		return "-" + fmtMs(-d)
	}
	return "+" + fmtMs(d)
}
