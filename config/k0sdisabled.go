package config

import "errors"

// RunDisabledFlag is the `nlb controller` flag that runs a
// controlPlaneLoadBalancing section k0s has disabled for itself.
const RunDisabledFlag = "--run-disabled-cplb"

// RunnableDisabled is Runnable for `nlb controller --run-disabled-cplb`:
// the k0s adoption path, where k0s's own configuration keeps
// controlPlaneLoadBalancing.enabled: false (with true, k0s starts its own
// keepalived, its proxy on userSpaceProxyBindPort and an iptables
// REDIRECT, which collide with nlb) and nlb runs the section's
// vrrpInstances anyway. When enabled is false and there are instances,
// it turns the section on for nlb (Enabled true, so VRRPInstances returns
// them) and returns nil; when enabled is true it returns an error naming
// the field (k0s runs CPLB itself with this file); otherwise Runnable's
// error (no section, no instances). Valid after Load or LoadWithOverlay.
func (c *Config) RunnableDisabled() error {
	err := c.Runnable()
	var nt *NothingToRunError
	switch {
	case errors.As(err, &nt) && nt.Disabled:
		c.ControlPlaneLoadBalancing.Enabled = true
		// Validate is idempotent and passed before: it only rebuilds
		// the instances and warnings of an enabled section.
		return c.Validate()
	case err != nil:
		return err
	}
	return &FieldError{Path: child(c.Form.cplbPath(), "enabled"), Message: "is true, so k0s runs its own keepalived, " +
		"proxy and iptables rule with this configuration, colliding with nlb's; with " + RunDisabledFlag +
		" it must be false (k0s leaves control plane load balancing to nlb)"}
}
