package chaoslab

import (
	"encoding/json"
	"net/netip"
	"slices"
	"testing"
	"time"
)

var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }

// probes makes one probe every 20 ms from 0 ms; pattern says which fail
// ('x') and which succeed (anything else).
func probes(pattern string) []Probe {
	var ps []Probe
	for i, c := range pattern {
		ps = append(ps, Probe{Start: at(20 * i), End: at(20*i + 5), OK: c != 'x'})
	}
	// Completion order is not start order.
	for i := 0; i+1 < len(ps); i += 2 {
		ps[i], ps[i+1] = ps[i+1], ps[i]
	}
	return ps
}

func TestBursts(t *testing.T) {
	quiet := 100 * time.Millisecond // 5 probes
	for _, tc := range []struct {
		name    string
		pattern string
		from    int // ms
		to      int // ms; 0 means the end of the pattern
		want    []Burst
	}{
		{name: "none", pattern: "..........", want: nil},
		{
			// A single success inside the failures does not end the burst.
			name: "one burst", pattern: "...xxx.xx.........",
			want: []Burst{{Start: at(60), End: at(180), Failed: 5, Recovered: true}},
		},
		{
			name: "two bursts", pattern: "..x.......xx........",
			want: []Burst{
				{Start: at(40), End: at(60), Failed: 1, Recovered: true},
				{Start: at(200), End: at(240), Failed: 2, Recovered: true},
			},
		},
		{
			name: "still failing", pattern: "...xxxxx",
			want: []Burst{{Start: at(60), End: at(160), Failed: 5}},
		},
		{
			// Recovery too close to the window's end to count.
			name: "recovery too late", pattern: "...xxx..",
			want: []Burst{{Start: at(60), End: at(160), Failed: 3}},
		},
		{
			name: "before the window", pattern: "xx..........x.......", from: 60,
			want: []Burst{{Start: at(240), End: at(260), Failed: 1, Recovered: true}},
		},
		{
			name: "after the window", pattern: "..........x.", to: 200,
			want: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := tc.to
			if to == 0 {
				to = 20 * len(tc.pattern)
			}
			got := Bursts(probes(tc.pattern), at(tc.from), at(to), quiet)
			if len(got) != len(tc.want) {
				t.Fatalf("Bursts = %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("burst %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
	bs := Bursts(probes("..x.......xx........"), at(0), at(400), quiet)
	if got := Outage(bs); got != 60*time.Millisecond {
		t.Errorf("Outage = %v, want 60ms", got)
	}
	total, failed := CountProbes(probes("..x.......xx........"), at(40), at(220))
	if total != 9 || failed != 2 {
		t.Errorf("CountProbes = %d, %d; want 9, 2", total, failed)
	}
}

func TestOverlap(t *testing.T) {
	iv := func(a, b int) Interval {
		if b < 0 {
			return Interval{From: at(a)}
		}
		return Interval{From: at(a), To: at(b)}
	}
	for _, tc := range []struct {
		name     string
		held     [][]Interval
		from, to int
		want     time.Duration
	}{
		{"alone", [][]Interval{{iv(0, 100)}, {iv(100, 200)}, nil}, 0, 300, 0},
		{"two", [][]Interval{{iv(0, 100)}, {iv(50, 200)}}, 0, 300, 50 * time.Millisecond},
		{"open", [][]Interval{{iv(0, 100)}, {iv(50, 200)}, {iv(80, -1)}}, 0, 300, 150 * time.Millisecond},
		{"clipped", [][]Interval{{iv(0, -1)}, {iv(0, -1)}}, 100, 150, 50 * time.Millisecond},
		{"three count once", [][]Interval{{iv(0, 100)}, {iv(0, 100)}, {iv(0, 100)}}, 0, 100, 100 * time.Millisecond},
		{"several per host", [][]Interval{{iv(0, 10), iv(20, 30)}, {iv(5, 25)}}, 0, 100, 10 * time.Millisecond},
	} {
		if got := Overlap(tc.held, at(tc.from), at(tc.to)); got != tc.want {
			t.Errorf("%s: Overlap = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestWatchBroken(t *testing.T) {
	tick := 200 * time.Millisecond
	var evs []time.Time
	for ms := 0; ms <= 1000; ms += 200 {
		evs = append(evs, at(ms))
	}
	// A 1.5 s break, then events again.
	for ms := 2500; ms <= 4000; ms += 200 {
		evs = append(evs, at(ms))
	}
	if got, want := WatchBroken(evs, at(0), at(4100), tick), 1300*time.Millisecond; got != want {
		t.Errorf("WatchBroken = %v, want %v", got, want)
	}
	// A gap of two ticks is no break.
	if got := WatchBroken([]time.Time{at(0), at(400), at(800)}, at(0), at(900), tick); got != 0 {
		t.Errorf("WatchBroken with short gaps = %v, want 0", got)
	}
	// Counted from the last event before the window, up to its end.
	if got, want := WatchBroken([]time.Time{at(0)}, at(500), at(1000), tick), 800*time.Millisecond; got != want {
		t.Errorf("WatchBroken of a dead watch = %v, want %v", got, want)
	}
}

func TestAdvertisers(t *testing.T) {
	a1, a2 := netip.MustParseAddr("192.0.2.11"), netip.MustParseAddr("192.0.2.12")
	ads := []Advert{
		{Time: at(0), Src: a1, VRID: 51, Priority: 101},
		{Time: at(1000), Src: a1, VRID: 51, Priority: 99},
		{Time: at(1500), Src: a2, VRID: 52, Priority: 100}, // other router
		{Time: at(2000), Src: a1, VRID: 51, Priority: 0},   // release
		{Time: at(2500), Src: a2, VRID: 51, Priority: 100},
	}
	srcs, prio, n := Advertisers(ads, 51, at(1000), 1500*time.Millisecond)
	if len(srcs) != 1 || srcs[0] != a1 || prio[a1] != 99 || n != 2 {
		t.Errorf("Advertisers = %v %v %d; want [a1] 99 2", srcs, prio, n)
	}
	srcs, _, n = Advertisers(ads, 51, at(2600), 2*time.Second)
	if len(srcs) != 2 || n != 2 {
		t.Errorf("Advertisers = %v %d; want both, 2", srcs, n)
	}
	if a, ok := FirstAdvertOther(ads, 51, at(500), a1); !ok || a.Time != at(2500) {
		t.Errorf("FirstAdvertOther = %+v %v; want a2's at 2500 ms", a, ok)
	}
	if _, ok := FirstAdvertOther(ads, 51, at(2500), a1); ok {
		t.Errorf("FirstAdvertOther found an advertisement after the last one")
	}
}

func TestStatusFacts(t *testing.T) {
	doc := `{
	  "instances": [{"name": "k0s-vip-0", "state": "Master", "priority": 200}, {"name": "other", "state": "Backup"}],
	  "health": {"healthy": true},
	  "proxy": {"listeners": [":6444"], "backends": [
	    {"address": "192.0.2.11:6443", "healthy": true},
	    {"address": "192.0.2.12:6443", "healthy": false},
	    {"address": "192.0.2.99:6443", "healthy": false, "removed": true},
	    {"address": "192.0.2.13:6443", "healthy": true}
	  ]},
	  "fast_path": {"interfaces": [{"services": [{"backends": [
	    {"address": "192.0.2.11:6443", "healthy": true, "slots": 8191},
	    {"address": "192.0.2.13:6443", "healthy": true, "problem": "dsr: no ARP/NDP answer"}
	  ]}]}]}
	}`
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatal(err)
	}
	insts, backends := statusFacts(v)
	if want := []statusInstance{{"Master", 200}, {"Backup", -1}}; !slices.Equal(insts, want) {
		t.Errorf("instances = %+v, want %+v", insts, want)
	}
	if len(backends) != 3 || !backends["192.0.2.11:6443"] || backends["192.0.2.12:6443"] || backends["192.0.2.13:6443"] {
		t.Errorf("backends = %v, want .11 healthy, .12 not, .13 not (the fast path left it out), the removed one left out", backends)
	}
}

func TestMasterDown(t *testing.T) {
	p := DefaultParams()
	// RFC 3768 §6.1: 3 × 1 s + (256 - 100) / 256 s.
	if got, want := p.MasterDown(100), 3609375*time.Microsecond; got != want {
		t.Errorf("MasterDown(100) = %v, want %v", got, want)
	}
	if got, want := p.MasterDown(200), 3218750*time.Microsecond; got != want {
		t.Errorf("MasterDown(200) = %v, want %v", got, want)
	}
}

func TestErrorSummary(t *testing.T) {
	ps := []Probe{
		{Start: at(0), Err: "connect: read tcp 192.0.2.14:5000->192.0.2.100:6443: read: connection reset by peer"},
		{Start: at(20), OK: true},
		{Start: at(40), Err: "connect: dial tcp 192.0.2.100:6443: connect: connection refused"},
		{Start: at(60), Err: "connect: read tcp 192.0.2.14:5001->192.0.2.100:6443: read: connection reset by peer"},
	}
	got := ErrorSummary(ps)
	want := []string{
		"2× 00:00:00.000-00:00:00.060 connect: read tcp 192.0.2.100:6443: read: connection reset by peer",
		"1× 00:00:00.040-00:00:00.040 connect: dial tcp 192.0.2.100:6443: connect: connection refused",
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("ErrorSummary =\n%q\nwant\n%q", got, want)
	}
}
