package input

import (
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration written in nlb's files as a Go duration
// string ("250ms", "1m", "1.5s"), the text form of Kubernetes'
// metav1.Duration that k0s uses (virtualServers[].delayLoop). It is the one
// duration type of every file nlb reads: config (k0s's ClusterConfig) and
// lb (nlb proxy --config) both use it. Bare numbers are rejected, as
// metav1.Duration rejects them: "5" could mean seconds (keepalived) or
// nanoseconds (Go).
type Duration time.Duration

// UnmarshalJSON decodes a JSON string with time.ParseDuration.
// sigs.k8s.io/yaml converts YAML to JSON first, so this is also the YAML
// decoder.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("must be a duration string such as \"1s\" or \"100ms\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("must be a duration such as \"1s\" or \"100ms\", got %q", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON encodes the duration as its String form, which UnmarshalJSON
// reads back.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// String returns the duration as Go writes it, e.g. "250ms".
func (d Duration) String() string { return time.Duration(d).String() }

// Std returns the duration as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }
