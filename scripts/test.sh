#!/usr/bin/env bash
# The test command: install, rebuild the BPF object from source, lint, type-check, and run
# every test (as root: they attach real eBPF programs to real cgroups).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
mkdir -p build
make -s -B -C bpf OUT="$PWD/build/kpy.bpf.o"
export KPY_BPF_OBJECT="$PWD/build/kpy.bpf.o"   # the tests load the fresh build
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
scripts/lint-workflows.sh
.venv/bin/pytest "$@"
