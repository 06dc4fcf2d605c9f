package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
)

func TestPercentile(t *testing.T) {
	s := make([]uint32, 100)
	for i := range s {
		s[i] = uint32(i + 1)
	}
	for _, tc := range []struct {
		p    float64
		want uint32
	}{{0.5, 50}, {0.99, 99}, {1, 100}, {0.001, 1}} {
		if got := percentile(s, tc.p); got != tc.want {
			t.Errorf("percentile(1..100, %v) = %d, want %d", tc.p, got, tc.want)
		}
	}
	if got := percentile([]uint32{7}, 0.99); got != 7 {
		t.Errorf("percentile of one sample = %d", got)
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile(nil) = %d", got)
	}
}

// sample is a full result set in which nlb meets every goal but the 8-stream
// throughput against HAProxy.
func sample() results {
	r := make(results)
	for _, v := range []struct {
		impl, metric string
		runs         []float64
	}{
		{implDirect, mThroughput1, []float64{50, 52, 51}},
		{implHAProxy, mThroughput1, []float64{20, 22, 21}},
		{implNLB, mThroughput1, []float64{31, 30, 32}},
		{implDirect, mThroughput8, []float64{40}},
		{implHAProxy, mThroughput8, []float64{30}},
		{implNLB, mThroughput8, []float64{35}},
		{implHAProxy, mConnRate, []float64{1000}},
		{implNLB, mConnRate, []float64{1000}},
		{implHAProxy, mLatencyP99, []float64{400}},
		{implNLB, mLatencyP99, []float64{390}},
		{implNLB, mIdleMem, []float64{12.5}},
		{implNLB, mThroughput1Sys, []float64{25.2, 26.25}},
	} {
		for _, x := range v.runs {
			r.add(v.impl, v.metric, x)
		}
	}
	r.add(implNLB, mIdleRSS, math.NaN()) // ignored
	return r
}

func TestGoals(t *testing.T) {
	r := sample()
	want := map[string][]bool{
		mThroughput1: {true, true}, // 31 ≥ 1.3×21 = 27.3; 31 ≥ 0.6×51 = 30.6
		mThroughput8: {false, true},
		mConnRate:    {true},
		mLatencyP99:  {true},
		mIdleMem:     {true},
	}
	got := make(map[string][]bool)
	for _, g := range goals() {
		met, ok := g.eval(r)
		if !ok {
			t.Fatalf("goal %s %s not measured", g.metric, g)
		}
		got[g.metric] = append(got[g.metric], met)
	}
	for m, w := range want {
		if len(got[m]) != len(w) {
			t.Fatalf("%s: %v, want %v", m, got[m], w)
		}
		for i := range w {
			if got[m][i] != w[i] {
				t.Errorf("%s goal %d: met %v, want %v", m, i, got[m][i], w[i])
			}
		}
	}
	delete(r, implHAProxy)
	if _, ok := (goal{mConnRate, implHAProxy, true, 1}).eval(r); ok {
		t.Error("goal against a missing implementation counts as measured")
	}
}

func TestJSONLines(t *testing.T) {
	var b bytes.Buffer
	if err := writeJSONLines(&b, sample(), []string{implDirect, implHAProxy, implNLB}); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&b)
	n := 0
	for sc.Scan() {
		n++
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		for _, k := range []string{"impl", "metric", "value", "unit"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line %q lacks %q", sc.Text(), k)
			}
		}
		if _, ok := m["value"].(float64); !ok {
			t.Errorf("line %q: value is not a number", sc.Text())
		}
	}
	if n != 12 {
		t.Errorf("%d lines, want 12 (one per measured impl and metric)", n)
	}
	var b2 bytes.Buffer
	if err := writeJSONLines(&b2, sample(), []string{implNLB}); err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(b2.String(), "\n")
	if want := `{"impl":"nlb","metric":"throughput_1stream","value":31,"unit":"Gbit/s","runs":[31,30,32]}`; line != want {
		t.Errorf("first nlb line\n got %s\nwant %s", line, want)
	}
}

func TestTable(t *testing.T) {
	var b bytes.Buffer
	if err := writeTable(&b, sample()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| metric | unit | direct | haproxy | nlb | nlb/haproxy | nlb/direct | goal | met? |",
		"| bulk throughput, 1 stream | Gbit/s | 51.00 | 21.00 | 31.00 | 1.48× | 0.61× | ≥ 1.3× haproxy, ≥ 0.6× direct | yes, yes |",
		"| bulk throughput, 8 streams | Gbit/s | 40.00 | 30.00 | 35.00 | 1.17× | 0.88× | ≥ 1.3× haproxy, ≥ 0.6× direct | **no**, yes |",
		"| memory per idle proxied connection | KiB | — | — | 12.5 | — | — | ≤ 16 | yes |",
		// An nlb-only row is compared with the others' figures of its peer metric.
		"| bulk, 1 stream, nlb with loopbackCongestionControl: system | Gbit/s | 51.00 | 21.00 | 25.73 | 1.23× | 0.50× |  |  |",
		"Goals met: 6 of 7. Unmet: throughput_8streams ≥ 1.3× haproxy (not met).",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks\n%s\nin\n%s", want, out)
		}
	}
	if strings.Contains(out, "proxy CPU") {
		t.Error("table has rows for metrics without values")
	}
}

func TestSVGIsWellFormed(t *testing.T) {
	s := renderSVG(sample(), env{date: "d", cpu: "cpu <x> & y", kernel: "k", cores: 2})
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		_, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
	}
	if !strings.Contains(s, "goal ≤ 16") {
		t.Error("memory goal line missing")
	}
}

func TestNiceCeil(t *testing.T) {
	for in, want := range map[float64]float64{0.7: 1, 1: 1, 1.1: 2, 2.2: 2.5, 3: 5, 7: 10, 42: 50, 230: 250} {
		if got := niceCeil(in); math.Abs(got-want) > 1e-9 {
			t.Errorf("niceCeil(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestIdleFit(t *testing.T) {
	for limit, want := range map[uint64]int{20000: 9400, 1 << 20: 523600, 1024: 100} {
		if got := idleFit(limit); got != want {
			t.Errorf("idleFit(%d) = %d, want %d", limit, got, want)
		}
	}
}

func TestHAProxyConfig(t *testing.T) {
	c := haproxyConfig("127.0.0.1:1", "127.0.0.1:2", 2, 10100, "always", "tune.pipesize 1048576; ")
	for _, want := range []string{"nbthread 2", "maxconn 10100", "mode tcp", "option splice-request\n    option splice-response\n", "bind 127.0.0.1:1", "server s1 127.0.0.1:2", "\n    tune.pipesize 1048576\n"} {
		if !strings.Contains(c, want) {
			t.Errorf("config lacks %q:\n%s", want, c)
		}
	}
}
