package config

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestControllerDefaults(t *testing.T) {
	c, err := Load(strings.NewReader(`
spec:
  api: {port: 7443}
  network:
    controlPlaneLoadBalancing:
      enabled: true
      keepalived:
        vrrpInstances:
        - virtualIPs: ["192.0.2.100/24"]
          authPass: secret
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Controller{
		APIPort: 7443, ProxyPort: 6444, Steering: SteeringAuto,
		Health: Health{Enabled: true, Interval: 500 * time.Millisecond, Timeout: 400 * time.Millisecond, Fall: 3, Rise: 5, StartupGrace: 10 * time.Minute},
	}
	if diff := cmp.Diff(want, c.Controller()); diff != "" {
		t.Errorf("Controller() (-want +got):\n%s", diff)
	}
}

func TestControllerSettings(t *testing.T) {
	c, err := Load(strings.NewReader(`
enabled: true
keepalived:
  vrrpInstances:
  - virtualIPs: ["192.0.2.100/24"]
    authPass: secret
  userSpaceProxyBindPort: 16444
  steering: nftables
  apiServerHealth: {interval: 200ms, fall: 2, rise: 4, weight: -50}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Controller{
		APIPort: 6443, ProxyPort: 16444, Steering: SteeringNFTables,
		Health: Health{Enabled: true, Interval: 200 * time.Millisecond, Timeout: 200 * time.Millisecond, Fall: 2, Rise: 4, Weight: -50, StartupGrace: 10 * time.Minute},
	}
	if diff := cmp.Diff(want, c.Controller()); diff != "" {
		t.Errorf("Controller() (-want +got):\n%s", diff)
	}
}

func TestControllerInvalid(t *testing.T) {
	_, err := Load(strings.NewReader(`
enabled: true
keepalived:
  vrrpInstances:
  - virtualIPs: ["192.0.2.100/24"]
    authPass: secret
  steering: iptables
  apiServerHealth: {interval: 1ms, timeout: 2s, fall: -1, rise: 1000, weight: 300, bogus: 1}
`))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"keepalived.steering", "apiServerHealth.interval", "apiServerHealth.timeout",
		"apiServerHealth.fall", "apiServerHealth.rise", "apiServerHealth.weight", "apiServerHealth.bogus",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
}

// TestKonnectivityAgentPort: spec.konnectivity.agentPort is read (the rest
// of spec.konnectivity is k0s's and ignored), defaults to 8132 and is
// checked as a port.
func TestKonnectivityAgentPort(t *testing.T) {
	doc := func(konn string) []byte {
		return []byte("spec:\n" + konn + `  network:
    nodeLocalLoadBalancing: {enabled: true}
`)
	}
	for _, tc := range []struct {
		konn string
		want int
	}{
		{"", 8132},
		{"  konnectivity: {adminPort: 8133}\n", 8132},
		{"  konnectivity: {agentPort: 9132, adminPort: 8133}\n", 9132},
	} {
		c, err := Load(bytes.NewReader(doc(tc.konn)))
		if err != nil {
			t.Fatalf("%q: %v", tc.konn, err)
		}
		if got := c.KonnectivityAgentPort(); got != tc.want {
			t.Errorf("%q: agent port %d, want %d", tc.konn, got, tc.want)
		}
	}
	_, err := Load(bytes.NewReader(doc("  konnectivity: {agentPort: 70000}\n")))
	if err == nil || !strings.Contains(err.Error(), "spec.konnectivity.agentPort") {
		t.Errorf("port 70000: %v", err)
	}
}
