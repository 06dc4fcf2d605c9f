package router

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nlb-dev/nlb/config"
	"github.com/nlb-dev/nlb/vrrp"
	"github.com/nlb-dev/nlb/vrrp/link"
)

// Group is every VRRP instance of a configuration, each a Router.
type Group struct {
	routers []*Router
}

// ListenGroup logs cfg's warnings, resolves its interfaces (the default
// route's, a MAC's), checks that it has something to run, creates the VRRP
// metrics on reg, and opens a Router for each instance (Listen). If one
// fails, those already opened are closed.
func ListenGroup(cfg *config.Config, reg prometheus.Registerer, opts Options) (*Group, error) {
	if opts.Logger != nil {
		for _, w := range cfg.Warnings() {
			opts.Logger.Warn("configuration", "warning", w)
		}
	}
	if err := cfg.ResolveInterfaces(link.NewResolver()); err != nil {
		return nil, err
	}
	if err := cfg.Runnable(); err != nil {
		return nil, err
	}
	metrics, err := vrrp.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	opts.Metrics = metrics
	g := &Group{}
	for _, in := range cfg.VRRPInstances() {
		r, err := Listen(in, opts)
		if err != nil {
			_ = g.Close()
			return nil, err
		}
		g.routers = append(g.routers, r)
	}
	return g, nil
}

// Routers returns the instances in configuration order.
func (g *Group) Routers() []*Router { return g.routers }

// Run runs every instance until ctx ends or one fails. One instance
// failing stops them all: a half-running daemon is worse than a restart by
// the supervisor. The errors name their instance.
func (g *Group) Run(ctx context.Context) error {
	runners := make([]runner, len(g.routers))
	for i, r := range g.routers {
		runners[i] = r
	}
	return runAll(ctx, runners)
}

// runner is what runAll runs (a *Router; a fake in tests).
type runner interface {
	Config() config.Instance
	Run(ctx context.Context) error
}

func runAll(ctx context.Context, runners []runner) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.Run(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("vrrp: instance %s: %w", r.Config().Name, err))
				mu.Unlock()
				cancel()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Status returns every instance's status.
func (g *Group) Status() GroupStatus {
	var st GroupStatus
	for _, r := range g.routers {
		st.Instances = append(st.Instances, r.Status())
	}
	return st
}

// Close closes every instance (Router.Close).
func (g *Group) Close() error {
	var errs []error
	for _, r := range g.routers {
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}
