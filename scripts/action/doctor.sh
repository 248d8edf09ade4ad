#!/usr/bin/env bash
# The action's first check: can this runner run kpy? On failure kpy doctor prints one
# ::error naming what the runner lacks, and the step fails with exit 4.
set -euo pipefail
# shellcheck source=scripts/action/root.sh
. "$GITHUB_ACTION_PATH/scripts/action/root.sh"
as_root "$KPY" doctor
