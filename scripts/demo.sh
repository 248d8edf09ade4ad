#!/usr/bin/env bash
# The demo: install, then `kpy doctor`, whose last check is live (a child in a kpy session
# dials a loopback port where nothing listens and lands on kpy's listener), then `kpy run`
# showing a redirected connection from the outside.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
.venv/bin/kpy doctor
.venv/bin/python examples/redirect_demo.py
