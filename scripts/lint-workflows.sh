#!/usr/bin/env bash
# The offline linters of the action and the workflows: GitHub's own schemas
# (check-jsonschema), zizmor (security), jactionlint (reads action.yml too), actionlint on
# the workflows, and shellcheck on every shell script, the action's included.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
export PATH="$PWD/$bin:$PATH"   # jactionlint and actionlint run shellcheck from PATH
mapfile -t workflows < <(ls .github/workflows/*.yml examples/workflows/*.yml)
"$bin/check-jsonschema" --builtin-schema vendor.github-actions action.yml
"$bin/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}"
"$bin/zizmor" --offline --quiet action.yml "${workflows[@]}"
"$bin/jactionlint" action.yml "${workflows[@]}"
"$bin/actionlint" "${workflows[@]}"
mapfile -t scripts < <(git ls-files -co --exclude-standard | grep -E '\.sh$|^\.ci/run$')
"$bin/shellcheck" -x "${scripts[@]}"
echo "lint-workflows.sh: action.yml, ${#workflows[@]} workflows and ${#scripts[@]} scripts pass"
