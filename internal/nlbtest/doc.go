// Package nlbtest holds the helpers nlb's tests, labs, demo and benchmarks
// share, one of each (as mdlayher/ndp's ndptest or tailscale's tstest): a
// throw-away certificate authority ([CA]) and the polling helpers
// ([Poll], [Eventually], [Consistently]) that wait for events with a bound
// instead of sleeping. Product packages never import it.
package nlbtest
