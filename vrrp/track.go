package vrrp

import (
	"errors"
	"fmt"
	"time"
)

// TrackConfig configures a [Tracker]: how results of a health check (for
// `nlb controller`, the local API server's /readyz and the proxy's
// readiness) change a node's VRRP priority. It follows keepalived's
// vrrp_script/track_script (fall, rise, weight) and adds flap damping.
type TrackConfig struct {
	// Fall is the number of consecutive failures that make a healthy node
	// failed (keepalived "fall"). At least 1.
	Fall int
	// Rise is the number of consecutive successes that make a failed node
	// healthy again (keepalived "rise"). At least 1.
	Rise int
	// Weight is keepalived's track_script weight: 0 means a failed node
	// gives up mastership altogether (priority 0: a Master releases at once
	// with a priority-0 advert and the node stays out until it recovers);
	// a negative weight lowers the priority by -Weight while failed; a
	// positive weight raises it by Weight while healthy. The result is
	// clamped to 1..254 (255 is reserved for the address owner).
	Weight int
	// FlapWindow is the damping window: a node that fails again within
	// FlapWindow of its last recovery needs twice as many successes to
	// recover the next time, up to MaxRiseFactor times Rise; a node that
	// stays healthy for FlapWindow is forgiven. Zero means
	// DefaultFlapWindow; negative turns damping off.
	FlapWindow time.Duration
}

// Damping defaults.
const (
	// DefaultFlapWindow is TrackConfig.FlapWindow's default.
	DefaultFlapWindow = time.Minute
	// MaxRiseFactor bounds flap damping: at most 8 × Rise successes.
	MaxRiseFactor = 8
)

// Validate reports a bad configuration.
func (c TrackConfig) Validate() error {
	var errs []error
	if c.Fall < 1 {
		errs = append(errs, fmt.Errorf("fall must be at least 1, got %d", c.Fall))
	}
	if c.Rise < 1 {
		errs = append(errs, fmt.Errorf("rise must be at least 1, got %d", c.Rise))
	}
	if c.Weight < -253 || c.Weight > 253 {
		errs = append(errs, fmt.Errorf("weight must be between -253 and 253, got %d", c.Weight))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("vrrp: track: %w", err)
	}
	return nil
}

// Tracker turns a stream of health check results into a VRRP priority,
// with hysteresis: Fall consecutive failures to go down, Rise consecutive
// successes to come back, and a Rise that doubles while the check flaps.
// A check that alternates, or fails now and then, therefore cannot move
// the VIP back and forth. It is pure: time is an input and it has no
// goroutines; feed its result to [Instance.SetPriority].
//
// A new Tracker is healthy: a node whose check fails from the start stays
// Backup for Master_Down_Interval anyway, longer than Fall checks at the
// usual intervals, so it gives up before it could become Master.
type Tracker struct {
	cfg      TrackConfig
	base     uint8
	failed   bool
	streak   int // consecutive results contradicting the current state
	factor   int // current Rise multiplier (flap damping)
	lastUp   time.Time
	changes  uint64
	lastErr  string
	changeAt time.Time
}

// NewTracker returns a healthy Tracker for a node whose configured
// priority is base.
func NewTracker(cfg TrackConfig, base uint8) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.FlapWindow == 0 {
		cfg.FlapWindow = DefaultFlapWindow
	}
	return &Tracker{cfg: cfg, base: base, factor: 1}, nil
}

// Observe records one check result at now (err nil means success) and
// reports whether the health state changed with this result.
func (t *Tracker) Observe(now time.Time, err error) (changed bool) {
	ok := err == nil
	if !ok {
		t.lastErr = err.Error()
	}
	if ok != t.failed { // agrees with the current state
		t.streak = 0
		if ok && t.cfg.FlapWindow > 0 && t.factor > 1 && now.Sub(t.lastUp) >= t.cfg.FlapWindow {
			t.factor = 1 // stable for a whole window: forgiven
		}
		return false
	}
	t.streak++
	if !t.failed {
		if t.streak < t.cfg.Fall {
			return false
		}
		t.failed = true
		if t.cfg.FlapWindow > 0 && !t.lastUp.IsZero() && now.Sub(t.lastUp) < t.cfg.FlapWindow {
			t.factor = min(t.factor*2, MaxRiseFactor)
		}
	} else {
		if t.streak < t.cfg.Rise*t.factor {
			return false
		}
		t.failed = false
		t.lastUp = now
	}
	t.streak = 0
	t.changes++
	t.changeAt = now
	return true
}

// Healthy reports the current state.
func (t *Tracker) Healthy() bool { return !t.failed }

// Priority is the priority the node should run with now.
func (t *Tracker) Priority() uint8 {
	p := int(t.base)
	switch w := t.cfg.Weight; {
	case t.failed && w == 0:
		return 0
	case t.failed && w < 0:
		p += w
	case !t.failed && w > 0:
		p += w
	}
	if t.base == OwnerPriority && !t.failed {
		return OwnerPriority
	}
	return uint8(max(1, min(p, OwnerPriority-1)))
}

// NeededToRecover is the number of consecutive successes the next recovery
// needs (Rise times the flap damping factor).
func (t *Tracker) NeededToRecover() int { return t.cfg.Rise * t.factor }

// TrackStatus is a snapshot of a Tracker, for status output.
type TrackStatus struct {
	// Healthy is the current state.
	Healthy bool `json:"healthy"`
	// Priority is the priority the Tracker asks for.
	Priority uint8 `json:"priority"`
	// Streak counts consecutive results that disagree with the state.
	Streak int `json:"streak"`
	// NeededToRecover is Rise times the flap damping factor.
	NeededToRecover int `json:"needed_to_recover"`
	// Changes counts state changes.
	Changes uint64 `json:"changes"`
	// LastChange is when the state last changed (zero: never).
	LastChange time.Time `json:"last_change,omitzero"`
	// LastError is the most recent failure's message.
	LastError string `json:"last_error,omitempty"`
}

// Status returns a snapshot.
func (t *Tracker) Status() TrackStatus {
	return TrackStatus{
		Healthy:         !t.failed,
		Priority:        t.Priority(),
		Streak:          t.streak,
		NeededToRecover: t.NeededToRecover(),
		Changes:         t.changes,
		LastChange:      t.changeAt,
		LastError:       t.lastErr,
	}
}
