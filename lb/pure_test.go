package lb

import (
	"strings"
	"testing"
)

func TestRoundRobin(t *testing.T) {
	b, err := newBalancer(RoundRobin, nil)
	if err != nil {
		t.Fatal(err)
	}
	none := func(int) bool { return false }
	load := func(int) int64 { return 0 }
	var got []int
	for range 7 {
		got = append(got, b.first(3, none, load))
	}
	if want := []int{0, 1, 2, 0, 1, 2, 0}; !equal(got, want) {
		t.Errorf("rotation = %v, want %v", got, want)
	}
	skip1 := func(i int) bool { return i == 1 }
	got = got[:0]
	for range 4 {
		got = append(got, b.first(3, skip1, load))
	}
	// counter at 7: 7%3=1 is skipped → 2; 8%3=2; 9%3=0; 10%3=1 → 2.
	if want := []int{2, 2, 0, 2}; !equal(got, want) {
		t.Errorf("with 1 skipped = %v, want %v", got, want)
	}
	if i := b.retry(2, 3, skip1, load); i != 0 {
		t.Errorf("retry after 2 = %d, want 0", i)
	}
	if i := b.first(3, func(int) bool { return true }, load); i != -1 {
		t.Errorf("all skipped = %d, want -1", i)
	}
	if i := b.first(0, none, load); i != -1 {
		t.Errorf("empty = %d, want -1", i)
	}
}

func TestLeastConnections(t *testing.T) {
	tests := []struct {
		name  string
		loads []int64
		skip  []bool
		rand  []int // successive results of rand
		want  int
	}{
		{"two picks, second less loaded", []int64{5, 1, 3}, nil, []int{0, 0}, 1}, // x=0, y=0→1
		{"two picks, first less loaded", []int64{0, 4, 3}, nil, []int{0, 1}, 0},  // x=0, y=1→2
		{"tie keeps first", []int64{2, 2, 2}, nil, []int{2, 0}, 2},               // x=2, y=0
		{"skipped not sampled", []int64{0, 9, 5}, []bool{true, false, false}, []int{0, 0}, 2},
		{"single usable", []int64{0, 9, 5}, []bool{true, false, true}, nil, 1},
		{"none usable", []int64{1}, []bool{true}, nil, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.rand
			b, _ := newBalancer(LeastConnections, func(n int) int {
				v := r[0]
				r = r[1:]
				if v >= n {
					t.Fatalf("rand(%d) scripted %d", n, v)
				}
				return v
			})
			skip := func(i int) bool { return tt.skip != nil && tt.skip[i] }
			if got := b.first(len(tt.loads), skip, func(i int) int64 { return tt.loads[i] }); got != tt.want {
				t.Errorf("first = %d, want %d", got, tt.want)
			}
		})
	}
	b, _ := newBalancer(LeastConnections, nil)
	loads := []int64{3, 1, 2}
	tried := []bool{false, true, false}
	if got := b.retry(1, 3, func(i int) bool { return tried[i] }, func(i int) int64 { return loads[i] }); got != 2 {
		t.Errorf("retry = %d, want 2 (least loaded untried)", got)
	}
	if _, err := newBalancer("random", nil); err == nil {
		t.Error("unknown policy accepted")
	}
}

func TestThreshold(t *testing.T) {
	tests := []struct {
		name    string
		start   bool
		results string // o = ok, x = failed
		changes string // c where observe reports a change
		end     bool
	}{
		{"healthy stays on success", true, "ooo", "...", true},
		{"fall after 3 failures", true, "xxx", "..c", false},
		{"interrupted failures reset", true, "xxoxx", ".....", true},
		{"rise after 2 successes", false, "oo", ".c", true},
		{"flap", true, "xxxoox", "..c.c.", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := threshold{rise: 2, fall: 3, healthy: tt.start}
			var got strings.Builder
			for _, r := range tt.results {
				if th.observe(r == 'o') {
					got.WriteByte('c')
				} else {
					got.WriteByte('.')
				}
			}
			if got.String() != tt.changes || th.healthy != tt.end {
				t.Errorf("changes %q healthy %v, want %q %v", got.String(), th.healthy, tt.changes, tt.end)
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	good := `
listen: [":6444", "[::1]:6445"]
backends: ["10.0.0.1:6443", "10.0.0.2:6443"]
balance: leastConnections
connectTimeout: 100ms
healthCheck: {type: https, path: /livez, rise: 1, fall: 2, caFile: /etc/ca.crt}
`
	c, err := Load(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Balance != LeastConnections || c.HealthCheck.Path != "/livez" || c.HealthCheck.Interval != Duration(DefaultCheckInterval) ||
		c.ConnectTimeout.String() != "100ms" {
		t.Errorf("decoded %+v", c)
	}

	_, err = Load(strings.NewReader("listen: [\":1\"]\nbakends: []\nhealthCheck: {tipe: tcp, ryse: 1}\n"))
	if err == nil {
		t.Fatal("unknown fields accepted")
	}
	for _, f := range []string{"bakends", "healthCheck.tipe", "healthCheck.ryse"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not name %s", err, f)
		}
	}
	if _, err := Load(strings.NewReader("connectTimeout: 5\n")); err == nil || !strings.Contains(err.Error(), "duration") {
		t.Errorf("numeric duration: %v", err)
	}
	if c, err := Load(strings.NewReader("")); err != nil || len(c.Backends) != 0 {
		t.Errorf("empty file: %v %+v", err, c)
	}

	bad := Config{
		Listen:      []string{"nope"},
		Backends:    []string{"a:1", "a:1", ":80"},
		Balance:     "random",
		HealthCheck: HealthCheck{Type: "icmp", Path: "readyz", CertFile: "x"},

		LoopbackCongestionControl: "BBR; rm",
	}
	bad.SetDefaults()
	err = bad.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, f := range []string{"listen[0]", "backends[1]: duplicate", "backends[2]", "balance", "healthCheck.type", "healthCheck.path", "healthCheck.certFile", "loopbackCongestionControl"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error does not mention %q:\n%v", f, err)
		}
	}
	var empty Config
	empty.SetDefaults()
	if empty.LoopbackCongestionControl != DefaultLoopbackCongestionControl {
		t.Errorf("loopbackCongestionControl defaults to %q", empty.LoopbackCongestionControl)
	}
	if err := empty.Validate(); err == nil || !strings.Contains(err.Error(), "backends") {
		t.Errorf("no backends: %v", err)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestBalanceSpelling: balance takes k0s's lowerCamelCase names and only
// them; anything else is an error that names the field and lists the
// valid values.
func TestBalanceSpelling(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want Policy // "" when invalid
	}{
		{"roundRobin", RoundRobin},
		{"leastConnections", LeastConnections},
		{`""`, RoundRobin}, // the default
		{"round-robin", ""},
		{"least-connections", ""},
		{"RoundRobin", ""},
		{"leastconnections", ""},
		{"random", ""},
	} {
		c, err := Load(strings.NewReader("backends: [\"192.0.2.1:6443\"]\nbalance: " + tc.yaml + "\n"))
		if err != nil {
			t.Fatalf("balance: %s: %v", tc.yaml, err)
		}
		c.SetDefaults()
		err = c.Validate()
		if tc.want != "" {
			if err != nil || c.Balance != tc.want {
				t.Errorf("balance: %s: %q, %v; want %q", tc.yaml, c.Balance, err, tc.want)
			}
			if _, err := newBalancer(c.Balance, nil); err != nil {
				t.Errorf("balance: %s: %v", tc.yaml, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("balance: %s accepted", tc.yaml)
			continue
		}
		for _, s := range []string{"balance:", "roundRobin", "leastConnections", tc.yaml} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("balance: %s: error %q does not mention %s", tc.yaml, err, s)
			}
		}
	}
	if RoundRobin != "roundRobin" || LeastConnections != "leastConnections" {
		t.Errorf("policy names %q, %q", RoundRobin, LeastConnections)
	}
}
