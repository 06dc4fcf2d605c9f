package config

import (
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// vsDoc is a ClusterConfig with VRRP instances on 192.0.2.100 and
// 2001:db8::100 and the
// given virtualServers entries (YAML flow mappings) and spec.api.port.
func vsDoc(port int, entries ...string) string {
	var b strings.Builder
	b.WriteString("apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec:\n")
	if port != 0 {
		b.WriteString("  api:\n    port: " + strconv.Itoa(port) + "\n")
	}
	b.WriteString("  network:\n    controlPlaneLoadBalancing:\n      enabled: true\n      keepalived:\n" +
		"        vrrpInstances:\n        - {virtualIPs: [192.0.2.100/24], authPass: x}\n" +
		"        - {virtualIPs: [\"2001:db8::100/64\"], authPass: x}\n" +
		"        virtualServers:\n")
	for _, e := range entries {
		b.WriteString("        - " + e + "\n")
	}
	return b.String()
}

const vsPath = "spec.network.controlPlaneLoadBalancing.keepalived.virtualServers"

// TestVirtualServersK0sDefaults: every k0s config with virtualServers
// carries rr / DR / 360 / 1m (written back by k0s's defaulting, or
// spelt out); both load cleanly and resolve to a persistent DR service on
// VIP:spec.api.port.
// Mutations checked: Persistent false; DR refused by lbKindProblem; the
// lbAlgo note replaced by a placeholder.
func TestVirtualServersK0sDefaults(t *testing.T) {
	for name, entry := range map[string]string{
		"implicit": "{ipAddress: 192.0.2.100}",
		"explicit": "{ipAddress: 192.0.2.100, lbAlgo: rr, lbKind: DR, persistenceTimeoutSeconds: 360, delayLoop: 1m}",
	} {
		t.Run(name, func(t *testing.T) {
			c := mustLoad(t, vsDoc(0, entry))
			got := c.VirtualServers()
			if len(got) != 1 {
				t.Fatalf("VirtualServers() = %+v, want one", got)
			}
			s := got[0]
			if s.VIP != netip.MustParseAddr("192.0.2.100") || s.Port != 6443 || !s.Persistent ||
				s.PersistenceTimeout != 360*time.Second || s.LBAlgo != "rr" || s.LBKind != "DR" ||
				s.DelayLoop != time.Minute || s.Index != 0 || s.Path != vsPath+"[0]" {
				t.Errorf("resolved = %+v", s)
			}
			var fields []string
			for _, n := range s.Notes {
				fields = append(fields, strings.TrimPrefix(n.Field, vsPath+"[0]."))
				if !strings.Contains(n.String(), n.Field+": "+n.Value+": ") {
					t.Errorf("note String() = %q", n.String())
				}
			}
			if want := []string{"lbAlgo", "persistenceTimeoutSeconds", "delayLoop"}; !slices.Equal(fields, want) {
				t.Errorf("notes for %q, want %q", fields, want)
			}
			want := map[string]string{"lbAlgo": "rr", "persistenceTimeoutSeconds": "360", "delayLoop": "1m0s"}
			for _, n := range s.Notes {
				if v := want[strings.TrimPrefix(n.Field, vsPath+"[0].")]; n.Value != v {
					t.Errorf("%s value %q, want %q", n.Field, n.Value, v)
				}
			}
			if !strings.Contains(s.Notes[0].Note, "Maglev") || !strings.Contains(s.Notes[2].Note, "/readyz") ||
				!strings.Contains(s.Notes[1].Note, "no timeout") {
				t.Errorf("notes do not say what supersedes the field: %q", s.Notes)
			}
		})
	}
}

// TestVirtualServersPortIsAPIPort: k0s renders virtual_server <ip>
// <spec.api.port>. Mutation checked: Port from DefaultAPIPort.
func TestVirtualServersPortIsAPIPort(t *testing.T) {
	c := mustLoad(t, vsDoc(9443, `{ipAddress: "2001:db8::100"}`))
	got := c.VirtualServers()
	if len(got) != 1 || got[0].Port != 9443 || got[0].VIP != netip.MustParseAddr("2001:db8::100") {
		t.Errorf("VirtualServers() = %+v", got)
	}
}

// TestVirtualServersLBAlgo: every scheduler k0s accepts (k0s.md §1.4) is
// accepted and superseded by Maglev; anything else is refused naming the
// field. Mutation checked: dropping "nq" from lbAlgos.
func TestVirtualServersLBAlgo(t *testing.T) {
	for _, a := range []string{"rr", "wrr", "lc", "wlc", "lblc", "dh", "sh", "sed", "nq"} {
		c := mustLoad(t, vsDoc(0, "{ipAddress: 192.0.2.100, lbAlgo: "+a+"}"))
		got := c.VirtualServers()
		if len(got) != 1 || got[0].LBAlgo != a || got[0].Notes[0].Value != a ||
			!strings.Contains(got[0].Notes[0].Note, "superseded by Maglev") {
			t.Errorf("lbAlgo %s: %+v", a, got)
		}
	}
	for _, a := range []string{"RR", "mh", "random", "lblcr"} {
		_, err := Load(strings.NewReader(vsDoc(0, "{ipAddress: 192.0.2.100, lbAlgo: "+a+"}")))
		if got := paths(t, err); !slices.Equal(got, []string{vsPath + "[0].lbAlgo"}) {
			t.Errorf("lbAlgo %s: paths %q", a, got)
		}
	}
}

// TestVirtualServersLBKind: DR is honoured; NAT and TUN, which k0s
// accepts, are refused with an error naming the field and saying why;
// other values are refused as k0s refuses them.
// Mutations checked: NAT returning "" from lbKindProblem; TUN's message
// without "encapsulate".
func TestVirtualServersLBKind(t *testing.T) {
	c := mustLoad(t, vsDoc(0, "{ipAddress: 192.0.2.100, lbKind: DR}"))
	if got := c.VirtualServers(); len(got) != 1 || got[0].LBKind != "DR" {
		t.Errorf("DR: %+v", got)
	}
	for kind, why := range map[string]string{
		"NAT":     "routed back through the VRRP Master",
		"TUN":     "does not encapsulate",
		"dr":      `supported values: "NAT", "DR", "TUN"`,
		"FULLNAT": `supported values: "NAT", "DR", "TUN"`,
	} {
		c, err := Load(strings.NewReader(vsDoc(0, "{ipAddress: 192.0.2.100, lbKind: "+kind+"}")))
		if got := paths(t, err); !slices.Equal(got, []string{vsPath + "[0].lbKind"}) {
			t.Errorf("lbKind %s: paths %q", kind, got)
			continue
		}
		var fe *FieldError
		errors.As(err, &fe)
		if !strings.Contains(fe.Message, why) {
			t.Errorf("lbKind %s: message %q lacks %q", kind, fe.Message, why)
		}
		if kind == "NAT" || kind == "TUN" {
			if !strings.Contains(fe.Message, "use DR") {
				t.Errorf("lbKind %s: message %q does not say what to use", kind, fe.Message)
			}
		}
		if c != nil {
			t.Errorf("lbKind %s: Load returned a config with an error", kind)
		}
	}
}

// TestVirtualServersPersistence: 0 is k0s's default 360; any timeout in
// 1-2678400 means persistence on (k0s has no way to turn it off) and is
// superseded by Maglev's timeless stickiness; out of range is refused.
// Mutations checked: Persistent = PersistenceTimeoutSeconds == 360;
// PersistenceTimeout a constant 360s.
func TestVirtualServersPersistence(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0":       360 * time.Second,
		"1":       time.Second,
		"360":     360 * time.Second,
		"2678400": 2678400 * time.Second,
	} {
		c := mustLoad(t, vsDoc(0, "{ipAddress: 192.0.2.100, persistenceTimeoutSeconds: "+in+"}"))
		got := c.VirtualServers()
		if len(got) != 1 || !got[0].Persistent || got[0].PersistenceTimeout != want ||
			got[0].Notes[1].Value != strconv.Itoa(int(want/time.Second)) {
			t.Errorf("persistenceTimeoutSeconds %s: %+v", in, got)
		}
	}
	for _, in := range []string{"-1", "2678401"} {
		_, err := Load(strings.NewReader(vsDoc(0, "{ipAddress: 192.0.2.100, persistenceTimeoutSeconds: "+in+"}")))
		if got := paths(t, err); !slices.Equal(got, []string{vsPath + "[0].persistenceTimeoutSeconds"}) {
			t.Errorf("persistenceTimeoutSeconds %s: paths %q", in, got)
		}
	}
}

// TestVirtualServersDelayLoop: any positive delayLoop is accepted (as
// k0s, truncated to microseconds) and superseded by the /readyz checks;
// zero means 1m; negative or below a microsecond is refused.
// Mutation checked: the view's DelayLoop a constant minute.
func TestVirtualServersDelayLoop(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0s": time.Minute, "1us": time.Microsecond, "1500ns": time.Microsecond,
		"3s": 3 * time.Second, "1m": time.Minute, "24h": 24 * time.Hour,
	} {
		c := mustLoad(t, vsDoc(0, "{ipAddress: 192.0.2.100, delayLoop: "+in+"}"))
		got := c.VirtualServers()
		if len(got) != 1 || got[0].DelayLoop != want || got[0].Notes[2].Value != want.String() ||
			!strings.Contains(got[0].Notes[2].Note, "/readyz") {
			t.Errorf("delayLoop %s: %+v", in, got)
		}
	}
	for _, in := range []string{"-1s", "500ns"} {
		_, err := Load(strings.NewReader(vsDoc(0, "{ipAddress: 192.0.2.100, delayLoop: "+in+"}")))
		if got := paths(t, err); !slices.Equal(got, []string{vsPath + "[0].delayLoop"}) {
			t.Errorf("delayLoop %s: paths %q", in, got)
		}
	}
}

// TestVirtualServersBadVIPs: each bad ipAddress is refused naming the
// field; several problems are reported at once. Mutation checked: the
// duplicate check keyed by the string (2001:db8::100 and 2001:DB8::100
// are one address).
func TestVirtualServersBadVIPs(t *testing.T) {
	for _, ip := range []string{`""`, "192.0.2.100/24", "not-an-ip", `"::ffff:192.0.2.100"`, `"fe80::1%eth0"`, "0.0.0.0", "224.0.0.18"} {
		_, err := Load(strings.NewReader(vsDoc(0, "{ipAddress: "+ip+"}")))
		if got := paths(t, err); !slices.Equal(got, []string{vsPath + "[0].ipAddress"}) {
			t.Errorf("ipAddress %s: paths %q", ip, got)
		}
	}
	_, err := Load(strings.NewReader(vsDoc(0, `{ipAddress: "2001:db8::100"}`, `{ipAddress: "2001:DB8::100", lbKind: NAT}`)))
	if got := paths(t, err); !slices.Equal(got, []string{vsPath + "[1].ipAddress", vsPath + "[1].lbKind"}) {
		t.Errorf("duplicate + NAT: paths %q", got)
	}
}

// TestVirtualServersWarning: virtualServers with disableLoadBalancer are
// ignored, as k0s ignores them, and a warning says so; without it they run
// (no warning); no virtualServers, no warning and no services.
// Mutation checked: the warning not emitted; emitted without
// disableLoadBalancer.
func TestVirtualServersWarning(t *testing.T) {
	c := mustLoad(t, vsDoc(0, "{ipAddress: 192.0.2.100}"))
	if w := strings.Join(c.Warnings(), "\n"); strings.Contains(w, "virtualServers:") {
		t.Errorf("warning for virtualServers that run:\n%s", w)
	}
	c2 := mustLoad(t, strings.Replace(vsDoc(0, "{ipAddress: 192.0.2.100}"), "keepalived:\n", "keepalived:\n        steering: nftables\n", 1))
	if w := strings.Join(c2.Warnings(), "\n"); !strings.Contains(w, "steering: ignored: virtualServers run the XDP fast path") {
		t.Errorf("steering with virtualServers: warnings:\n%s", w)
	}
	if len(c.Controller().VirtualServers) != 1 {
		t.Errorf("Controller().VirtualServers = %+v, want the one", c.Controller().VirtualServers)
	}
	c = mustLoad(t, strings.Replace(vsDoc(0, "{ipAddress: 192.0.2.100}"), "keepalived:\n", "keepalived:\n        disableLoadBalancer: true\n", 1))
	if w := strings.Join(c.Warnings(), "\n"); !strings.Contains(w, vsPath+": ignored: disableLoadBalancer is true") {
		t.Errorf("warnings with disableLoadBalancer:\n%s", w)
	}
	if got := c.Controller().VirtualServers; got != nil {
		t.Errorf("disableLoadBalancer: Controller().VirtualServers = %+v, want none", got)
	}
	c = mustLoad(t, "keepalived:\n  vrrpInstances:\n  - {virtualIPs: [192.0.2.100/24], authPass: x}\n")
	if got := c.VirtualServers(); got != nil {
		t.Errorf("no virtualServers: %+v", got)
	}
	if w := strings.Join(c.Warnings(), "\n"); strings.Contains(w, "virtualServers") {
		t.Errorf("warning without virtualServers:\n%s", w)
	}
	// The bare section's paths are relative to it.
	c = mustLoad(t, "keepalived:\n  virtualServers:\n  - {ipAddress: 192.0.2.7}\n")
	if got := c.VirtualServers(); len(got) != 1 || got[0].Path != "keepalived.virtualServers[0]" {
		t.Errorf("bare section: %+v", got)
	}
}

// TestVirtualServersInstance: each service names the VRRP instance whose
// VIP it is (the fast path forwards on that instance's Master); an
// address no instance holds is accepted, as k0s does, with a warning
// naming the field. Mutations checked: vipInstance returning 0 for every
// address; the warning not emitted; the warning emitted for every entry.
func TestVirtualServersInstance(t *testing.T) {
	c := mustLoad(t, vsDoc(0, `{ipAddress: "2001:db8::100"}`, "{ipAddress: 192.0.2.100}", "{ipAddress: 192.0.2.7}"))
	got := c.VirtualServers()
	if len(got) != 3 || got[0].Instance != 1 || got[1].Instance != 0 || got[2].Instance != -1 {
		t.Fatalf("VirtualServers() = %+v", got)
	}
	var vsWarn []string
	for _, w := range c.Warnings() {
		if strings.HasPrefix(w, vsPath+"[") {
			vsWarn = append(vsWarn, w)
		}
	}
	if len(vsWarn) != 1 || !strings.HasPrefix(vsWarn[0], vsPath+"[2].ipAddress: 192.0.2.7 is not a virtualIPs address") {
		t.Errorf("per-entry warnings = %q", vsWarn)
	}
}
