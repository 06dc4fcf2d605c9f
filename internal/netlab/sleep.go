package netlab

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx ends, in which case it returns ctx's error.
// Lab programs use it for every pause, so that an interrupt ends them at
// once.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
