package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nlb-dev/nlb/cplb"
	"github.com/nlb-dev/nlb/lb"
	"github.com/nlb-dev/nlb/vrrp"
	"github.com/nlb-dev/nlb/vrrp/router"
)

func TestRenderControllerStatus(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	st := cplb.Status{
		Instances: []cplb.InstanceStatus{{
			Status: router.Status{Name: "k0s-vip-0", VRID: 51, Interface: "eth0", State: "Backup", Priority: 0,
				Master: "192.0.2.12", VIPs: []string{"192.0.2.100/24"}, Transitions: 3,
				LastTransition: now.Add(-12 * time.Second).Format(time.RFC3339Nano), LastReason: "priority set to 0 (releasing)"},
			Recent: []cplb.TransitionStatus{{At: now.Add(-12 * time.Second).Format(time.RFC3339), From: "Master", To: "Backup", Reason: "priority set to 0 (releasing)"}},
		}},
		Health: &cplb.HealthStatus{Target: "192.0.2.11:6443", Interval: "500ms", Fall: 3, Rise: 5,
			Tracked: vrrp.TrackStatus{Healthy: false, Priority: 0, NeededToRecover: 10, Changes: 3, LastError: "GET /readyz: 500"}},
		Steering: cplb.SteeringStatus{Mode: "sklookup", VIPs: []string{"192.0.2.100"}, Port: 6443, ProxyPort: 6444},
		Proxy: &lb.Status{Listeners: []string{"[::]:6444"}, Active: 2, Total: 9, Backends: []lb.BackendStatus{
			{Address: "192.0.2.11:6443", Healthy: false, Active: 0, Total: 4, DialFailures: 2},
			{Address: "192.0.2.12:6443", Healthy: true, Active: 2, Total: 5, BytesIn: 2048, BytesOut: 3 << 20},
		}},
	}
	body, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := renderStatus(&out, body, now); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"k0s-vip-0", "Backup", "192.0.2.12", "12s ago: priority set to 0 (releasing)",
		"FAILED: local API server 192.0.2.11:6443", "now 10 while flapping", "last error: GET /readyz: 500",
		"sklookup: 192.0.2.100 port 6443 -> proxy port 6444",
		"192.0.2.11:6443  unhealthy", "192.0.2.12:6443  healthy", "3.0 MiB", "2.0 KiB",
		"Recent transitions", "Master -> Backup",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

func TestStatusCommand(t *testing.T) {
	// nlb proxy's /status is an lb.Status at the top level.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(lb.Status{Listeners: []string{"127.0.0.1:6444"}, FailOpen: true,
			Backends: []lb.BackendStatus{{Address: "198.51.100.7:6443"}}})
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"status", "--admin", srv.URL}, &out, &errb); err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	for _, want := range []string{"listening on 127.0.0.1:6444", "FAILING OPEN", "198.51.100.7:6443  unhealthy"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := run(context.Background(), []string{"status", "--admin", srv.URL, "--json"}, &out, &errb); err != nil || !json.Valid(out.Bytes()) {
		t.Errorf("--json: %v: %q", err, out.String())
	}
	if err := run(context.Background(), []string{"status", "--admin", "127.0.0.1:1", "--timeout", "1s"}, &out, &errb); err == nil ||
		!strings.Contains(err.Error(), "is nlb running") {
		t.Errorf("unreachable admin: %v", err)
	}
}

// hostileStatus is a /status document whose strings carry terminal escape
// sequences (ESC, BEL, CR, a C1 CSI), a bidirectional override and DEL,
// both as JSON escapes and raw.
const hostileStatus = `{"instances":[{"name":"a\u001b[2Jb","vrid":51,"interface":"eth0` + "\u009b" + `31m","state":"Master",` +
	`"vips":["192.0.2.1\u202e"],"recent_transitions":[{"at":"x","from":"A","to":"B","reason":"r\u0007` + "\x7f" + `"}]}],` +
	`"health":{"target":"t\r","interval":"1s","tracked":{"last_error":"e\u001b]0;title\u0007"}},` +
	`"steering":{"mode":"m\u001bc","vips":["v` + "\u2067" + `"]},` +
	`"proxy":{"listeners":["l\u001b[1A"],"backends":[{"address":"b\r\nforged line"}]},"discovered":["d\u0000"]}`

// terminalControl returns the first character of s, other than a newline,
// that a terminal acts on instead of printing, or -1.
func terminalControl(s string) rune {
	for _, r := range s {
		if r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError) {
			return r
		}
	}
	return -1
}

// TestStatusEscapesServerStrings: nlb status prints what the server says,
// but never a control character or escape sequence from it: each is shown
// escaped (\x1b), in the summary, with --json, and in an error's status
// line.
func TestStatusEscapesServerStrings(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, hostileStatus)
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"status", "--admin", srv.URL}, &out, &errb); err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	got := out.String()
	if r := terminalControl(got); r >= 0 {
		t.Errorf("the summary holds %U:\n%q", r, got)
	}
	for _, want := range []string{`a\x1b[2Jb`, `eth0\u009b31m`, `192.0.2.1\u202e`, `r\a\x7f`, `t\r`, `e\x1b]0;title\a`,
		`m\x1bc`, `v\u2067`, `l\x1b[1A`, `b\r\nforged line`, `d\x00`} {
		if !strings.Contains(got, want) {
			t.Errorf("the summary lacks %q:\n%q", want, got)
		}
	}

	out.Reset()
	if err := run(context.Background(), []string{"status", "--admin", srv.URL, "--json"}, &out, &errb); err != nil {
		t.Fatalf("--json: %v", err)
	}
	if r := terminalControl(out.String()); r >= 0 {
		t.Errorf("--json holds %U:\n%q", r, out.String())
	}
	var a, b any
	if err := json.Unmarshal([]byte(hostileStatus), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out.Bytes(), &b); err != nil || !reflect.DeepEqual(a, b) {
		t.Errorf("--json is not the served document (%v):\n%q", err, out.String())
	}

	// A status line with an escape sequence, from a raw server.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "HTTP/1.1 503 \x1b[31mdown\x1b[0m\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	}()
	err = run(context.Background(), []string{"status", "--admin", ln.Addr().String()}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), `503 \x1b[31mdown\x1b[0m`) || terminalControl(err.Error()) >= 0 {
		t.Errorf("a hostile status line: %q", err)
	}

	// Not JSON is not printed with --json.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "\x1b[2J not JSON")
	}))
	defer bad.Close()
	out.Reset()
	if err := run(context.Background(), []string{"status", "--admin", bad.URL, "--json"}, &out, &errb); err == nil || out.Len() != 0 {
		t.Errorf("--json of a non-JSON body: %v, printed %q", err, out.String())
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain 192.0.2.1 (here), ünïcode ✓": "plain 192.0.2.1 (here), ünïcode ✓",
		"\x1b[2J":                           `\x1b[2J`,
		"a\tb":                              `a\tb`,
		"\u009b1m":                          `\u009b1m`,
		"\u202eevil":                        `\u202eevil`,
		"bad \xff utf-8":                    `bad \xff utf-8`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRenderFastPathStatus: nlb status shows the XDP fast path: attach
// mode, role, flow table memory, each backend with its MAC, health, slots
// and counters, and the events.
func TestRenderFastPathStatus(t *testing.T) {
	st := cplb.Status{
		Steering: cplb.SteeringStatus{Mode: "xdp", Port: 6443, ProxyPort: 6444},
		FastPath: &cplb.FastPathStatus{Mode: "xdp", Interfaces: []cplb.XDPInterfaceStatus{{
			Interface: "eth0", Attach: "xdp-native", Adopted: true, Forwarding: true,
			FlowTable: cplb.FlowTableStatus{Entries: 131072, MemoryBytes: 16 << 20},
			Services: []cplb.XDPServiceStatus{{VIP: "192.0.2.100", Port: 6443, Persistent: true,
				XDPCounters: cplb.XDPCounters{Packets: 1000, Bytes: 2 << 20, NewFlows: 12, Rehashed: 3},
				Backends: []cplb.XDPBackendStatus{
					{Address: "192.0.2.11:6443", MAC: "02:00:00:00:00:11", Local: true, Healthy: true, Slots: 8191,
						XDPCounters: cplb.XDPCounters{Packets: 600, NewFlows: 7}},
					{Address: "192.0.2.12:6443", MAC: "02:00:00:00:00:12", Healthy: true, Slots: 8190},
					{Address: "192.0.2.13:6443", Problem: "dsr: backend 192.0.2.13 did not answer"},
				}}},
			Events: map[string]uint64{"backup": 4, "local": 600},
		}}},
	}
	body, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := renderStatus(&out, body, time.Now()); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"none: virtualServers run the XDP fast path", "eth0: xdp-native, adopted; Master: forwards; flow table 131072 flows, 16.0 MiB",
		"192.0.2.100 port 6443, persistent (client address): 1000 packets, 2.0 MiB, 12 new flows, 3 re-hashed",
		"02:00:00:00:00:11 (this node)", "8191", "left out: dsr: backend 192.0.2.13 did not answer",
		"events: backup 4, local 600",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}
