package k8s

import "log/slog"

// RouteClientGoLogs did send client-go's logs to log. This package no longer
// uses client-go (nor klog): Discovery logs through Config.Logger alone.
//
// Deprecated: it does nothing; callers may drop the call.
func RouteClientGoLogs(*slog.Logger) {}
