package config

import (
	"strings"
	"testing"
	"time"
)

// TestStartupGrace: apiServerHealth.startupGrace defaults to 10m, 0s
// turns the bootstrap rule off, and a negative or too long value is
// refused naming the field.
func TestStartupGrace(t *testing.T) {
	doc := func(h string) string {
		return `
enabled: true
keepalived:
  vrrpInstances:
  - virtualIPs: ["192.0.2.100/24"]
    authPass: secret
  apiServerHealth: ` + h + "\n"
	}
	for _, tc := range []struct {
		health string
		want   time.Duration
		err    string
	}{
		{"{}", DefaultHealthStartupGrace, ""},
		{"{startupGrace: 0s}", 0, ""},
		{"{startupGrace: 4m}", 4 * time.Minute, ""},
		{"{startupGrace: 24h}", 24 * time.Hour, ""},
		{"{startupGrace: -1s}", 0, "keepalived.apiServerHealth.startupGrace: must be between 0s and 24h0m0s, got -1s"},
		{"{startupGrace: 25h}", 0, "keepalived.apiServerHealth.startupGrace: must be between 0s and 24h0m0s, got 25h0m0s"},
		{"{startupGrace: 10}", 0, "keepalived.apiServerHealth.startupGrace:"},
	} {
		c, err := Load(strings.NewReader(doc(tc.health)))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.health, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.health, err)
			continue
		}
		if got := c.Controller().Health.StartupGrace; got != tc.want {
			t.Errorf("%s: startup grace %s, want %s", tc.health, got, tc.want)
		}
	}
}
