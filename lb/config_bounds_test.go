package lb

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nlb-dev/nlb/input"
)

// endless is a reader that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestLoadBounded: a configuration above 1 MiB, or one that never ends
// (/dev/zero), is refused with one clear error instead of being read whole.
func TestLoadBounded(t *testing.T) {
	var tl *input.TooLargeError
	if _, err := Load(endless{}); !errors.As(err, &tl) || err.Error() != "lb: read config: the configuration is larger than 1 MiB" {
		t.Errorf("endless reader: %v", err)
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		if _, err := LoadFile("/dev/zero"); !errors.As(err, &tl) || err.Error() != "lb: /dev/zero is larger than 1 MiB" {
			t.Errorf("/dev/zero: %v", err)
		}
	}
}

// TestLoadOneDocument: a second YAML document is an error, not ignored.
func TestLoadOneDocument(t *testing.T) {
	one := "backends: [\"192.0.2.1:6443\"]\n"
	if _, err := Load(strings.NewReader(one + "---\n")); err != nil {
		t.Errorf("trailing ---: %v", err)
	}
	f := filepath.Join(t.TempDir(), "two.yaml")
	if err := os.WriteFile(f, []byte(one+"---\nbackends: [\"192.0.2.2:6443\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadFile(f)
	if err == nil || !strings.Contains(err.Error(), "more than one YAML document (document 2 is not empty)") || !strings.Contains(err.Error(), f) {
		t.Errorf("two documents: %v", err)
	}
}

// TestCheckIntervalMinimum: healthCheck.interval below MinCheckInterval is
// an error naming the field.
func TestCheckIntervalMinimum(t *testing.T) {
	for _, tc := range []struct {
		interval time.Duration
		ok       bool
	}{
		{time.Millisecond, false},
		{MinCheckInterval - time.Millisecond, false},
		{MinCheckInterval, true},
		{DefaultCheckInterval, true},
		{-time.Second, false},
	} {
		c := Config{Backends: []string{"192.0.2.1:6443"}, HealthCheck: HealthCheck{Interval: Duration(tc.interval)}}
		c.SetDefaults()
		err := c.Validate()
		if tc.ok != (err == nil) {
			t.Errorf("interval %s: %v", tc.interval, err)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "healthCheck.interval: must be at least 100ms, got "+tc.interval.String())) {
			t.Errorf("interval %s: error %v does not name the field and the minimum", tc.interval, err)
		}
	}
}
