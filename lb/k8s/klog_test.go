package k8s

import (
	"log/slog"
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

func TestRouteClientGoLogs(t *testing.T) {
	logs := &syncBuffer{}
	RouteClientGoLogs(slog.New(slog.NewTextHandler(logs, nil)))
	t.Cleanup(klog.ClearLogger)
	klog.Warning("from client-go")
	klog.Flush()
	if !strings.Contains(logs.String(), "from client-go") {
		t.Errorf("klog output not routed: %q", logs)
	}
}
