package nlbtest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// Stop wraps an error after which polling is pointless (a process that
// exited, a refused configuration): [Poll] returns it at once.
func Stop(err error) error { return stopError{err} }

type stopError struct{ error }

func (e stopError) Unwrap() error { return e.error }

// Poll calls fn every interval until it returns nil, returns an error made
// by [Stop], or ctx ends; the error then names what and fn's last error.
// It is bounded by ctx, never by a count of tries, so a slow machine only
// makes it take longer.
func Poll(ctx context.Context, interval time.Duration, what string, fn func() error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		var stop stopError
		if errors.As(err, &stop) {
			return fmt.Errorf("%s: %w", what, stop.error)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not within the limit: %w (last error: %v)", what, context.Cause(ctx), err)
		case <-t.C:
		}
	}
}

// Holds turns a condition that holds or not into one for [Poll],
// [Eventually] and [Consistently]: nil when cond returns true.
func Holds(cond func() bool) func() error {
	return func() error {
		if !cond() {
			return errors.New("does not hold yet")
		}
		return nil
	}
}

// PollInterval is how often [Eventually] and [Consistently] look.
const PollInterval = 20 * time.Millisecond

// Eventually fails the test unless cond returns nil within limit, polling
// every PollInterval. The limit is a bound on a hang, never a speed goal:
// make it generous.
func Eventually(t testing.TB, limit time.Duration, what string, cond func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	if err := Poll(ctx, PollInterval, what, cond); err != nil {
		t.Fatal(err)
	}
}

// Consistently fails the test if cond returns an error at any look during
// d.
func Consistently(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if err := cond(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(PollInterval)
	}
}
