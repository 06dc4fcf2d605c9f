#!/bin/sh
# After installing or removing nlb: systemd re-reads the unit files. Nothing
# is enabled or started (each unit needs an edited configuration first).
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
