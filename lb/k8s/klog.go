package k8s

import (
	"log/slog"

	"k8s.io/klog/v2"
)

// RouteClientGoLogs sends what client-go logs (its reflector's list and watch
// failures, for instance) to log instead of standard error. client-go logs
// through k8s.io/klog, which is process-wide, so only cmd/nlb should call
// this, once, before Run; Discovery also logs those failures itself through
// Config.Logger.
func RouteClientGoLogs(log *slog.Logger) {
	klog.SetSlogLogger(log)
}
