package config

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

const adoptionDir = "testdata/k0s-adoption"

// k0sFields reads k0s's CPLB/NLLB field list (testdata, from k0s's
// cplb.go and nllb.go).
func k0sFields(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(adoptionDir, "k0s-fields.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// leafPaths lists the field paths of v below prefix ("[]" for list items).
func leafPaths(prefix string, v any) []string {
	switch x := v.(type) {
	case map[string]any:
		var out []string
		for k, e := range x {
			out = append(out, leafPaths(child(prefix, k), e)...)
		}
		return out
	case []any:
		var out []string
		for _, e := range x {
			if _, ok := e.(map[string]any); ok {
				out = append(out, leafPaths(prefix+"[]", e)...)
			} else {
				out = append(out, prefix) // a list of scalars is one field
			}
		}
		return out
	}
	return []string{prefix}
}

// TestK0sAdoptionRecipe: the recipe's k0s.yaml holds only fields of k0s's
// schema (k0s would accept it), nlb runs it with the overlay and
// --run-disabled-cplb (the overlay's values merged), and README shows
// both files as they are here.
func TestK0sAdoptionRecipe(t *testing.T) {
	k0sPath, ovPath := filepath.Join(adoptionDir, "k0s.yaml"), filepath.Join(adoptionDir, "overlay.yaml")
	raw, err := os.ReadFile(k0sPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	nw := doc["spec"].(map[string]any)["network"].(map[string]any)
	allowed := k0sFields(t)
	for _, sec := range []string{"controlPlaneLoadBalancing", "nodeLocalLoadBalancing"} {
		for _, f := range leafPaths(sec, nw[sec]) {
			if f != sec && !slices.Contains(allowed, f) {
				t.Errorf("%s: %s is not a field of k0s's schema: k0s would refuse the file", k0sPath, f)
			}
		}
	}

	c, err := LoadWithOverlay(k0sPath, ovPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Runnable(); err == nil {
		t.Fatal("Runnable accepts enabled: false without the flag")
	}
	if err := c.RunnableDisabled(); err != nil {
		t.Fatal(err)
	}
	insts := c.VRRPInstances()
	if len(insts) != 1 || insts[0].VRID != 51 || insts[0].Priority != 150 || insts[0].GARP.MasterRefresh != time.Minute {
		t.Fatalf("instances %+v: want VRID 51 priority 150 GARP refresh 1m from the overlay", insts)
	}
	if h := c.Controller().Health; h.Fall != 3 || h.Rise != 5 {
		t.Errorf("health %+v", h)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings %q", w)
	}

	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{k0sPath, ovPath} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(readme), string(b)) {
			t.Errorf("README does not show %s as it is", p)
		}
	}
}

// TestOverlayFieldsComplementK0s: nlb's additions (the overlay's fields)
// are exactly the fields of nlb's schema that k0s's list lacks, so the
// k0s file check and the overlay check split the schema between them.
func TestOverlayFieldsComplementK0s(t *testing.T) {
	k0s := k0sFields(t)
	for _, tc := range []struct {
		typ    reflect.Type
		prefix string
		nlb    []string
	}{
		{reflect.TypeFor[VRRPInstance](), "controlPlaneLoadBalancing.keepalived.vrrpInstances[].", nlbInstanceFields()},
		{reflect.TypeFor[KeepalivedSpec](), "controlPlaneLoadBalancing.keepalived.", nlbKeepalivedFields()},
	} {
		for _, f := range jsonNames(tc.typ, "") {
			inK0s := slices.ContainsFunc(k0s, func(s string) bool {
				return s == tc.prefix+f || strings.HasPrefix(s, tc.prefix+f+".") || strings.HasPrefix(s, tc.prefix+f+"[]")
			})
			if inK0s == slices.Contains(tc.nlb, f) {
				t.Errorf("%s%s: in k0s's schema %v, an nlb addition %v: want exactly one", tc.prefix, f, inK0s, !inK0s)
			}
		}
	}
}

func writeTemp(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const twoInstances = `spec:
  network:
    controlPlaneLoadBalancing:
      enabled: false
      keepalived:
        vrrpInstances:
        - virtualIPs: ["192.0.2.100/24"]
          authPass: a
        - virtualIPs: ["192.0.2.101/24"]
          authPass: b
          interface: eth1
`

// TestOverlayMatch: an entry with virtualRouterID amends the k0s instance
// with that VRID (the 51+index default counts), one without the instance
// at its index; the rest keep their defaults.
func TestOverlayMatch(t *testing.T) {
	dir := t.TempDir()
	k0s := writeTemp(t, dir, "k0s.yaml", twoInstances)
	ov := writeTemp(t, dir, "nlb.yaml", `keepalived:
  steering: nftables
  vrrpInstances:
  - priority: 130
  - virtualRouterID: 52
    priority: 120
    name: second
    preempt: false
`)
	c, err := LoadWithOverlay(k0s, ov)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RunnableDisabled(); err != nil {
		t.Fatal(err)
	}
	in := c.VRRPInstances()
	if len(in) != 2 || in[0].Priority != 130 || in[0].Name != "k0s-vip-0" || !in[0].Preempt ||
		in[1].Priority != 120 || in[1].Name != "second" || in[1].Preempt || in[1].Interface != "eth1" {
		t.Errorf("instances %+v: want [0] by index (priority 130, the rest default), [1] by VRID 52", in)
	}
	if c.Controller().Steering != SteeringNFTables {
		t.Errorf("steering %q", c.Controller().Steering)
	}
}

// TestOverlayProblems: every problem at once, each with its file and its
// path in that file.
func TestOverlayProblems(t *testing.T) {
	dir := t.TempDir()
	k0s := writeTemp(t, dir, "k0s.yaml", twoInstances)
	k0sWithAdditions := writeTemp(t, dir, "k0s-nlb.yaml", strings.Replace(twoInstances, "authPass: a\n",
		"authPass: a\n          priority: 100\n          garp: {masterRepeat: 2}\n", 1)+"")
	for _, tc := range []struct {
		name    string
		k0s     string
		overlay string
		want    []string // "file|path|message part"
	}{
		{"k0s fields in the overlay", k0s, `keepalived:
  userSpaceProxyBindPort: 7000
  vrrpInstances:
  - authPass: x
    virtualIPs: ["192.0.2.9/24"]
    priority: 100
enabled: true
`, []string{
			"nlb.yaml|enabled|a k0s field: it belongs in the k0s configuration",
			"nlb.yaml|keepalived.userSpaceProxyBindPort|a k0s field",
			"nlb.yaml|keepalived.vrrpInstances[0].authPass|a k0s field",
			"nlb.yaml|keepalived.vrrpInstances[0].virtualIPs|a k0s field",
		}},
		{"nlb additions in the k0s file", k0sWithAdditions, `keepalived: {vrrpInstances: [{priority: 90}]}`, []string{
			"k0s-nlb.yaml|spec.network.controlPlaneLoadBalancing.keepalived.vrrpInstances[0].garp|an nlb addition, which k0s refuses",
			"k0s-nlb.yaml|spec.network.controlPlaneLoadBalancing.keepalived.vrrpInstances[0].priority|an nlb addition",
		}},
		{"matching", k0s, `keepalived:
  vrrpInstances:
  - virtualRouterID: 77
  - priority: 100
  - virtualRouterID: 52
  - priority: 100
`, []string{
			"nlb.yaml|keepalived.vrrpInstances[0].virtualRouterID|matches no vrrpInstances entry of the k0s configuration (VRIDs [51 52])",
			"nlb.yaml|keepalived.vrrpInstances[2]|amends the same k0s instance (spec.network.controlPlaneLoadBalancing.keepalived.vrrpInstances[1]) as keepalived.vrrpInstances[1]",
			"nlb.yaml|keepalived.vrrpInstances[3]|matches no vrrpInstances entry: the k0s configuration has 2",
		}},
		{"bad values and unknown fields", k0s, `keepalived:
  steering: xdp
  apiServerHealth: {fall: 0, rise: 500, startupGrace: -1s}
  vrrpInstances:
  - priority: 300
    advertInterval: 100ms
    prioity: 3
`, []string{
			"nlb.yaml|keepalived.vrrpInstances[0].prioity|unknown field",
		}},
		{"bad values, merged", k0s, `keepalived:
  steering: xdp
  apiServerHealth: {rise: 500, startupGrace: -1s}
  vrrpInstances:
  - priority: 300
    advertInterval: 100ms
  - virtualRouterID: 52
    name: k0s-vip-0
`, []string{
			"nlb.yaml|keepalived.vrrpInstances[0].priority|must be between 1 and 255",
			"nlb.yaml|keepalived.vrrpInstances[0].advertInterval|requires vrrpVersion 3",
			"nlb.yaml|keepalived.vrrpInstances[1].name|duplicate of",
			"nlb.yaml|keepalived.steering|must be one of",
			"nlb.yaml|keepalived.apiServerHealth.rise|must be between 1 and 100",
			"nlb.yaml|keepalived.apiServerHealth.startupGrace|must be between 0s and 24h",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ov := writeTemp(t, dir, "nlb.yaml", tc.overlay)
			_, err := LoadWithOverlay(tc.k0s, ov)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v, want a *ValidationError", err)
			}
			var got []string
			for _, fe := range ve.Problems {
				got = append(got, filepath.Base(fe.File)+"|"+fe.Path+"|"+fe.Message)
				if !strings.Contains(err.Error(), fe.File+": "+fe.Path+": ") {
					t.Errorf("Error() lacks %q", fe.File+": "+fe.Path)
				}
			}
			for _, w := range tc.want {
				if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
					t.Errorf("no problem %q in\n%s", w, strings.Join(got, "\n"))
				}
			}
			if len(got) < len(tc.want) {
				t.Errorf("%d problems, want at least %d", len(got), len(tc.want))
			}
		})
	}
}

// TestOverlayBounded: an overlay with thousands of broken entries keeps
// at most maxKeptProblems and counts the rest.
func TestOverlayBounded(t *testing.T) {
	dir := t.TempDir()
	k0s := writeTemp(t, dir, "k0s.yaml", twoInstances)
	var b strings.Builder
	b.WriteString("keepalived:\n  vrrpInstances:\n")
	for range 3000 {
		b.WriteString("  - {authPass: x}\n")
	}
	_, err := LoadWithOverlay(k0s, writeTemp(t, dir, "nlb.yaml", b.String()))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v", err)
	}
	if len(ve.Problems) != maxKeptProblems || ve.Omitted == 0 {
		t.Errorf("%d problems kept, %d omitted", len(ve.Problems), ve.Omitted)
	}
	if n := strings.Count(err.Error(), "\n"); n > MaxReportedProblems {
		t.Errorf("Error() has %d lines", n+1)
	}
}

// TestRunnableDisabled: --run-disabled-cplb refuses enabled: true (k0s
// would run its own keepalived) and a section without instances.
func TestRunnableDisabled(t *testing.T) {
	on := mustLoad(t, strings.Replace(twoInstances, "enabled: false", "enabled: true", 1))
	var fe *FieldError
	if err := on.RunnableDisabled(); !errors.As(err, &fe) || fe.Path != "spec.network.controlPlaneLoadBalancing.enabled" {
		t.Errorf("enabled: true: %v, want an error naming the field", err)
	}
	empty := mustLoad(t, "spec: {network: {controlPlaneLoadBalancing: {enabled: false, keepalived: {}}}}")
	var nt *NothingToRunError
	if err := empty.RunnableDisabled(); !errors.As(err, &nt) {
		t.Errorf("no instances: %v, want nothing to run", err)
	}
}
