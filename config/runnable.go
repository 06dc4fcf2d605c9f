package config

// NothingToRunError is Config.Runnable's answer for a valid configuration
// in which `nlb vrrp` and `nlb controller` would have no VRRP instance to
// run.
type NothingToRunError struct {
	// Path is the field that stands in the way, relative to the document
	// like FieldError.Path: the missing controlPlaneLoadBalancing section,
	// its enabled field, or its keepalived.vrrpInstances.
	Path string
	// Reason says what is wrong with Path, without the path.
	Reason string
	// Disabled reports that the section has VRRP instances and only
	// enabled: false keeps them from running. k0s has control plane load
	// balancing disabled for itself then; an explicit way for nlb to run
	// such a section (planned with the deployment work) applies to this
	// case only, and its hint belongs at the end of Error's text.
	Disabled bool
}

// Error returns "config: nothing to run: PATH REASON; nlb runs ...".
func (e *NothingToRunError) Error() string {
	s := "config: nothing to run: " + e.Path + " " + e.Reason +
		"; nlb vrrp and nlb controller run the vrrpInstances of a controlPlaneLoadBalancing section with enabled: true"
	if e.Disabled {
		s += " (k0s's own file keeps enabled: false so that k0s leaves them to nlb: nlb controller " + RunDisabledFlag + " runs them)"
	}
	return s
}

// Runnable reports whether the configuration has a VRRP instance to run,
// and if not, why: the controlPlaneLoadBalancing section is missing (or a
// field on the way to it is null), enabled is false (as k0s, which runs no
// control plane load balancing then), or keepalived.vrrpInstances is
// empty. It returns nil or a *NothingToRunError.
//
// `nlb vrrp` and `nlb controller` call it both with --check and before
// running, so that --check fails exactly when the run would. Other
// commands (nlb client reads nodeLocalLoadBalancing) do not need it. Valid
// after Load or Validate.
func (c *Config) Runnable() error {
	cp := &c.ControlPlaneLoadBalancing
	path := c.Form.cplbPath()
	if c.absent != "" {
		how := "missing"
		if c.absentNull {
			how = "null"
		}
		reason := "is " + how
		if c.absent != path {
			reason = "is missing (" + c.absent + " is " + how + ")"
		}
		return &NothingToRunError{Path: path, Reason: reason}
	}
	kpath := child(path, "keepalived")
	emptyPath, emptyReason := child(kpath, "vrrpInstances"), "is empty"
	if cp.Keepalived == nil {
		emptyPath, emptyReason = kpath, "is missing"
	}
	noInstances := cp.Keepalived == nil || len(cp.Keepalived.VRRPInstances) == 0
	if !cp.Enabled {
		reason := "is false: k0s runs no control plane load balancing with this configuration"
		if noInstances {
			reason += ", and " + emptyPath + " " + emptyReason
		}
		return &NothingToRunError{Path: child(path, "enabled"), Reason: reason, Disabled: !noInstances}
	}
	if noInstances {
		return &NothingToRunError{Path: emptyPath, Reason: emptyReason + ": there is no VRRP instance to run"}
	}
	return nil
}
