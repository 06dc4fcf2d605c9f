package chaoslab

import (
	"net/netip"
	"slices"
	"time"
)

// Probe is one new-connection request of the traffic generator.
type Probe struct {
	// Start and End are when the probe began dialling and when it
	// finished (success, error or timeout).
	Start, End time.Time
	// OK is true when the API server answered 200 in time.
	OK bool
	// Err says why a probe failed ("dial: ...", "status 500", ...).
	Err string
}

// Burst is a span of failed probes (see the package documentation).
type Burst struct {
	// Start is the start of the first failed probe; End the start of the
	// first successful probe after the last failure, or the end of the
	// window when none came.
	Start, End time.Time
	// Failed is the number of failed probes in the burst.
	Failed int
	// Recovered is false when the window ended inside the burst.
	Recovered bool
}

// Duration is End - Start.
func (b Burst) Duration() time.Duration { return b.End.Sub(b.Start) }

// Bursts returns the failure bursts of probes started in [from, to).
// Successes separate two bursts only when quiet passes from the first of
// them to the next failure's start (or to the window's end); probes need
// not be sorted.
func Bursts(probes []Probe, from, to time.Time, quiet time.Duration) []Burst {
	ps := window(probes, from, to)
	var (
		out   []Burst
		cur   *Burst
		okRun time.Time // start of the success run inside cur, if any
	)
	for _, p := range ps {
		if p.OK {
			if cur != nil && okRun.IsZero() {
				okRun = p.Start
			}
			continue
		}
		if cur != nil && !okRun.IsZero() && p.Start.Sub(okRun) >= quiet {
			cur.End, cur.Recovered = okRun, true
			out = append(out, *cur)
			cur = nil
		}
		if cur == nil {
			cur = &Burst{Start: p.Start}
		}
		cur.Failed++
		okRun = time.Time{}
	}
	if cur != nil {
		if !okRun.IsZero() && to.Sub(okRun) >= quiet {
			cur.End, cur.Recovered = okRun, true
		} else {
			cur.End = to
		}
		out = append(out, *cur)
	}
	return out
}

// window returns the probes started in [from, to), sorted by start.
func window(probes []Probe, from, to time.Time) []Probe {
	var ps []Probe
	for _, p := range probes {
		if !p.Start.Before(from) && p.Start.Before(to) {
			ps = append(ps, p)
		}
	}
	slices.SortFunc(ps, func(a, b Probe) int { return a.Start.Compare(b.Start) })
	return ps
}

// Outage sums the bursts' durations.
func Outage(bs []Burst) time.Duration {
	var d time.Duration
	for _, b := range bs {
		d += b.Duration()
	}
	return d
}

// CountProbes returns how many probes started in [from, to) and how many
// of them failed.
func CountProbes(probes []Probe, from, to time.Time) (total, failed int) {
	for _, p := range probes {
		if !p.Start.Before(from) && p.Start.Before(to) {
			total++
			if !p.OK {
				failed++
			}
		}
	}
	return total, failed
}

// Interval is a span during which a host held the VIP. An open interval
// (still held) has a zero To.
type Interval struct {
	From, To time.Time
}

// Overlap returns how long, within [from, to], two or more hosts held the
// VIP at once; held[i] are host i's intervals. Open intervals last until
// to.
func Overlap(held [][]Interval, from, to time.Time) time.Duration {
	type edge struct {
		t     time.Time
		delta int
	}
	var edges []edge
	for _, ivs := range held {
		for _, iv := range ivs {
			a, b := iv.From, iv.To
			if b.IsZero() || b.After(to) {
				b = to
			}
			if a.Before(from) {
				a = from
			}
			if !a.Before(b) {
				continue
			}
			edges = append(edges, edge{a, +1}, edge{b, -1})
		}
	}
	// Ends before starts at the same instant: touching intervals do not
	// overlap.
	slices.SortFunc(edges, func(x, y edge) int {
		if c := x.t.Compare(y.t); c != 0 {
			return c
		}
		return x.delta - y.delta
	})
	var (
		d     time.Duration
		n     int
		since time.Time
	)
	for _, e := range edges {
		if n >= 2 {
			d += e.t.Sub(since)
		}
		n += e.delta
		since = e.t
	}
	return d
}

// WatchBroken returns how long a watch with event arrival times events
// (sorted) was broken within [from, to]: every gap longer than three
// ticks between consecutive events, counting from the last event before
// from (or from) and up to to, minus one tick.
func WatchBroken(events []time.Time, from, to time.Time, tick time.Duration) time.Duration {
	prev := from
	for _, e := range events {
		if e.After(from) {
			break
		}
		prev = e
	}
	var d time.Duration
	gap := func(a, b time.Time) {
		if g := b.Sub(a); g > 3*tick {
			d += g - tick
		}
	}
	for _, e := range events {
		if !e.After(from) {
			continue
		}
		if e.After(to) {
			break
		}
		gap(prev, e)
		prev = e
	}
	gap(prev, to)
	return d
}

// Advert is a VRRP advertisement the bystander heard.
type Advert struct {
	Time     time.Time
	Src      netip.Addr
	VRID     uint8
	Priority uint8
}

// Advertisers returns the sources, sorted, of the advertisements with a
// non-zero priority for vrid heard in (at-d, at], and the priority each
// advertised last.
func Advertisers(ads []Advert, vrid uint8, at time.Time, d time.Duration) (srcs []netip.Addr, prio map[netip.Addr]uint8, count int) {
	prio = map[netip.Addr]uint8{}
	for _, a := range ads {
		if a.VRID != vrid || a.Priority == 0 || !a.Time.After(at.Add(-d)) || a.Time.After(at) {
			continue
		}
		count++
		if _, ok := prio[a.Src]; !ok {
			srcs = append(srcs, a.Src)
		}
		prio[a.Src] = a.Priority
	}
	slices.SortFunc(srcs, netip.Addr.Compare)
	return srcs, prio, count
}

// FirstAdvertOther returns the first advertisement with a non-zero
// priority for vrid after t from a source other than not.
func FirstAdvertOther(ads []Advert, vrid uint8, t time.Time, not netip.Addr) (Advert, bool) {
	for _, a := range ads {
		if a.VRID == vrid && a.Priority != 0 && a.Time.After(t) && a.Src != not {
			return a, true
		}
	}
	return Advert{}, false
}
