package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/nlb-dev/nlb/input"
)

// Overlay is an nlb overlay file: nlb's additions to the
// controlPlaneLoadBalancing section of a k0s configuration that k0s itself
// reads. k0s decodes its configuration strictly (k0s
// internal/pkg/strictyaml), so a k0s.yaml holding nlb's fields inside
// vrrpInstances would be refused by k0s; with an overlay, the k0s file
// keeps k0s's fields only and stays the one source of the VIPs, VRIDs,
// interfaces, peers and passwords, and the overlay holds only what k0s
// does not have. See LoadWithOverlay for the merge rule.
//
//	keepalived:
//	  steering: auto
//	  apiServerHealth: {fall: 3, rise: 5}
//	  vrrpInstances:
//	  - virtualRouterID: 51   # matches k0s's instance with VRID 51 (after k0s's 51+index default)
//	    priority: 150
//	    preempt: false
//	  - priority: 120         # no virtualRouterID: matches k0s's instance at the same index (1)
type Overlay struct {
	// Keepalived holds the additions to ...controlPlaneLoadBalancing.keepalived.
	Keepalived *OverlayKeepalived `json:"keepalived,omitempty"`
}

// OverlayKeepalived is the overlay of the keepalived section: nlb's
// section-wide additions and one entry per VRRP instance to amend.
type OverlayKeepalived struct {
	// Steering is KeepalivedSpec.Steering.
	Steering string `json:"steering,omitempty"`
	// APIServerHealth is KeepalivedSpec.APIServerHealth.
	APIServerHealth *APIServerHealthSpec `json:"apiServerHealth,omitempty"`
	// VRRPInstances amend k0s's vrrpInstances, matched by
	// virtualRouterID or by index.
	VRRPInstances []OverlayInstance `json:"vrrpInstances,omitempty"`
}

// OverlayInstance amends one of k0s's vrrpInstances with nlb's additions
// (the VRRPInstance fields of the same names).
type OverlayInstance struct {
	// VirtualRouterID selects the k0s instance with this VRID (k0s's
	// value, or its default 51+index). It is a match key only: the VRID
	// itself stays k0s's. 0: the k0s instance at the same index.
	VirtualRouterID int32 `json:"virtualRouterID,omitempty"`

	Name           string    `json:"name,omitempty"`
	Priority       int32     `json:"priority,omitempty"`
	Preempt        *bool     `json:"preempt,omitempty"`
	PreemptDelay   Duration  `json:"preemptDelay,omitzero"`
	VRRPVersion    int32     `json:"vrrpVersion,omitempty"`
	AdvertInterval Duration  `json:"advertInterval,omitzero"`
	V3ChecksumAsV2 bool      `json:"v3ChecksumAsV2,omitempty"`
	GARP           *GARPSpec `json:"garp,omitempty"`
}

// nlbInstanceFields are the JSON names of nlb's additions to a
// vrrpInstances entry: OverlayInstance's fields but the match key.
func nlbInstanceFields() []string {
	return jsonNames(reflect.TypeFor[OverlayInstance](), "virtualRouterID")
}

// nlbKeepalivedFields are nlb's additions to the keepalived section.
func nlbKeepalivedFields() []string {
	return jsonNames(reflect.TypeFor[OverlayKeepalived](), "vrrpInstances")
}

func jsonNames(t reflect.Type, skip string) []string {
	var out []string
	for i := range t.NumField() {
		if n := jsonName(t.Field(i)); n != "" && n != skip {
			out = append(out, n)
		}
	}
	return out
}

// LoadWithOverlay loads the k0s configuration at k0sPath (any form Load
// accepts) and merges the nlb overlay at overlayPath into it:
//
//   - The k0s file must hold k0s's fields only: an nlb addition in its
//     controlPlaneLoadBalancing (name, priority, preempt, ... in a
//     vrrpInstances entry; steering or apiServerHealth in keepalived) is
//     an error, since k0s would refuse the file.
//   - The overlay holds nlb's additions only: one of k0s's fields in it is
//     an error naming the k0s file as its place.
//   - An overlay vrrpInstances entry with virtualRouterID amends the k0s
//     instance with that VRID (k0s's default 51+index counts); one without
//     amends the k0s instance at its own index. An entry matching no
//     instance, or an instance already amended, or a VRID two k0s
//     instances share, is an error.
//   - The overlay's values replace the defaults; then the merged
//     configuration is validated as one.
//
// Both files are read with the same bound (input.MaxConfigSize). Every
// problem is reported at once in one *ValidationError, each FieldError
// naming its file (FieldError.File) and its path in that file.
func LoadWithOverlay(k0sPath, overlayPath string) (*Config, error) {
	data, err := input.ReadFile(k0sPath, input.MaxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := load(data)
	if err != nil {
		return nil, inFile(err, k0sPath)
	}
	var p problems
	c.rejectAdditions(&p, data, k0sPath, overlayPath)

	odata, err := input.ReadFile(overlayPath, input.MaxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("config: overlay: %w", err)
	}
	ov, err := decodeOverlay(&p, odata, overlayPath, k0sPath)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, overlayPath)
	}
	if p.count() > 0 {
		return nil, p.err()
	}
	route := c.mergeOverlay(&p, ov, k0sPath, overlayPath)
	if p.count() > 0 {
		return nil, p.err()
	}
	var vp problems
	c.check(&vp)
	for _, fe := range vp.list {
		fe.File, fe.Path = route(fe.Path)
	}
	vp.omitted += p.omitted
	if err := vp.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// inFile names path as the file of every problem of a *ValidationError,
// or in a plain error's text.
func inFile(err error, path string) error {
	var ve *ValidationError
	if errors.As(err, &ve) {
		for _, fe := range ve.Problems {
			fe.File = path
		}
		return ve
	}
	return fmt.Errorf("%w (in %s)", err, path)
}

// cplbSection returns the generic controlPlaneLoadBalancing object of the
// document data, found by c.Form's path; nil when there is none.
func (c *Config) cplbSection(data []byte) map[string]any {
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil
	}
	v, err := decodeGeneric(j)
	if err != nil {
		return nil
	}
	m, _ := v.(map[string]any)
	if path := c.Form.cplbPath(); path != "" {
		for _, k := range strings.Split(path, ".") {
			m, _ = m[k].(map[string]any)
		}
	}
	return m
}

// rejectAdditions reports every nlb addition in the k0s file's
// controlPlaneLoadBalancing section: k0s refuses them.
func (c *Config) rejectAdditions(p *problems, data []byte, k0sPath, overlayPath string) {
	ka, _ := c.cplbSection(data)["keepalived"].(map[string]any)
	if ka == nil {
		return
	}
	kpath := child(c.Form.cplbPath(), "keepalived")
	msg := "an nlb addition, which k0s refuses (it decodes its configuration strictly): move it to the overlay " + overlayPath
	for _, k := range sortedKeys(ka) {
		if slices.Contains(nlbKeepalivedFields(), k) {
			p.addIn(k0sPath, child(kpath, k), msg)
		}
	}
	insts, _ := ka["vrrpInstances"].([]any)
	for i, e := range insts {
		m, _ := e.(map[string]any)
		for _, k := range sortedKeys(m) {
			if slices.Contains(nlbInstanceFields(), k) {
				p.addIn(k0sPath, child(index(child(kpath, "vrrpInstances"), i), k), msg)
			}
		}
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// decodeOverlay decodes the overlay strictly: a k0s field is reported as
// belonging in the k0s file, anything else unknown as unknown.
func decodeOverlay(p *problems, data []byte, path, k0sPath string) (*Overlay, error) {
	if err := input.OneYAMLDocument(data); err != nil {
		return nil, fmt.Errorf("config: overlay: %w", err)
	}
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("config: overlay: %w", err)
	}
	v, err := decodeGeneric(j)
	if err != nil {
		return nil, fmt.Errorf("config: overlay: %w", err)
	}
	ov := &Overlay{}
	if v == nil {
		return ov, nil // an empty overlay amends nothing
	}
	top, ok := v.(map[string]any)
	if !ok {
		p.addIn(path, "", "the overlay must be a mapping with the key keepalived, got "+describe(v))
		return ov, nil
	}
	k0sMsg := "a k0s field: it belongs in the k0s configuration " + k0sPath + " (the overlay holds nlb's additions only)"
	for _, k := range sortedKeys(top) {
		switch k {
		case "keepalived":
		case "enabled", "type":
			p.addIn(path, k, k0sMsg)
			delete(top, k)
		}
	}
	if ka, ok := top["keepalived"].(map[string]any); ok {
		k0sKeepalived := jsonNames(reflect.TypeFor[KeepalivedSpec](), "")
		for _, k := range sortedKeys(ka) {
			if k != "vrrpInstances" && slices.Contains(k0sKeepalived, k) && !slices.Contains(nlbKeepalivedFields(), k) {
				p.addIn(path, child("keepalived", k), k0sMsg)
				delete(ka, k)
			}
		}
		k0sInstance := jsonNames(reflect.TypeFor[VRRPInstance](), "virtualRouterID")
		insts, _ := ka["vrrpInstances"].([]any)
		for i, e := range insts {
			m, _ := e.(map[string]any)
			for _, k := range sortedKeys(m) {
				if slices.Contains(k0sInstance, k) && !slices.Contains(nlbInstanceFields(), k) {
					p.addIn(path, child(index("keepalived.vrrpInstances", i), k), k0sMsg)
					delete(m, k)
				}
			}
		}
	}
	var dp problems
	decodeField(&dp, "", top, ov, true)
	for _, fe := range dp.list {
		p.addIn(path, fe.Path, fe.Message)
	}
	p.omitted += dp.omitted
	return ov, nil
}

// mergeOverlay applies ov to c's instances and keepalived section under
// LoadWithOverlay's rule. It returns route, which maps a path of the
// merged configuration to the file and path the value came from.
func (c *Config) mergeOverlay(p *problems, ov *Overlay, k0sPath, path string) (route func(string) (file, path string)) {
	type origin struct{ merged, overlay string }
	var origins []origin
	kpath := child(c.Form.cplbPath(), "keepalived")
	route = func(pth string) (string, string) {
		for _, o := range origins {
			if pth == o.merged || strings.HasPrefix(pth, o.merged+".") || strings.HasPrefix(pth, o.merged+"[") {
				return path, o.overlay + pth[len(o.merged):]
			}
		}
		return k0sPath, pth
	}
	if ov.Keepalived == nil {
		return route
	}
	ok := ov.Keepalived
	ka := c.ControlPlaneLoadBalancing.Keepalived
	if ka == nil {
		if ok.Steering != "" || ok.APIServerHealth != nil || len(ok.VRRPInstances) > 0 {
			p.addIn(path, "keepalived", "the k0s configuration has no "+kpath+" section to amend")
		}
		return route
	}
	if ok.Steering != "" {
		ka.Steering = ok.Steering
		origins = append(origins, origin{child(kpath, "steering"), "keepalived.steering"})
	}
	if ok.APIServerHealth != nil {
		ka.APIServerHealth = ok.APIServerHealth
		origins = append(origins, origin{child(kpath, "apiServerHealth"), "keepalived.apiServerHealth"})
	}
	amended := map[int]int{} // k0s index -> overlay index
	for j, oi := range ok.VRRPInstances {
		opath := index("keepalived.vrrpInstances", j)
		i := j
		if oi.VirtualRouterID != 0 {
			var found []int
			for k, in := range ka.VRRPInstances {
				if in.VirtualRouterID == oi.VirtualRouterID {
					found = append(found, k)
				}
			}
			switch len(found) {
			case 0:
				p.addIn(path, child(opath, "virtualRouterID"), fmt.Sprintf("matches no vrrpInstances entry of the k0s configuration (VRIDs %v)", vrids(ka)))
				continue
			case 1:
				i = found[0]
			default:
				p.addIn(path, child(opath, "virtualRouterID"), fmt.Sprintf("matches %d vrrpInstances entries of the k0s configuration (%v): leave virtualRouterID out and match by index", len(found), found))
				continue
			}
		} else if j >= len(ka.VRRPInstances) {
			p.addIn(path, opath, fmt.Sprintf("matches no vrrpInstances entry: the k0s configuration has %d; give virtualRouterID or keep the overlay's order", len(ka.VRRPInstances)))
			continue
		}
		if prev, dup := amended[i]; dup {
			p.addIn(path, opath, fmt.Sprintf("amends the same k0s instance (%s) as %s", index(child(kpath, "vrrpInstances"), i), index("keepalived.vrrpInstances", prev)))
			continue
		}
		amended[i] = j
		in := &ka.VRRPInstances[i]
		mpath := index(child(kpath, "vrrpInstances"), i)
		for _, f := range nlbInstanceFields() {
			origins = append(origins, origin{child(mpath, f), child(opath, f)})
		}
		if oi.Name != "" {
			in.Name = oi.Name
		}
		if oi.Priority != 0 {
			in.Priority = oi.Priority
		}
		if oi.Preempt != nil {
			in.Preempt = oi.Preempt
		}
		if oi.PreemptDelay != 0 {
			in.PreemptDelay = oi.PreemptDelay
		}
		if oi.VRRPVersion != 0 {
			in.VRRPVersion = oi.VRRPVersion
		}
		if oi.AdvertInterval != 0 {
			in.AdvertInterval = oi.AdvertInterval
		}
		if oi.V3ChecksumAsV2 {
			in.V3ChecksumAsV2 = true
		}
		if oi.GARP != nil {
			in.GARP = oi.GARP
		}
	}
	return route
}

func vrids(ka *KeepalivedSpec) []int32 {
	out := make([]int32, len(ka.VRRPInstances))
	for i, in := range ka.VRRPInstances {
		out[i] = in.VirtualRouterID
	}
	return out
}
