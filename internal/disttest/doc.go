// Package disttest tests what dist/ ships: the systemd units (systemd-analyze
// verify and their sandboxing per mode), the example configurations, the
// Prometheus alert rules (promtool) and, from `make test-packages`, the
// .deb, .rpm and .apk of `make package`. It has no code of its own.
package disttest
