package config

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/nlb-dev/nlb/input"
)

// Form is the shape of the document Load was given. It decides where field
// paths in errors start (see the package doc).
type Form int

// The accepted document shapes.
const (
	// FormClusterConfig is a k0s ClusterConfig (k0s.yaml): apiVersion
	// k0s.k0sproject.io/v1beta1, kind ClusterConfig, metadata, spec. Paths
	// start at the document root: "spec.network.controlPlaneLoadBalancing...".
	// It is the zero value, so a Config built in Go reports full paths.
	FormClusterConfig Form = iota
	// FormK0sctl is a k0sctl Cluster (apiVersion k0sctl.k0sproject.io/...,
	// kind Cluster) whose spec.k0s.config holds the ClusterConfig. Paths
	// start at the document root: "spec.k0s.config.spec.network...".
	FormK0sctl
	// FormSpec is the body of a ClusterConfig's spec (top-level "network",
	// "api", ...). Paths start with "network." and "api.".
	FormSpec
	// FormNetwork is the body of spec.network (top-level
	// "controlPlaneLoadBalancing" and/or "nodeLocalLoadBalancing"). Paths
	// start with "controlPlaneLoadBalancing.".
	FormNetwork
	// FormCPLB is the controlPlaneLoadBalancing section alone (top-level
	// "enabled", "type", "keepalived"). Paths start inside it:
	// "keepalived.vrrpInstances[0].authPass".
	FormCPLB
)

// String names the form.
func (f Form) String() string {
	switch f {
	case FormClusterConfig:
		return "k0s ClusterConfig"
	case FormK0sctl:
		return "k0sctl Cluster"
	case FormSpec:
		return "ClusterConfig spec"
	case FormNetwork:
		return "ClusterConfig spec.network"
	case FormCPLB:
		return "controlPlaneLoadBalancing section"
	default:
		return fmt.Sprintf("Form(%d)", int(f))
	}
}

// specPath is where ClusterConfig.spec sits in the document; ok is false
// for forms without a spec.
func (f Form) specPath() (path string, ok bool) {
	switch f {
	case FormClusterConfig:
		return "spec", true
	case FormK0sctl:
		return "spec.k0s.config.spec", true
	case FormSpec:
		return "", true
	default:
		return "", false
	}
}

func (f Form) networkPath() (string, bool) {
	if f == FormNetwork {
		return "", true
	}
	if sp, ok := f.specPath(); ok {
		return child(sp, "network"), true
	}
	return "", false
}

func (f Form) cplbPath() string {
	if np, ok := f.networkPath(); ok {
		return child(np, "controlPlaneLoadBalancing")
	}
	return ""
}

func (f Form) nllbPath() string {
	np, _ := f.networkPath()
	return child(np, "nodeLocalLoadBalancing")
}

func (f Form) apiPath() string {
	sp, _ := f.specPath()
	return child(sp, "api")
}

// Config is a decoded, defaulted and validated nlb configuration in k0s's
// schema. Load and LoadFile build it; a Config built in Go must be checked
// with Validate before use.
type Config struct {
	// Form is the shape of the document the configuration came from.
	Form Form
	// API holds spec.api.port and spec.api.externalAddress; zero for forms
	// without spec.api.
	API APISpec
	// Konnectivity holds spec.konnectivity.agentPort; zero for forms
	// without spec.konnectivity.
	Konnectivity KonnectivitySpec
	// ControlPlaneLoadBalancing is spec.network.controlPlaneLoadBalancing.
	ControlPlaneLoadBalancing ControlPlaneLoadBalancing
	// NodeLocalLoadBalancing is spec.network.nodeLocalLoadBalancing.
	NodeLocalLoadBalancing NodeLocalLoadBalancing

	warnings  []string
	instances []Instance
	// absent is the field on the way to controlPlaneLoadBalancing that
	// the document lacks or sets to null ("" when the section is there
	// or the Config was built in Go); absentNull tells which.
	absent     string
	absentNull bool
}

// k0s ClusterConfig identifiers (k0s clusterconfig_types.go).
const (
	clusterConfigAPIVersion = "k0s.k0sproject.io/v1beta1"
	clusterConfigKind       = "ClusterConfig"
	k0sctlAPIGroup          = "k0sctl.k0sproject.io/"
	k0sctlKind              = "Cluster"
)

// LoadFile reads and loads the YAML or JSON file at path; see Load. A file
// larger than input.MaxConfigSize (1 MiB) is refused without reading
// further: "config: PATH is larger than 1 MiB".
func LoadFile(path string) (*Config, error) {
	b, err := input.ReadFile(path, input.MaxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := load(b)
	if err != nil && !isValidation(err) {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return c, err
}

func isValidation(err error) bool {
	_, ok := err.(*ValidationError)
	return ok
}

// Load reads and decodes a YAML (or JSON) document, fills in defaults and validates
// it. The document is a k0s ClusterConfig, a k0sctl Cluster, the body of
// spec or spec.network, or the controlPlaneLoadBalancing section alone,
// recognised by its top-level keys (see Form). Fields k0s has outside the
// sections nlb owns are accepted and ignored; unknown fields inside
// controlPlaneLoadBalancing and nodeLocalLoadBalancing are errors.
//
// The data must hold one YAML document (a second, non-empty one is an
// error, not ignored) of at most input.MaxConfigSize bytes: Load reads no
// more than that and one byte.
//
// A YAML syntax error is returned as a plain error. Every other problem is
// collected into one *ValidationError, one line per problem.
func Load(r io.Reader) (*Config, error) {
	data, err := input.ReadAll(r, "the document", input.MaxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return load(data)
}

// load is Load on the bytes of one document.
func load(data []byte) (*Config, error) {
	if err := input.OneYAMLDocument(data); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	v, err := decodeGeneric(j)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if v == nil {
		return nil, fmt.Errorf("config: empty document")
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("config: the document must be a mapping, got %s", describe(v))
	}

	var p problems
	c := &Config{}
	switch {
	case isK0sctl(top):
		c.Form = FormK0sctl
		c.loadK0sctl(&p, top)
	case hasAny(top, "apiVersion", "kind", "metadata", "spec"):
		c.Form = FormClusterConfig
		c.loadClusterConfig(&p, top, "")
	case hasAny(top, "network", "api"):
		c.Form = FormSpec
		c.loadSpec(&p, top, "")
	case hasAny(top, "controlPlaneLoadBalancing", "nodeLocalLoadBalancing"):
		c.Form = FormNetwork
		c.loadNetwork(&p, top, "")
	case hasAny(top, "enabled", "type", "keepalived"):
		c.Form = FormCPLB
		decodeField(&p, "", top, &c.ControlPlaneLoadBalancing, true)
	default:
		keys := make([]string, 0, len(top))
		for k := range top {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return nil, fmt.Errorf("config: unrecognised document with top-level keys %s: want a k0s ClusterConfig, "+
			"a k0sctl Cluster, or a controlPlaneLoadBalancing section", strings.Join(keys, ", "))
	}

	decodeErrs := p.list
	var vp problems
	c.check(&vp)
	p.list = append(decodeErrs, suppressed(vp.list, decodeErrs)...)
	p.omitted += vp.omitted
	if extra := len(p.list) - maxKeptProblems; extra > 0 {
		p.list, p.omitted = p.list[:maxKeptProblems], p.omitted+extra
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// suppressed drops validation problems about fields that failed to decode:
// their zero value would only repeat the decoding problem.
func suppressed(list, decodeErrs []*FieldError) []*FieldError {
	out := list[:0:0]
	for _, fe := range list {
		hidden := false
		for _, de := range decodeErrs {
			if fe.Path == de.Path || strings.HasPrefix(fe.Path, de.Path+".") ||
				strings.HasPrefix(fe.Path, de.Path+"[") || strings.HasPrefix(de.Path, fe.Path+"[") {
				hidden = true
				break
			}
		}
		if !hidden {
			out = append(out, fe)
		}
	}
	return out
}

func hasAny(m map[string]any, keys ...string) bool {
	for _, k := range keys {
		if _, ok := m[k]; ok {
			return true
		}
	}
	return false
}

// isK0sctl recognises a k0sctl Cluster by its apiVersion or, for a
// snippet without one, by spec.k0s (a ClusterConfig spec has no "k0s").
func isK0sctl(top map[string]any) bool {
	av, _ := top["apiVersion"].(string)
	if strings.HasPrefix(av, k0sctlAPIGroup) {
		return true
	}
	if _, ok := top["apiVersion"]; ok {
		return false
	}
	spec, _ := top["spec"].(map[string]any)
	_, ok := spec["k0s"]
	return ok
}

// object returns m[key] as an object; a missing or null key is an empty
// object, anything else a problem.
func object(p *problems, m map[string]any, key, path string) (map[string]any, bool) {
	v, ok := m[key]
	if !ok || v == nil {
		return nil, false
	}
	o, ok := v.(map[string]any)
	if !ok {
		p.add(path, "must be an object, got "+describe(v))
		return nil, false
	}
	return o, true
}

// noteAbsent records that m[key], at path, is on the way to
// controlPlaneLoadBalancing and is missing or null (for Runnable).
func (c *Config) noteAbsent(m map[string]any, key, path string) {
	if c.absent != "" {
		return
	}
	v, ok := m[key]
	if !ok || v == nil {
		c.absent, c.absentNull = path, ok
	}
}

func (c *Config) loadK0sctl(p *problems, top map[string]any) {
	if k, ok := top["kind"]; ok && k != k0sctlKind {
		p.add("kind", fmt.Sprintf("must be %q for apiVersion %s, got %s", k0sctlKind, top["apiVersion"], describe(k)))
	}
	spec, ok := object(p, top, "spec", "spec")
	if !ok {
		c.noteAbsent(top, "spec", "spec")
		return
	}
	k0s, ok := object(p, spec, "k0s", "spec.k0s")
	if !ok {
		c.noteAbsent(spec, "k0s", "spec.k0s")
		return
	}
	cfg, ok := object(p, k0s, "config", "spec.k0s.config")
	if !ok {
		c.noteAbsent(k0s, "config", "spec.k0s.config")
		return
	}
	c.loadClusterConfig(p, cfg, "spec.k0s.config")
}

func (c *Config) loadClusterConfig(p *problems, top map[string]any, path string) {
	if v, ok := top["apiVersion"]; ok && v != clusterConfigAPIVersion {
		p.add(child(path, "apiVersion"), fmt.Sprintf("must be %q, got %s", clusterConfigAPIVersion, describe(v)))
	}
	if v, ok := top["kind"]; ok && v != clusterConfigKind {
		p.add(child(path, "kind"), fmt.Sprintf("must be %q, got %s", clusterConfigKind, describe(v)))
	}
	var unknown []string
	for k := range top {
		switch k {
		case "apiVersion", "kind", "metadata", "spec", "status":
		default:
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		p.add(child(path, k), "unknown field")
	}
	if spec, ok := object(p, top, "spec", child(path, "spec")); ok {
		c.loadSpec(p, spec, child(path, "spec"))
	} else {
		c.noteAbsent(top, "spec", child(path, "spec"))
	}
}

func (c *Config) loadSpec(p *problems, spec map[string]any, path string) {
	if api, ok := object(p, spec, "api", child(path, "api")); ok {
		// Only port and externalAddress are nlb's business; the rest of
		// spec.api is k0s's and is ignored.
		decodeField(p, child(path, "api"), api, &c.API, false)
	}
	if kn, ok := object(p, spec, "konnectivity", child(path, "konnectivity")); ok {
		// Only agentPort is nlb's business (the NLLB konnectivity
		// upstream port); the rest is k0s's.
		decodeField(p, child(path, "konnectivity"), kn, &c.Konnectivity, false)
	}
	if nw, ok := object(p, spec, "network", child(path, "network")); ok {
		c.loadNetwork(p, nw, child(path, "network"))
	} else {
		c.noteAbsent(spec, "network", child(path, "network"))
	}
}

func (c *Config) loadNetwork(p *problems, nw map[string]any, path string) {
	c.noteAbsent(nw, "controlPlaneLoadBalancing", child(path, "controlPlaneLoadBalancing"))
	if v, ok := nw["controlPlaneLoadBalancing"]; ok {
		decodeField(p, child(path, "controlPlaneLoadBalancing"), v, &c.ControlPlaneLoadBalancing, true)
	}
	if v, ok := nw["nodeLocalLoadBalancing"]; ok {
		decodeField(p, child(path, "nodeLocalLoadBalancing"), v, &c.NodeLocalLoadBalancing, true)
	}
}
