package config

import (
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration written as a Go duration string ("1m",
// "100ms", "1.5s"), the same text form as Kubernetes' metav1.Duration that
// k0s uses for virtualServers[].delayLoop (k0s pkg/apis/k0s/v1beta1/cplb.go
// VirtualServer.DelayLoop). Bare numbers are rejected, as metav1.Duration
// rejects them: "5" could mean seconds (keepalived) or nanoseconds (Go).
type Duration struct {
	time.Duration
}

// UnmarshalJSON decodes a JSON string with time.ParseDuration. sigs.k8s.io/yaml
// converts YAML to JSON first, so this is also the YAML decoder.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("must be a duration string such as \"1s\" or \"100ms\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("must be a duration such as \"1s\" or \"100ms\", got %q", s)
	}
	d.Duration = v
	return nil
}

// MarshalJSON encodes the duration as its String form, which UnmarshalJSON
// reads back.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.Duration.String())
}
