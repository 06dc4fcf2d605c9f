// Package clock gives the VRRP instance runner a precise sleep for the last
// moments before a deadline (vrrp.InstanceConfig.FineSleep). The Go
// netpoller rounds timer waits to whole milliseconds, which would add up to
// a millisecond to every advertisement interval and to Skew_Time
// (RFC 3768 §6.1, RFC 9568 §6.1).
package clock
