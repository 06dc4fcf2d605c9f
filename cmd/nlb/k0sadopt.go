package main

import (
	"fmt"
	"io"

	"github.com/nlb-dev/nlb/config"
)

// loadController loads `nlb controller`'s (and `nlb vrrp`'s) configuration: the file alone,
// or k0s's file merged with an nlb overlay (config.LoadWithOverlay); then
// whether it has something to run, before --check so that a file with
// nothing to run fails --check as it would fail the run. runDisabled
// (--run-disabled-cplb) runs a section k0s has disabled for itself.
func loadController(path, overlay string, runDisabled bool) (*config.Config, error) {
	var (
		cfg *config.Config
		err error
	)
	if overlay != "" {
		cfg, err = config.LoadWithOverlay(path, overlay)
	} else {
		cfg, err = config.LoadFile(path)
	}
	if err != nil {
		return nil, err
	}
	if runDisabled {
		if err := cfg.RunnableDisabled(); err != nil {
			return nil, fmt.Errorf("%w (in %s)", err, path)
		}
		return cfg, nil
	}
	return cfg, cfg.Runnable()
}

// printAdoption adds the k0s adoption settings to --check's output.
func printAdoption(w io.Writer, overlay string, runDisabled bool) {
	if overlay != "" {
		fmt.Fprintf(w, "  overlay: %s (nlb's additions, merged into the k0s configuration)\n", overlay)
	}
	if runDisabled {
		fmt.Fprintf(w, "  controlPlaneLoadBalancing has enabled: false for k0s; nlb runs it (%s)\n", config.RunDisabledFlag)
	}
}
