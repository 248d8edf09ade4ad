#!/usr/bin/env bash
# The demo: install, check the machine with `kpy doctor` (its last check is a live
# redirect), then record the sample shop (examples/shop) against real PostgreSQL, Redis
# and an HTTP API started on loopback for the demo. Replay comes with `kpy test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
.venv/bin/kpy doctor
examples/shop/demo.sh
