package benchtool

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The testdata are real outputs of Debian's wrk 4.1, iperf3 3.12, strace
// 6.1, vegeta 12.13 and Linux 6.18's /proc, captured on the bench machine.

func TestParseWrk(t *testing.T) {
	for _, tc := range []struct {
		file                     string
		requests, rate, p50, p99 float64
	}{
		{"wrk_keepalive.txt", 227864, 207164.35, 31, 83},
		{"wrk_close.txt", 42003, 38184.27, 91, 464},
	} {
		r, err := ParseWrk(string(read(t, tc.file)))
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		want := WrkResult{Requests: tc.requests, Rate: tc.rate, P50: tc.p50, P99: tc.p99}
		if r != want {
			t.Errorf("%s: %+v, want %+v", tc.file, r, want)
		}
	}
	// Units, and the error lines wrk prints only when there are errors.
	out := strings.NewReplacer("83.00us", "1.50ms", "31.00us", "2.00s").Replace(string(read(t, "wrk_keepalive.txt")))
	out = strings.Replace(out, "  227864 requests", "  Socket errors: connect 1, read 2, write 3, timeout 4\n  Non-2xx or 3xx responses: 5\n  227864 requests", 1)
	r, err := ParseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.P99 != 1500 || r.P50 != 2e6 || r.Errors != 15 {
		t.Errorf("units and errors: %+v", r)
	}
	for _, bad := range []string{"", "Requests/sec: 5\n", strings.ReplaceAll(string(read(t, "wrk_close.txt")), "99%", "98%")} {
		if _, err := ParseWrk(bad); err == nil {
			t.Errorf("ParseWrk(%q) accepted", bad)
		}
	}
}

func TestParseIperf3(t *testing.T) {
	r, err := ParseIperf3(read(t, "iperf3_reverse.json"))
	if err != nil {
		t.Fatal(err)
	}
	// -R: the receiver's sum (2819751830 bytes), not the sender's
	// (2820669440, still in flight when the sender stopped).
	if r.Bytes != 2819751830 || math.Abs(r.BitsPerSecond-22557563488.73023) > 1 || r.Seconds != 1.00002 {
		t.Errorf("reverse: %+v", r)
	}
	if r, err := ParseIperf3(read(t, "iperf3_forward.json")); err != nil || r.Bytes != 2833776640 {
		t.Errorf("forward: %+v, %v", r, err)
	}
	if _, err := ParseIperf3(read(t, "iperf3_refused.json")); err == nil || !strings.Contains(err.Error(), "Connection refused") {
		t.Errorf("refused: %v", err)
	}
	if _, err := ParseIperf3([]byte("{")); err == nil {
		t.Error("truncated JSON accepted")
	}
}

func TestOverlapRate(t *testing.T) {
	r, err := ParseIperf3(read(t, "iperf3_reverse_intervals.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, iv := range r.Intervals {
		sum += iv.Bytes
	}
	if len(r.Intervals) != 9 || r.Intervals[0].Bytes != 278659072 || r.Intervals[1].Start != 0.100014 || sum != r.Bytes {
		t.Fatalf("intervals %+v (sum %v, total %v)", r.Intervals, sum, r.Bytes)
	}
	// One run alone: its own rate over its whole length.
	g, w, err := OverlapRate([]time.Duration{0}, []Iperf3Result{r})
	if err != nil || math.Abs(g-r.Bytes*8/1.000087) > 1 || w != secs(1.000087) {
		t.Errorf("alone: %v over %v, %v", g, w, err)
	}
	// Two synthetic runs of 1 s in 0.5 s intervals, the second started
	// 0.25 s later. A: [0,0.5] 100 B, [0.5,1] 200 B; B: [0.25,0.75]
	// 300 B, [0.75,1.25] 400 B. In the window [0.25,1]: A 50+200, B
	// 300+200, 750 B over 0.75 s.
	a := Iperf3Result{Intervals: []Iperf3Interval{{0, 0.5, 100}, {0.5, 1, 200}}}
	b := Iperf3Result{Intervals: []Iperf3Interval{{0, 0.5, 300}, {0.5, 1, 400}}}
	g, w, err = OverlapRate([]time.Duration{0, 250 * time.Millisecond}, []Iperf3Result{a, b})
	if err != nil || math.Abs(g-750*8/0.75) > 1e-6 || w != 750*time.Millisecond {
		t.Errorf("two: %v over %v, %v", g, w, err)
	}
	if _, _, err := OverlapRate([]time.Duration{0, 2 * time.Second}, []Iperf3Result{a, b}); err == nil {
		t.Error("runs that never overlapped accepted")
	}
	if _, _, err := OverlapRate([]time.Duration{0}, []Iperf3Result{{}}); err == nil {
		t.Error("a run without intervals accepted")
	}
}

func TestIperf3Args(t *testing.T) {
	got := strings.Join(Iperf3Args("192.0.2.1", 5201, 2400e6, true, 1), " ")
	if got != "iperf3 -c 192.0.2.1 -p 5201 -J -t 2 -R" {
		t.Errorf("got %q", got)
	}
	if got := strings.Join(Iperf3Args("h", 1, 0, false, 8), " "); got != "iperf3 -c h -p 1 -J -t 1 -P 8" {
		t.Errorf("got %q", got)
	}
}

func TestParseVegeta(t *testing.T) {
	r, err := ParseVegetaReport(read(t, "vegeta_report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 1000 || math.Abs(r.Rate-1000.979) > 0.01 || r.Success != 1 || r.StatusCodes["200"] != 1000 || len(r.Errors) != 0 {
		t.Errorf("report: %+v", r)
	}
	r, err = ParseVegetaReport(read(t, "vegeta_refused_report.json"))
	if err != nil || r.Success != 0 || r.StatusCodes["0"] != 4 || len(r.Errors) != 1 {
		t.Errorf("refused report: %+v, %v", r, err)
	}
	for _, bad := range []string{`{"requests":0,"success":1}`, `{"requests":5}`, `[`} {
		if _, err := ParseVegetaReport([]byte(bad)); err == nil {
			t.Errorf("ParseVegetaReport(%q) accepted", bad)
		}
	}

	f, err := os.Open(filepath.Join("testdata", "vegeta_results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := ParseVegetaCSV(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The first 100 requests of the attack: latencies in ns, sorted.
	if len(l.Sorted) != 100 || l.Failed != 0 || !slices.IsSorted(l.Sorted) {
		t.Fatalf("results: %d, %d failed", len(l.Sorted), l.Failed)
	}
	if p50, p99, pmax := Percentile(l.Sorted, 0.5), Percentile(l.Sorted, 0.99), Percentile(l.Sorted, 0.999); p50 != 138.709 || p99 != 377.911 || pmax != 794.59 {
		t.Errorf("p50 %v p99 %v p99.9 %v µs", p50, p99, pmax)
	}
	// At 1000 requests/s the first 10 ms hold the first 10 requests,
	// among them the slowest (794.59 µs, the first, which opened its
	// connection).
	l, err = ParseVegetaCSV(strings.NewReader(string(read(t, "vegeta_results.csv"))), 10*time.Millisecond)
	if err != nil || l.Skipped != 10 || len(l.Sorted) != 90 || Percentile(l.Sorted, 1) == 794.59 {
		t.Errorf("warm-up skipped: %d skipped, %d kept, max %v, %v", l.Skipped, len(l.Sorted), Percentile(l.Sorted, 1), err)
	}
	l, err = ParseVegetaCSV(strings.NewReader(string(read(t, "vegeta_refused.csv"))), 0)
	if err != nil || l.Failed != 4 || len(l.Sorted) != 4 {
		t.Errorf("refused: %+v, %v", l, err)
	}
	// A response whose body failed after a 200 status line counts as
	// failed: its error field is set.
	line, _, _ := strings.Cut(string(read(t, "vegeta_results.csv")), "\n")
	f5 := strings.SplitN(line, ",", 7)
	f5[5] = "unexpected EOF"
	if l, err := ParseVegetaCSV(strings.NewReader(strings.Join(f5, ",")+"\n"), 0); err != nil || l.Failed != 1 {
		t.Errorf("200 with an error: %+v, %v", l, err)
	}
	for _, bad := range []string{"", "1,200\n", "1,abc,3,0,0,,\n"} {
		if _, err := ParseVegetaCSV(strings.NewReader(bad), 0); err == nil {
			t.Errorf("ParseVegetaCSV(%q) accepted", bad)
		}
	}
}

func TestPercentile(t *testing.T) {
	s := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for p, want := range map[float64]float64{0.5: 5, 0.99: 10, 0.1: 1, 0.11: 2, 1: 10} {
		if got := Percentile(s, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if !math.IsNaN(Percentile(nil, 0.5)) {
		t.Error("empty: not NaN")
	}
}

func TestParseStatus(t *testing.T) {
	s, err := ParseStatus(read(t, "proc/7869/task/7879/status"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Voluntary != 60389 || s.Nonvoluntary != 175918 || s.VmRSSKiB <= 0 {
		t.Errorf("%+v", s)
	}
	cut := strings.Split(string(read(t, "proc/7869/status")), "nonvoluntary")[0]
	if _, err := ParseStatus([]byte(cut)); err == nil {
		t.Error("a status without nonvoluntary_ctxt_switches accepted")
	}
	if _, err := ParseStatus([]byte("VmRSS:\t12 MB\nvoluntary_ctxt_switches:\t1\nnonvoluntary_ctxt_switches:\t2\n")); err == nil {
		t.Error("a VmRSS in MB accepted")
	}
}

func TestContextSwitches(t *testing.T) {
	// HAProxy nbthread 2: its two threads' counters, not the process's
	// line (which repeats the main thread's).
	n, err := ContextSwitches("testdata/proc", 7869)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(67435 + 207691 + 60389 + 175918); n != want {
		t.Errorf("%d, want %d", n, want)
	}
	if _, err := ContextSwitches("testdata/proc", 1); err == nil {
		t.Error("a missing process accepted")
	}
}

func TestParseStraceSummary(t *testing.T) {
	s, err := ParseStraceSummary(string(read(t, "strace_nginx.txt")))
	if err != nil {
		t.Fatal(err)
	}
	if s.Calls != 100174 || s.Errors != 7 || s.ByName["writev"] != 47110 || s.ByName["recvfrom"] != 47119 || s.Seconds != 0.165696 {
		t.Errorf("nginx: %+v", s)
	}
	var sum int64
	for _, c := range s.ByName {
		sum += c
	}
	if sum != s.Calls {
		t.Errorf("per call %d, total %d", sum, s.Calls)
	}
	g, err := ParseStraceSummary(string(read(t, "strace_go.txt")))
	if err != nil || g.Calls != 346 || g.Errors != 4 || g.ByName["futex"] != 47 || len(g.ByName) != 29 {
		t.Errorf("go: %+v, %v", g, err)
	}
	noTotal := strings.Split(string(read(t, "strace_nginx.txt")), "100.00")[0]
	if _, err := ParseStraceSummary(noTotal); err == nil {
		t.Error("a table without its total accepted")
	}
	if _, err := ParseStraceSummary("% time\n 1 2 3 x y\n"); err == nil {
		t.Error("a bad line accepted")
	}
}

func TestParseProcStat(t *testing.T) {
	busy, total, err := ParseProcStat([]byte("cpu  100 5 50 800 20 3 2 0 40 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"))
	if err != nil || busy != 160 || total != 980 {
		t.Errorf("busy %v total %v %v", busy, total, err)
	}
	if _, _, err := ParseProcStat([]byte("intr 1 2 3\n")); err == nil {
		t.Error("a bad first line accepted")
	}
	if v, err := ParseStatCPU([]byte("42 (a) b) R 1 2 3 4 5 6 7 8 9 10 100 23 0 0")); err != nil || v != 123 {
		t.Errorf("stat: %v %v", v, err)
	}
}

func TestHAProxyConfig(t *testing.T) {
	c := HAProxy{Threads: 2, Splice: "auto", Extra: "tune.pipesize 1048576; ", Routes: []HAProxyRoute{
		{Listen: "127.0.0.1:6443", Servers: []string{"127.0.0.1:8080"}},
		{Listen: "127.0.0.1:6501", Servers: []string{"127.0.0.1:5201", "127.0.0.2:5201"}},
	}}.Config()
	for _, want := range []string{"nbthread 2\n", "maxconn 4096\n", "    tune.pipesize 1048576\n", "mode tcp\n", "option splice-auto\n",
		"listen r0\n    bind 127.0.0.1:6443\n", "server s0 127.0.0.1:8080\n",
		"listen r1\n    bind 127.0.0.1:6501\n    maxconn 4096\n    balance roundrobin\n    server s0 127.0.0.1:5201\n    server s1 127.0.0.2:5201\n"} {
		if !strings.Contains(c, want) {
			t.Errorf("no %q in\n%s", want, c)
		}
	}
	if c := (HAProxy{Threads: 1}).Config(); !strings.Contains(c, "option splice-request\n    option splice-response\n") {
		t.Errorf("default splice:\n%s", c)
	}
	if c := (HAProxy{Threads: 1, Splice: "off"}).Config(); !strings.Contains(c, "no option splice-auto") || strings.Contains(c, "splice-request") {
		t.Errorf("splice off:\n%s", c)
	}
}

func TestNginxConfig(t *testing.T) {
	c := NginxConfig("h3", "/tmp/x", "8080")
	for _, want := range []string{"daemon off;", "pid /tmp/x/nginx-h3.pid;", "listen 8080 backlog=4096;", `return 200 "h3\n";`, "access_log off;"} {
		if !strings.Contains(c, want) {
			t.Errorf("no %q in\n%s", want, c)
		}
	}
}

func TestPickRotate(t *testing.T) {
	all := []string{"a", "b", "c"}
	if got, err := Pick("--x", "c, a,c", all); err != nil || !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("Pick: %v %v", got, err)
	}
	for _, bad := range []string{"", "d", ","} {
		if _, err := Pick("--x", bad, all); err == nil {
			t.Errorf("Pick(%q) accepted", bad)
		}
	}
	if got := Rotate(all, 4); !slices.Equal(got, []string{"b", "c", "a"}) {
		t.Errorf("Rotate: %v", got)
	}
	if Rotate(nil, 1) != nil {
		t.Error("Rotate(nil)")
	}
}

func TestWrkVegetaArgs(t *testing.T) {
	if got := strings.Join(WrkArgs(1, 32, 3e9, true, "http://x/"), " "); got != "wrk -t 1 -c 32 -d 3s --latency --timeout 5s -H Connection: close http://x/" {
		t.Errorf("wrk: %q", got)
	}
	if got := strings.Join(VegetaAttackArgs("v", 5000, 3e9, 10, "o"), " "); got != "v attack -rate 5000/1s -duration 3s -keepalive=true -http2=false -timeout 5s -workers 10 -output o" {
		t.Errorf("vegeta: %q", got)
	}
}

func TestParseProcNetTCP(t *testing.T) {
	// nginx on 8080 with one client connected (tcp), iperf3 -s on 5201
	// (tcp6, dual stack).
	v4, err := ParseProcNetTCP(read(t, "proc_net_tcp.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := []TCPSocket{{8080, 0, TCPListen}, {56118, 8080, TCPEstablished}, {8080, 56118, TCPEstablished}}
	if !slices.Equal(v4, want) {
		t.Errorf("tcp: %v, want %v", v4, want)
	}
	v6, err := ParseProcNetTCP(read(t, "proc_net_tcp6.txt"))
	if err != nil || !slices.Equal(v6, []TCPSocket{{5201, 0, TCPListen}}) {
		t.Errorf("tcp6: %v, %v", v6, err)
	}
	for _, bad := range []string{"x y\n", "  sl  local_address rem_address   st\n   0: 00000000 00000000:0000 0A\n",
		"  sl  local_address rem_address   st\n   0: 00000000:0050 00000000:0000 ZZ\n"} {
		if _, err := ParseProcNetTCP([]byte(bad)); err == nil {
			t.Errorf("ParseProcNetTCP(%q) accepted", bad)
		}
	}
	if _, err := ListeningPorts(os.Getpid()); err != nil {
		t.Error(err)
	}
}
