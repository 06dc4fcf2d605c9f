package vrrp

import "time"

// VIP lifetimes
//
// A Master gives its virtual addresses a finite valid lifetime and
// restarts it with its adverts, so that the kernel removes them by itself
// once the Master stops advertising: a killed process (SIGKILL, a crash),
// a stopped one (SIGSTOP) or a wedged loop. Without it the addresses stay
// on the interface forever and the kernel keeps answering ARP for them
// beside the new Master's (keepalived has the same flaw, its issue #672).
//
// The refresh is driven by the Master's adverts, never by a timer of its
// own: what stops the adverts stops the refresh.

// VIPLifetime returns the valid lifetime a Master running c gives its
// virtual addresses: ⌈the longest Master_Down_Interval a Backup can
// wait⌉ + 1 s, in whole seconds (the kernel counts lifetimes in seconds),
// and at least 2 s. The longest wait is a Backup's at priority 1:
// 3 × Advertisement_Interval + Skew_Time(1), with Skew_Time(1) = 255/256 s
// for VRRPv2 and 255/256 × Advertisement_Interval for VRRPv3 (RFC 3768
// §6.1, RFC 9568 §6.1). So the addresses of a dead Master go away after a
// Backup has taken over, not before it (which would leave the VIP
// unanswered meanwhile) and not with it: 5 s at keepalived's and k0s's
// 1 s interval, 2 s at fast VRRPv3 intervals up to 250 ms.
func VIPLifetime(c MachineConfig) time.Duration {
	i := c.AdvertInterval
	skewBase := time.Second
	if c.Version == Version3 {
		skewBase = i
	}
	longest := 3*i + 255*skewBase/256
	l := (longest+time.Second-1)/time.Second*time.Second + time.Second
	return max(l, 2*time.Second)
}

// vipRefreshPeriod bounds how often a Master refreshes the lifetime: every
// advert at intervals of 100 ms and more, every ⌊100 ms / interval⌋-th
// advert at faster ones (each refresh is an RTM_NEWADDR notification for
// every program that watches the addresses).
const vipRefreshPeriod = 100 * time.Millisecond

// vipRefreshGap is how long after the last refresh (or AddVIPs) a Master's
// advert refreshes the lifetime again: N - ½ advert intervals, with
// N = max(1, ⌊vipRefreshPeriod / interval⌋). The half interval absorbs
// timer jitter; the advert sent with AddVIPs on a takeover does not
// refresh what was just added.
func vipRefreshGap(interval time.Duration) time.Duration {
	n := max(1, vipRefreshPeriod/interval)
	return n*interval - interval/2
}

// vipLapseMargin is how long before the end of the lifetime a Master takes
// its addresses for gone. The kernel removes an address up to 20 ms
// before its lifetime ends (ADDRCONF_TIMER_FUZZ_MINUS) and usually a
// little after; the rest covers the time between reading the clock and
// the kernel handling the refresh. A refresh is never sent once the
// margin is reached: the kernel would create an address that had expired.
const vipLapseMargin = 250 * time.Millisecond
