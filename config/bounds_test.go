package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nlb-dev/nlb/input"
)

// TestLoadFileBounded: a file above 1 MiB, or one that never ends, is
// refused with one clear error and without reading it all.
func TestLoadFileBounded(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err == nil {
		_, err := LoadFile("/dev/zero")
		if err == nil || err.Error() != "config: /dev/zero is larger than 1 MiB" {
			t.Errorf("/dev/zero: %v", err)
		}
	}
	big := filepath.Join(t.TempDir(), "big.yaml")
	doc := "enabled: true\nkeepalived:\n  vrrpInstances:\n" +
		strings.Repeat("  - {virtualIPs: [192.0.2.100/24], authPass: x}\n", input.MaxConfigSize/40)
	if err := os.WriteFile(big, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadFile(big)
	var tl *input.TooLargeError
	if !errors.As(err, &tl) || err.Error() != "config: "+big+" is larger than 1 MiB" {
		t.Errorf("%d-byte file: %v", len(doc), err)
	}
	if _, err := Load(strings.NewReader(doc)); err == nil || err.Error() != "config: the document is larger than 1 MiB" {
		t.Errorf("Load of %d bytes: %v", len(doc), err)
	}
}

// TestProblemsBounded: thousands of broken instances give 20 problem lines
// and a count of the rest, and instances beyond the 255 allowed are not
// checked one by one.
func TestProblemsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("enabled: true\nkeepalived:\n  vrrpInstances:\n")
	const n = 5000
	for i := range n {
		fmt.Fprintf(&b, "  - {virtualIPs: [10.%d.%d.1/8], virtualRouterID: 300}\n", i/250, i%250)
	}
	_, err := Load(strings.NewReader(b.String()))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %v", err)
	}
	// The MaxItems problem, then two per checked instance (authPass
	// missing, virtualRouterID out of range).
	if want := 1 + 2*MaxVRRPInstances; len(ve.Problems) != want {
		t.Errorf("%d problems, want %d", len(ve.Problems), want)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != MaxReportedProblems+1 {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), MaxReportedProblems+1, err)
	}
	if want := "config: keepalived.vrrpInstances: must have at most 255 items, got 5000 (only the first 255 are checked)"; lines[0] != want {
		t.Errorf("first line %q, want %q", lines[0], want)
	}
	if want := fmt.Sprintf("config: ... and %d more problems", len(ve.Problems)-MaxReportedProblems); lines[len(lines)-1] != want {
		t.Errorf("last line %q, want %q", lines[len(lines)-1], want)
	}

	// Exactly MaxReportedProblems problems: no count line.
	ve = &ValidationError{Problems: ve.Problems[:MaxReportedProblems]}
	if got := strings.Count(ve.Error(), "\n") + 1; got != MaxReportedProblems || strings.Contains(ve.Error(), "more problems") {
		t.Errorf("%d problems printed as %d lines:\n%s", MaxReportedProblems, got, ve)
	}
}

// TestSecondDocument: a second YAML document is an error, not ignored; an
// empty one (a trailing ---) is fine.
func TestSecondDocument(t *testing.T) {
	one := "enabled: true\nkeepalived:\n  vrrpInstances:\n  - {virtualIPs: [192.0.2.100/24], authPass: x}\n"
	if _, err := Load(strings.NewReader(one + "---\n")); err != nil {
		t.Errorf("trailing ---: %v", err)
	}
	if _, err := Load(strings.NewReader("---\n" + one)); err != nil {
		t.Errorf("leading ---: %v", err)
	}
	_, err := Load(strings.NewReader(one + "---\n" + one))
	if err == nil || !strings.HasPrefix(err.Error(), "config: the file holds more than one YAML document (document 2 is not empty)") {
		t.Errorf("second document: %v", err)
	}
	f := filepath.Join(t.TempDir(), "two.yaml")
	if err := os.WriteFile(f, []byte(one+"---\n"+one), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(f); err == nil || !strings.Contains(err.Error(), "more than one YAML document") || !strings.Contains(err.Error(), f) {
		t.Errorf("LoadFile of two documents: %v", err)
	}
}

// TestVIPAddresses: a VIP must be a host address other nodes can reach.
func TestVIPAddresses(t *testing.T) {
	for _, tc := range []struct {
		vip, err string // err "": valid
	}{
		{"192.0.2.100/24", ""},
		{"192.0.2.1/24", ""},
		{"192.0.2.254/24", ""},
		{"192.0.2.0/31", ""},   // RFC 3021: both addresses are hosts
		{"192.0.2.1/31", ""},   //
		{"192.0.2.0/32", ""},   // a host route
		{"192.0.2.255/32", ""}, //
		{"10.0.0.0/7", "is the network address of 10.0.0.0/7, not a host address: use one such as 10.0.0.1/7"},
		{"192.0.2.0/24", "is the network address of 192.0.2.0/24, not a host address: use one such as 192.0.2.1/24"},
		{"192.0.2.255/24", "is the broadcast address of 192.0.2.0/24, not a host address: use one such as 192.0.2.254/24"},
		{"192.0.2.3/30", "is the broadcast address of 192.0.2.0/30"},
		{"255.255.255.255/32", "must be a unicast address"},
		{"127.0.0.5/8", "must not be a loopback address"},
		{"127.0.0.1/32", "must not be a loopback address"},
		{"2001:db8::100/64", ""},
		{"2001:db8::/127", ""}, // RFC 6164
		{"2001:db8::/128", ""},
		{"2001:db8::/64", "is the Subnet-Router anycast address of 2001:db8::/64, not a host address: use one such as 2001:db8::1/64"},
		{"::1/128", "must not be a loopback address"},
	} {
		t.Run(tc.vip, func(t *testing.T) {
			doc := fmt.Sprintf("enabled: true\nkeepalived:\n  vrrpInstances:\n  - {virtualIPs: [%q], authPass: x}\n", tc.vip)
			_, err := Load(strings.NewReader(doc))
			if tc.err == "" {
				if err != nil {
					t.Errorf("error %v", err)
				}
				return
			}
			if got := paths(t, err); !slices.Equal(got, []string{"keepalived.vrrpInstances[0].virtualIPs[0]"}) {
				t.Errorf("paths %q", got)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %v, want %q", err, tc.err)
			}
		})
	}
}

// TestUnicastSourceWithoutPeers: without peers an unusable unicastSourceIP
// is an error (it was a warning); a valid one is still only a warning.
func TestUnicastSourceWithoutPeers(t *testing.T) {
	doc := "enabled: true\nkeepalived:\n  vrrpInstances:\n  - {virtualIPs: [192.0.2.100/24], authPass: x, unicastSourceIP: %s}\n"
	_, err := Load(strings.NewReader(fmt.Sprintf(doc, "notanip")))
	if got := paths(t, err); !slices.Equal(got, []string{"keepalived.vrrpInstances[0].unicastSourceIP"}) {
		t.Errorf("notanip: paths %q", got)
	}
	if !strings.Contains(err.Error(), `must be a valid IP address, got "notanip"`) {
		t.Errorf("notanip: %v", err)
	}
	c := mustLoad(t, fmt.Sprintf(doc, "192.0.2.1"))
	if w := strings.Join(c.Warnings(), "\n"); !strings.Contains(w, "unicastSourceIP: ignored") {
		t.Errorf("warnings %q", w)
	}
}

// TestRunnable: what keeps nlb vrrp and nlb controller from having an
// instance to run, named by path, with Disabled set only when enabling the
// section would be enough.
func TestRunnable(t *testing.T) {
	inst := "keepalived: {vrrpInstances: [{virtualIPs: [192.0.2.100/24], authPass: x}]}"
	for _, tc := range []struct {
		name, doc string
		err       string // "" : runnable
		disabled  bool
	}{
		{"section alone", "enabled: true\n" + inst, "", false},
		{"k0s.yaml", "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec:\n  network:\n    controlPlaneLoadBalancing: {enabled: true, " + inst + "}\n", "", false},
		{"k0sctl without CPLB", "apiVersion: k0sctl.k0sproject.io/v1beta1\nkind: Cluster\nspec:\n  k0s:\n    config:\n      spec:\n        network: {provider: calico}\n",
			"spec.k0s.config.spec.network.controlPlaneLoadBalancing is missing", false},
		{"k0sctl spec null", "apiVersion: k0sctl.k0sproject.io/v1beta1\nkind: Cluster\nspec: null\n",
			"spec.k0s.config.spec.network.controlPlaneLoadBalancing is missing (spec is null)", false},
		{"k0sctl without k0s", "apiVersion: k0sctl.k0sproject.io/v1beta1\nkind: Cluster\nspec: {hosts: []}\n",
			"spec.k0s.config.spec.network.controlPlaneLoadBalancing is missing (spec.k0s is missing)", false},
		{"ClusterConfig spec null", "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec: null\n",
			"spec.network.controlPlaneLoadBalancing is missing (spec is null)", false},
		{"ClusterConfig network missing", "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nspec: {api: {port: 6443}}\n",
			"spec.network.controlPlaneLoadBalancing is missing (spec.network is missing)", false},
		{"NLLB only", "nodeLocalLoadBalancing: {enabled: true}\n", "controlPlaneLoadBalancing is missing", false},
		{"CPLB null", "nodeLocalLoadBalancing: {enabled: true}\ncontrolPlaneLoadBalancing: null\n", "controlPlaneLoadBalancing is null", false},
		{"disabled", "enabled: false\n" + inst,
			"enabled is false: k0s runs no control plane load balancing with this configuration;", true},
		{"disabled by default", "type: Keepalived\n" + inst, "enabled is false", true},
		{"disabled and empty", "enabled: false\nkeepalived: {}\n",
			"enabled is false: k0s runs no control plane load balancing with this configuration, and keepalived.vrrpInstances is empty;", false},
		{"no keepalived", "enabled: true\n", "keepalived is missing: there is no VRRP instance to run", false},
		{"no instances", "controlPlaneLoadBalancing: {enabled: true, keepalived: {vrrpInstances: []}}\n",
			"controlPlaneLoadBalancing.keepalived.vrrpInstances is empty: there is no VRRP instance to run", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, tc.doc)
			err := c.Runnable()
			if tc.err == "" {
				if err != nil || len(c.VRRPInstances()) == 0 {
					t.Errorf("Runnable: %v with %d instances", err, len(c.VRRPInstances()))
				}
				return
			}
			var ne *NothingToRunError
			if !errors.As(err, &ne) {
				t.Fatalf("Runnable: %v, want a *NothingToRunError", err)
			}
			if len(c.VRRPInstances()) != 0 {
				t.Errorf("Runnable says nothing to run, VRRPInstances has %d", len(c.VRRPInstances()))
			}
			if want := "config: nothing to run: " + tc.err; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error\n %s\nwant it to start with\n %s", err, want)
			}
			if !strings.Contains(err.Error(), "; nlb vrrp and nlb controller run the vrrpInstances of a controlPlaneLoadBalancing section with enabled: true") {
				t.Errorf("error lacks the hint: %s", err)
			}
			if got := strings.HasSuffix(err.Error(), "nlb controller "+RunDisabledFlag+" runs them)"); got != tc.disabled {
				t.Errorf("error ends with the %s hint: %v, want %v: %s", RunDisabledFlag, got, tc.disabled, err)
			}
			if ne.Disabled != tc.disabled {
				t.Errorf("Disabled = %v, want %v", ne.Disabled, tc.disabled)
			}
		})
	}
	// A Config built in Go: the zero section is not enabled.
	c := &Config{}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := c.Runnable(); err == nil || !strings.HasPrefix(err.Error(), "config: nothing to run: spec.network.controlPlaneLoadBalancing.enabled is false") {
		t.Errorf("zero Config: %v", err)
	}
}

// TestProblemsKeptBounded: past 1000 problems the rest are counted, not
// kept, so a file of thousands of broken items costs no memory per item
// beyond the decoding.
func TestProblemsKeptBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("enabled: true\nkeepalived:\n  vrrpInstances:\n")
	for range 5000 {
		b.WriteString("  - 1\n")
	}
	_, err := Load(strings.NewReader(b.String()))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %v", err)
	}
	// 5000 "must be an object"; the MaxItems problem and the first 255
	// instances' own problems are hidden behind these decoding problems.
	if len(ve.Problems) != maxKeptProblems || ve.Omitted != 5000-maxKeptProblems {
		t.Errorf("%d problems kept, %d omitted; want %d and %d", len(ve.Problems), ve.Omitted, maxKeptProblems, 5000-maxKeptProblems)
	}
	lines := strings.Split(err.Error(), "\n")
	if want := fmt.Sprintf("config: ... and %d more problems", 5000-MaxReportedProblems); len(lines) != MaxReportedProblems+1 || lines[len(lines)-1] != want {
		t.Errorf("%d lines, last %q; want %d, %q", len(lines), lines[len(lines)-1], MaxReportedProblems+1, want)
	}
	if got := (&ValidationError{Omitted: 3}).Error(); got != "config: ... and 3 more problems" {
		t.Errorf("only omitted problems: %q", got)
	}
}

// TestProblemsCollectorBounded: the collector itself keeps at most
// maxKeptProblems and counts the rest.
func TestProblemsCollectorBounded(t *testing.T) {
	var p problems
	for i := range 3 * maxKeptProblems {
		p.add(index("x", i), "bad")
	}
	if len(p.list) != maxKeptProblems || p.count() != 3*maxKeptProblems {
		t.Errorf("kept %d, counted %d; want %d, %d", len(p.list), p.count(), maxKeptProblems, 3*maxKeptProblems)
	}
	var ve *ValidationError
	if !errors.As(p.err(), &ve) || ve.Omitted != 2*maxKeptProblems {
		t.Errorf("err() = %v", p.err())
	}
}
