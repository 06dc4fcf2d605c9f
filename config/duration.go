package config

import "github.com/nlb-dev/nlb/input"

// Duration is input.Duration, the one duration type of nlb's files: a Go
// duration string ("1m", "100ms", "1.5s"), the text form of Kubernetes'
// metav1.Duration that k0s uses for virtualServers[].delayLoop (k0s
// pkg/apis/k0s/v1beta1/cplb.go VirtualServer.DelayLoop). Bare numbers are
// rejected.
type Duration = input.Duration
