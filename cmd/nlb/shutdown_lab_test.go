//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"github.com/nlb-dev/nlb/internal/netlab"
	"github.com/nlb-dev/nlb/internal/nlbtest"
)

// duplicateKey returns the first key that appears twice in one object of
// the JSON document doc ("" if none).
func duplicateKey(doc string) (string, error) {
	type frame struct {
		obj, wantKey bool
		keys         map[string]bool
	}
	var stack []*frame
	dec := json.NewDecoder(strings.NewReader(doc))
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if k, ok := tok.(string); ok && top != nil && top.obj && top.wantKey {
			if top.keys[k] {
				return k, nil
			}
			top.keys[k], top.wantKey = true, false
			continue
		}
		if top != nil && top.obj {
			top.wantKey = true // a value: a key comes next
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{obj: true, wantKey: true, keys: map[string]bool{}})
		case json.Delim('['):
			stack = append(stack, &frame{})
		}
	}
}

func TestDuplicateKey(t *testing.T) {
	for doc, want := range map[string]string{
		`{"a":1,"b":{"a":2},"c":[{"a":1,"b":2}]}`:   "",
		`{"iface":"eth0","msg":"x","iface":"eth0"}`: "iface",
		`{"a":{"b":1,"b":2}}`:                       "b",
		`{"a":[{"x":1},{"x":2}],"a":0}`:             "a",
		`{"a":"a","b":"a"}`:                         "",
	} {
		if got, err := duplicateKey(doc); err != nil || got != want {
			t.Errorf("duplicateKey(%s) = %q, %v; want %q", doc, got, err, want)
		}
	}
}

// TestLabShutdownLog: nlb vrrp's JSON log repeats no key in any line (the
// interface was in the logger and again in the line), through a start, a
// VIP repair and a SIGTERM stop; and the stop logs nothing at WARN or
// above: closing the link state subscription is how it ends, not a
// failure (issue 10 item 3).
func TestLabShutdownLog(t *testing.T) {
	netlab.Require(t)
	t.Parallel()
	lab := netlab.NewT(t, "", netlab.Options{Hosts: 1})
	h, vip := lab.Hosts[0], lab.VIP4(0)
	n := startNLBCommand(t, h, renderNLB(h.IfName, vrrpOpts{VRID: vrid, VIPs: []netip.Prefix{vip}}.fast()), "vrrp",
		"--log-format", "json")
	nlbtest.Eventually(t, fastWait, "Master with the VIP", all(wantState(n, vrid, "Master"), hasVIP(h, vip, true)))

	// The VIP manager logs its repair of a VIP removed behind its back.
	if out, err := h.Exec(context.Background(), "ip", "addr", "del", vip.String(), "dev", h.IfName).CombinedOutput(); err != nil {
		t.Fatalf("ip addr del: %v: %s", err, out)
	}
	nlbtest.Eventually(t, fastWait, "VIP repaired and logged", func() error {
		if !strings.Contains(n.log(), "re-added") {
			return errors.New("no repair in the log yet")
		}
		return hasVIP(h, vip, true)()
	})

	before := len(n.log())
	n.signal(syscall.SIGTERM)
	if err := n.wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	log := n.log()
	if !strings.Contains(log[before:], `"msg":"stopped"`) {
		t.Fatalf("no \"stopped\" line after SIGTERM:\n%s", log[before:])
	}
	lines := 0
	for off, line := range logLines(log) {
		lines++
		var rec struct {
			Level string `json:"level"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON log line: %q", line)
			continue
		}
		if k, err := duplicateKey(line); err != nil || k != "" {
			t.Errorf("key %q twice (%v) in %s", k, err, line)
		}
		if off >= before && rec.Level != "INFO" && rec.Level != "DEBUG" {
			t.Errorf("at shutdown: %s", line)
		}
	}
	if lines < 5 {
		t.Errorf("only %d log lines:\n%s", lines, log)
	}
}

// logLines yields the non-empty lines of log with their offsets.
func logLines(log string) func(func(int, string) bool) {
	return func(yield func(int, string) bool) {
		off := 0
		for l := range strings.SplitSeq(log, "\n") {
			if strings.TrimSpace(l) != "" && !yield(off, l) {
				return
			}
			off += len(l) + 1
		}
	}
}
