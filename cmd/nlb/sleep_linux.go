//go:build linux

package main

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// fineSleep sleeps for d with clock_nanosleep(CLOCK_MONOTONIC), which the
// kernel wakes within its timer slack (50 µs by default) instead of the Go
// netpoller's whole milliseconds. It blocks the calling goroutine's thread,
// so it is only used for the last FineSleepLead before a VRRP deadline.
func fineSleep(d time.Duration) {
	ts := unix.NsecToTimespec(d.Nanoseconds())
	for {
		rem := unix.Timespec{}
		err := unix.ClockNanosleep(unix.CLOCK_MONOTONIC, 0, &ts, &rem)
		if !errors.Is(err, unix.EINTR) {
			return
		}
		ts = rem
	}
}

// fineSleeper returns the precise sleep for vrrp.InstanceConfig.FineSleep.
func fineSleeper() func(time.Duration) { return fineSleep }
