#!/usr/bin/env bash
# Refreshes the vendored libbpf headers from Debian's libbpf-dev (no download):
#   apt-get install -y libbpf-dev && ebpf/headers/update.sh
# The copies in this directory come from libbpf-dev 1:1.1.2-0+deb12u1
# (libbpf 1.1.2, LGPL-2.1 OR BSD-2-Clause). common.h is nlb's own.
set -euo pipefail
cd "$(dirname "$0")"
src=${LIBBPF_INCLUDE:-/usr/include/bpf}
for h in bpf_helpers.h bpf_helper_defs.h bpf_endian.h; do
	cp "$src/$h" "$h"
done
dpkg-query -W -f='libbpf-dev ${Version}\n' libbpf-dev 2>/dev/null || true
