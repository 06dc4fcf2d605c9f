//go:build linux

package clock

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// FineSleep sleeps for d with clock_nanosleep(CLOCK_MONOTONIC), which the
// kernel wakes within the thread's timer slack instead of the Go
// netpoller's whole milliseconds. It blocks the calling goroutine's thread,
// so it is only used for the last FineSleepLead before a VRRP deadline.
func FineSleep(d time.Duration) {
	// The default 50 µs timer slack would add up to that much to every
	// wake-up; this thread may sleep with 1 µs (prctl(2) PR_SET_TIMERSLACK
	// applies to the calling thread only, and costs one syscall).
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1000, 0, 0, 0)
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

// FineSleeper returns the precise sleep for vrrp.InstanceConfig.FineSleep:
// FineSleep on Linux, nil (plain timers) elsewhere.
func FineSleeper() func(time.Duration) { return FineSleep }
