package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/vrrp"
)

const testdataDir = "../testdata/config"

func mustLoad(t *testing.T, doc string) *Config {
	t.Helper()
	c, err := Load(strings.NewReader(doc))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func paths(t *testing.T, err error) []string {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want *ValidationError, got %T: %v", err, err)
	}
	return ve.Paths()
}

func TestTestdataValid(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testdataDir, "valid", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no valid testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := LoadFile(f)
			if err != nil {
				t.Fatalf("LoadFile: %v", err)
			}
			// Validate is idempotent on a loaded config.
			before := c.VRRPInstances()
			if err := c.Validate(); err != nil {
				t.Fatalf("second Validate: %v", err)
			}
			if after := c.VRRPInstances(); fmt.Sprint(before) != fmt.Sprint(after) {
				t.Errorf("instances changed on re-validation:\n%v\n%v", before, after)
			}
		})
	}
}

func TestTestdataInvalid(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testdataDir, "invalid", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no invalid testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want := readErrFile(t, strings.TrimSuffix(f, ".yaml")+".err")
			_, err := LoadFile(f)
			if err == nil {
				t.Fatal("LoadFile succeeded")
			}
			got := paths(t, err)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("paths:\n got %q\nwant %q\nerror:\n%v", got, want, err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "config: ") {
					t.Errorf("line without prefix: %q", line)
				}
			}
		})
	}
}

// readErrFile reads the expected field paths, one per line; # starts a comment.
func readErrFile(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("sidecar: %v", err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func TestDefaults(t *testing.T) {
	c := mustLoad(t, `
spec:
  network:
    controlPlaneLoadBalancing:
      enabled: true
      keepalived:
        vrrpInstances:
        - virtualIPs: ["192.0.2.100/24"]
          authPass: pass
        - virtualIPs: ["2001:db8::100/64"]
          authPass: v6
        - virtualIPs: ["198.51.100.100/24"]
          authPass: "12345678"
          interface: eth1
`)
	if c.Form != FormClusterConfig {
		t.Errorf("Form = %v", c.Form)
	}
	if c.ControlPlaneLoadBalancing.Type != CPLBTypeKeepalived {
		t.Errorf("Type = %q", c.ControlPlaneLoadBalancing.Type)
	}
	if got := c.ControlPlaneLoadBalancing.Keepalived.UserSpaceProxyPort; got != 6444 {
		t.Errorf("UserSpaceProxyPort = %d", got)
	}
	if got := c.APIPort(); got != 6443 {
		t.Errorf("APIPort = %d", got)
	}
	insts := c.VRRPInstances()
	if len(insts) != 3 {
		t.Fatalf("%d instances", len(insts))
	}
	for i, in := range insts {
		if want := uint8(51 + i); in.VRID != want {
			t.Errorf("[%d] VRID = %d, want %d", i, in.VRID, want)
		}
		if want := fmt.Sprintf("k0s-vip-%d", i); in.Name != want {
			t.Errorf("[%d] Name = %q", i, in.Name)
		}
		if in.Priority != 200 || !in.Preempt || in.PreemptDelay != 0 {
			t.Errorf("[%d] priority/preempt = %d %v %v", i, in.Priority, in.Preempt, in.PreemptDelay)
		}
		if in.Interval != time.Second {
			t.Errorf("[%d] Interval = %v", i, in.Interval)
		}
		if in.GARP != DefaultGARP() {
			t.Errorf("[%d] GARP = %+v", i, in.GARP)
		}
		if in.AddressLabel != 10000 {
			t.Errorf("[%d] AddressLabel = %d", i, in.AddressLabel)
		}
		if in.ChecksumForm != vrrp.ChecksumPseudoHeader {
			t.Errorf("[%d] ChecksumForm = %v", i, in.ChecksumForm)
		}
		if in.UnicastSource.IsValid() || len(in.UnicastPeers) != 0 {
			t.Errorf("[%d] unicast set: %v %v", i, in.UnicastSource, in.UnicastPeers)
		}
	}
	v4, v6 := insts[0], insts[1]
	if v4.Version != vrrp.Version2 || v4.IPv6 || v4.AuthType != vrrp.AuthPassword || v4.AuthData != [8]byte{'p', 'a', 's', 's'} {
		t.Errorf("IPv4 instance: %+v", v4)
	}
	if v6.Version != vrrp.Version3 || !v6.IPv6 || v6.AuthType != vrrp.AuthNone || v6.AuthData != [8]byte{} {
		t.Errorf("IPv6 instance: %+v", v6)
	}
	if insts[2].AuthData != [8]byte{'1', '2', '3', '4', '5', '6', '7', '8'} || insts[2].Interface != "eth1" {
		t.Errorf("instance 2: %+v", insts[2])
	}
	if want := []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24")}; !slices.Equal(v4.VIPs, want) {
		t.Errorf("VIPs = %v", v4.VIPs)
	}
	// k0s writes defaults back into the spec; so do we.
	spec := c.ControlPlaneLoadBalancing.Keepalived.VRRPInstances[1]
	if spec.VirtualRouterID != 52 || spec.AdvertIntervalSeconds != 1 || spec.AddressLabel != 10000 || spec.Priority != 200 || spec.VRRPVersion != 3 {
		t.Errorf("spec defaults not written back: %+v", spec)
	}
	// NLLB defaults even when absent.
	if a, k := c.NodeLocalLoadBalancing.BindPorts(); a != 7443 || k != 7132 {
		t.Errorf("NLLB ports = %d %d", a, k)
	}
	if c.NodeLocalLoadBalancing.Type != NLLBTypeEnvoyProxy {
		t.Errorf("NLLB type = %q", c.NodeLocalLoadBalancing.Type)
	}
}

func TestExtensions(t *testing.T) {
	c, err := LoadFile(filepath.Join(testdataDir, "valid", "nlb-v3-100ms.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	in := c.VRRPInstances()[0]
	want := Instance{
		Name: "api-vip", Interface: "eth0", VRID: 10, Priority: 150, Preempt: false,
		Version: vrrp.Version3, Interval: 100 * time.Millisecond, AuthType: vrrp.AuthNone,
		VIPs:         []netip.Prefix{netip.MustParsePrefix("192.0.2.100/24")},
		ChecksumForm: vrrp.ChecksumMessageOnly,
		GARP: GARP{MasterDelay: time.Second, MasterRepeat: 3, MasterRefresh: time.Minute,
			MasterRefreshRepeat: 2, Interval: 10 * time.Millisecond},
		AddressLabel: 10000,
	}
	if fmt.Sprintf("%+v", in) != fmt.Sprintf("%+v", want) {
		t.Errorf("got  %+v\nwant %+v", in, want)
	}

	c, err = LoadFile(filepath.Join(testdataDir, "valid", "nlb-ipv6.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	in = c.VRRPInstances()[0]
	if in.Version != vrrp.Version3 || in.Interval != 500*time.Millisecond || in.AddressLabel != 20000 ||
		in.UnicastSource != netip.MustParseAddr("2001:db8::11") || len(in.UnicastPeers) != 2 ||
		in.AuthType != vrrp.AuthNone || in.Interface != "02:42:ac:11:00:02" {
		t.Errorf("IPv6 instance: %+v", in)
	}
}

func TestMultiInstanceAndUnrelatedFields(t *testing.T) {
	c, err := LoadFile(filepath.Join(testdataDir, "valid", "nlb-multi-instance.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	insts := c.VRRPInstances()
	if len(insts) != 3 || len(insts[1].VIPs) != 3 || insts[1].Interval != 2*time.Second || !insts[2].IPv6 {
		t.Errorf("instances: %+v", insts)
	}
	if c.NodeLocalLoadBalancing.Type != NLLBTypeTraefik || !c.NodeLocalLoadBalancing.Enabled {
		t.Errorf("NLLB: %+v", c.NodeLocalLoadBalancing)
	}
	if c.NodeLocalLoadBalancing.EnvoyProxy != nil {
		t.Error("envoyProxy defaulted although type is Traefik")
	}
	// Arbitrary k0s fields outside our sections are ignored, at any depth.
	mustLoad(t, `
apiVersion: k0s.k0sproject.io/v1beta1
kind: ClusterConfig
metadata: {name: k0s, labels: {a: b}}
spec:
  futureField: {x: 1}
  api: {address: 192.0.2.1, sans: [a], tunneledNetworkingMode: false, onlyBindToAddress: true}
  network:
    provider: custom
    dualStack: {enabled: true, IPv6podCIDR: "fd00::/108"}
    somethingNew: 42
`)
}

func TestForms(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		form      Form
		path      string
	}{
		{"section", "enabled: true\nkeepalived:\n  vrrpInstances:\n  - virtualIPs: [192.0.2.1/24]\n",
			FormCPLB, "keepalived.vrrpInstances[0].authPass"},
		{"network", "controlPlaneLoadBalancing:\n  keepalived:\n    vrrpInstances:\n    - virtualIPs: [192.0.2.1/24]\n",
			FormNetwork, "controlPlaneLoadBalancing.keepalived.vrrpInstances[0].authPass"},
		{"spec", "network:\n  controlPlaneLoadBalancing:\n    keepalived:\n      vrrpInstances:\n      - virtualIPs: [192.0.2.1/24]\n",
			FormSpec, "network.controlPlaneLoadBalancing.keepalived.vrrpInstances[0].authPass"},
		{"clusterconfig", "spec:\n  network:\n    controlPlaneLoadBalancing:\n      keepalived:\n        vrrpInstances:\n        - virtualIPs: [192.0.2.1/24]\n",
			FormClusterConfig, "spec.network.controlPlaneLoadBalancing.keepalived.vrrpInstances[0].authPass"},
		{"k0sctl", "apiVersion: k0sctl.k0sproject.io/v1beta1\nkind: Cluster\nspec:\n  k0s:\n    config:\n      spec:\n        network:\n          controlPlaneLoadBalancing:\n            keepalived:\n              vrrpInstances:\n              - virtualIPs: [192.0.2.1/24]\n",
			FormK0sctl, "spec.k0s.config.spec.network.controlPlaneLoadBalancing.keepalived.vrrpInstances[0].authPass"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(strings.NewReader(tc.doc))
			got := paths(t, err)
			if !slices.Equal(got, []string{tc.path}) {
				t.Errorf("paths = %q, want %q", got, tc.path)
			}
			ok := strings.Replace(tc.doc, "- virtualIPs: [192.0.2.1/24]", "- {virtualIPs: [192.0.2.1/24], authPass: x}", 1)
			c := mustLoad(t, ok)
			if c.Form != tc.form {
				t.Errorf("Form = %v, want %v", c.Form, tc.form)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	_, err := Load(strings.NewReader(`
spec:
  network:
    controlPlaneLoadBalancing:
      enabled: true
      keepalived:
        vrrpInstances:
        - virtualIPs: ["192.0.2.100/24"]
          authPass: ok
        - virtualIPs: ["192.0.2.101/24"]
          authPass: "123456789"
          virtualRouterID: 0
          priority: 300
`))
	want := "config: spec.network.controlPlaneLoadBalancing.keepalived.vrrpInstances[1].priority: must be between 1 and 255, inclusive, got 300\n" +
		"config: spec.network.controlPlaneLoadBalancing.keepalived.vrrpInstances[1].authPass: must be 1-8 characters"
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || !strings.HasSuffix(fe.Path, "priority") {
		t.Errorf("errors.As FieldError: %v", fe)
	}
}

func TestAutomaticVRIDExceeded(t *testing.T) {
	var b strings.Builder
	b.WriteString("enabled: true\nkeepalived:\n  vrrpInstances:\n")
	for i := range 206 {
		fmt.Fprintf(&b, "  - {virtualIPs: [10.0.%d.%d/16], authPass: x}\n", i/200, i%200+1)
	}
	_, err := Load(strings.NewReader(b.String()))
	got := paths(t, err)
	if !slices.Equal(got, []string{"keepalived.vrrpInstances[205].virtualRouterID"}) {
		t.Fatalf("paths = %q", got)
	}
	if !strings.Contains(err.Error(), "automatic virtualRouterIDs exceeded, specify them explicitly") {
		t.Errorf("message: %v", err)
	}

	b.Reset()
	b.WriteString("enabled: true\nkeepalived:\n  vrrpInstances:\n")
	for i := range 256 {
		fmt.Fprintf(&b, "  - {virtualIPs: [10.1.%d.%d/16], authPass: x, virtualRouterID: %d}\n", i/200, i%200+1, i%255+1)
	}
	_, err = Load(strings.NewReader(b.String()))
	if got := paths(t, err); !slices.Contains(got, "keepalived.vrrpInstances") {
		t.Errorf("no MaxItems problem: %q", got)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"", "config: empty document"},
		{"# only a comment\n", "config: empty document"},
		{"- a\n- b\n", "must be a mapping"},
		{"foo: 1\n", "unrecognised document with top-level keys foo"},
		{"spec: [\n", "config: yaml:"},
		{"enabled: true\nenabled: false\n", "config:"},
		{"spec: 5\n", "spec: must be an object"},
	} {
		_, err := Load(strings.NewReader(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%q) = %v, want %q", tc.doc, err, tc.want)
		}
	}
	if _, err := LoadFile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.HasPrefix(err.Error(), "config: ") {
		t.Errorf("LoadFile missing: %v", err)
	}
}

func TestWarnings(t *testing.T) {
	c := mustLoad(t, `
spec:
  network:
    controlPlaneLoadBalancing:
      enabled: true
      keepalived:
        configTemplateVRRP: /etc/k0s/vrrp.tmpl
        configTemplateVS: /etc/k0s/vs.tmpl
        vrrpInstances:
        - virtualIPs: ["192.0.2.100/24"]
          authPass: x
          unicastSourceIP: 192.0.2.1
          addressLabel: 5
        virtualServers:
        - ipAddress: 192.0.2.100
`)
	w := strings.Join(c.Warnings(), "\n")
	for _, s := range []string{"configTemplateVRRP: ignored", "configTemplateVS: ignored",
		"unicastSourceIP: ignored", "addressLabel: ignored for IPv4"} {
		if !strings.Contains(w, s) {
			t.Errorf("warnings lack %q:\n%s", s, w)
		}
	}
	vs := c.ControlPlaneLoadBalancing.Keepalived.VirtualServers[0]
	if vs.LBAlgo != "rr" || vs.LBKind != "DR" || vs.PersistenceTimeoutSeconds != 360 || vs.DelayLoop.Std() != time.Minute {
		t.Errorf("virtual server defaults: %+v", vs)
	}
}

func TestDelayLoopTruncated(t *testing.T) {
	c := mustLoad(t, "keepalived:\n  virtualServers:\n  - {ipAddress: 192.0.2.1, delayLoop: 1500ns}\n")
	if got := c.ControlPlaneLoadBalancing.Keepalived.VirtualServers[0].DelayLoop.Std(); got != time.Microsecond {
		t.Errorf("DelayLoop = %v", got)
	}
	_, err := Load(strings.NewReader("keepalived:\n  virtualServers:\n  - {ipAddress: 192.0.2.1, delayLoop: 500ns}\n"))
	if got := paths(t, err); !slices.Equal(got, []string{"keepalived.virtualServers[0].delayLoop"}) {
		t.Errorf("paths = %q", got)
	}
}

func TestDisabled(t *testing.T) {
	c := mustLoad(t, "enabled: false\nkeepalived:\n  vrrpInstances:\n  - {virtualIPs: [192.0.2.1/24], authPass: x}\n")
	if c.VRRPInstances() != nil {
		t.Error("instances of a disabled CPLB")
	}
	if err := c.ResolveInterfaces(fakeResolver{}); err != nil {
		t.Errorf("ResolveInterfaces on disabled: %v", err)
	}
	if !strings.Contains(strings.Join(c.Warnings(), "\n"), "enabled: false") {
		t.Errorf("warnings: %q", c.Warnings())
	}
	// k0s validates the section even when disabled.
	if _, err := Load(strings.NewReader("enabled: false\nkeepalived:\n  vrrpInstances:\n  - {virtualIPs: [192.0.2.1/24]}\n")); err == nil {
		t.Error("disabled section not validated")
	}
}

type fakeResolver struct {
	def     string
	defErr  error
	macs    map[string]string
	links   []string
	defCall *int
}

func (f fakeResolver) DefaultRouteInterface() (string, error) {
	if f.defCall != nil {
		*f.defCall++
	}
	return f.def, f.defErr
}

func (f fakeResolver) InterfaceByMAC(mac net.HardwareAddr) (string, error) {
	if n, ok := f.macs[mac.String()]; ok {
		return n, nil
	}
	return "", errors.New("not found")
}

func (f fakeResolver) InterfaceExists(name string) error {
	if slices.Contains(f.links, name) {
		return nil
	}
	return errors.New("no such network interface")
}

func TestResolveInterfaces(t *testing.T) {
	doc := `
enabled: true
keepalived:
  vrrpInstances:
  - {virtualIPs: [192.0.2.1/24], authPass: x}
  - {virtualIPs: [198.51.100.1/24], authPass: x, interface: "02:42:AC:11:00:02"}
  - {virtualIPs: [203.0.113.1/24], authPass: x, interface: eth2}
  - {virtualIPs: ["2001:db8::1/64"], authPass: x}
`
	c := mustLoad(t, doc)
	calls := 0
	r := fakeResolver{def: "eth0", macs: map[string]string{"02:42:ac:11:00:02": "eth1"}, links: []string{"eth2"}, defCall: &calls}
	if err := c.ResolveInterfaces(r); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range c.VRRPInstances() {
		got = append(got, in.Interface)
	}
	if want := []string{"eth0", "eth1", "eth2", "eth0"}; !slices.Equal(got, want) {
		t.Errorf("interfaces = %q, want %q", got, want)
	}
	if calls != 1 {
		t.Errorf("default route looked up %d times", calls)
	}
	if c.ControlPlaneLoadBalancing.Keepalived.VRRPInstances[1].Interface != "eth1" {
		t.Error("resolved name not written back")
	}

	c = mustLoad(t, doc)
	err := c.ResolveInterfaces(fakeResolver{defErr: errors.New("no route")})
	want := []string{"keepalived.vrrpInstances[0].interface", "keepalived.vrrpInstances[1].interface",
		"keepalived.vrrpInstances[2].interface", "keepalived.vrrpInstances[3].interface"}
	if got := paths(t, err); !slices.Equal(got, want) {
		t.Errorf("paths = %q", got)
	}
	if !strings.Contains(err.Error(), "failed to get default NIC: no route") ||
		!strings.Contains(err.Error(), "failed to get NIC for MAC address 02:42:ac:11:00:02") {
		t.Errorf("messages: %v", err)
	}

	// A VRID clash that shows only once names are known.
	c = mustLoad(t, `
enabled: true
keepalived:
  vrrpInstances:
  - {virtualIPs: [192.0.2.1/24], authPass: x}
  - {virtualIPs: [192.0.2.2/24], authPass: x, interface: eth0, virtualRouterID: 51}
`)
	err = c.ResolveInterfaces(fakeResolver{def: "eth0", links: []string{"eth0"}})
	if got := paths(t, err); !slices.Equal(got, []string{"keepalived.vrrpInstances[1].virtualRouterID"}) {
		t.Errorf("paths = %q (%v)", got, err)
	}
}

func TestDuration(t *testing.T) {
	var d Duration
	for in, want := range map[string]time.Duration{`"1m"`: time.Minute, `"100ms"`: 100 * time.Millisecond, `"1.5s"`: 1500 * time.Millisecond} {
		if err := d.UnmarshalJSON([]byte(in)); err != nil || d.Std() != want {
			t.Errorf("%s: %v %v", in, d, err)
		}
	}
	for _, in := range []string{`5`, `"5"`, `"soon"`, `null`, `{}`} {
		if err := d.UnmarshalJSON([]byte(in)); err == nil && in != `null` {
			t.Errorf("%s accepted", in)
		}
	}
	b, _ := Duration(1500 * time.Millisecond).MarshalJSON()
	if string(b) != `"1.5s"` {
		t.Errorf("MarshalJSON = %s", b)
	}
}

func TestValidateBuiltInGo(t *testing.T) {
	c := &Config{ControlPlaneLoadBalancing: ControlPlaneLoadBalancing{
		Enabled: true,
		Keepalived: &KeepalivedSpec{VRRPInstances: []VRRPInstance{
			{VirtualIPs: []string{"192.0.2.1/24"}},
		}},
	}}
	err := c.Validate()
	if got := paths(t, err); !slices.Equal(got, []string{"spec.network.controlPlaneLoadBalancing.keepalived.vrrpInstances[0].authPass"}) {
		t.Errorf("paths = %q", got)
	}
	c.ControlPlaneLoadBalancing.Keepalived.VRRPInstances[0].AuthPass = "x"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if n := len(c.VRRPInstances()); n != 1 {
		t.Errorf("%d instances", n)
	}
}

// TestVIPIsNodeAddress: a VIP equal to a unicast source or peer (a node's
// own address, k0s #4664) is reported at the VIP, naming the other field,
// in its own instance and across instances, whatever the VIP's prefix.
func TestVIPIsNodeAddress(t *testing.T) {
	_, err := Load(strings.NewReader(`
spec:
  network:
    controlPlaneLoadBalancing:
      enabled: true
      keepalived:
        vrrpInstances:
        - virtualIPs: ["192.0.2.11/32"]
          authPass: x
          unicastSourceIP: 192.0.2.11
          unicastPeers: [192.0.2.12]
        - virtualIPs: ["192.0.2.12/24"]
          authPass: x
`))
	if err == nil {
		t.Fatal("Load accepted a VIP equal to a node address")
	}
	const vp = "spec.network.controlPlaneLoadBalancing.keepalived.vrrpInstances"
	got := paths(t, err)
	want := []string{vp + "[0].virtualIPs[0]", vp + "[1].virtualIPs[0]"}
	if !slices.Equal(got, want) {
		t.Fatalf("paths %q, want %q\n%v", got, want, err)
	}
	for _, s := range []string{
		"192.0.2.11 is also " + vp + "[0].unicastSourceIP, a node's own address",
		"192.0.2.12 is also " + vp + "[0].unicastPeers[0], a node's own address",
	} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q:\n%v", s, err)
		}
	}
}
