//go:build !linux

package clock

import "time"

// FineSleeper returns nil off Linux: instances use plain timers.
func FineSleeper() func(time.Duration) { return nil }
