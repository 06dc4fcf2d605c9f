//go:build !linux

package main

import "time"

// fineSleeper returns nil off Linux: instances use plain timers.
func fineSleeper() func(time.Duration) { return nil }
