#!/usr/bin/env bash
# The action's install step: kpy from the action's own checkout (so the action's tag is
# kpy's version) into a venv under RUNNER_TEMP. The caller's Python, PATH and packages stay
# as they were. Output: kpy, the absolute path of the kpy command.
set -euo pipefail
python=${KPY_PYTHON:-python3}
venv=$RUNNER_TEMP/kpy-venv
source_dir=$(cd "$GITHUB_ACTION_PATH" && pwd)

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  found=$("$python" --version 2>&1 || echo "not found")
  echo "::error title=kpy cannot install::kpy needs Python 3.10 or newer, and '$python' is: $found. Set the action's python-version input."
  exit 4
fi
# the same action twice in one job (drift, then test) installs once
if [ "$(cat "$venv/.kpy-source" 2>/dev/null)" != "$source_dir" ] || ! "$venv/bin/kpy" --version >/dev/null 2>&1; then
  if ! "$python" -m venv --clear "$venv"; then
    echo "::error title=kpy cannot install::'$python -m venv' failed: on Debian or Ubuntu, install python3-venv, or set the action's python-version input."
    exit 4
  fi
  export PIP_CACHE_DIR=${KPY_PIP_CACHE:-$RUNNER_TEMP/kpy-pip-cache} PIP_DISABLE_PIP_VERSION_CHECK=1
  "$venv/bin/pip" install --quiet "$source_dir"
  echo "$source_dir" > "$venv/.kpy-source"
fi
# the replay clock of kpy test needs libfaketime (a runner image lacks it); without it kpy
# test warns and runs on today's clock
if ! ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 && command -v apt-get >/dev/null; then
  as_root=(); [ "$(id -u)" = 0 ] || as_root=(sudo -n)
  if ! { "${as_root[@]}" apt-get install -y -qq libfaketime >/dev/null 2>&1 ||
         { "${as_root[@]}" apt-get update -qq >/dev/null 2>&1 &&
           "${as_root[@]}" apt-get install -y -qq libfaketime >/dev/null 2>&1; }; }; then
    echo "::warning title=kpy: no replay clock::apt-get install libfaketime failed: kpy test runs on today's clock"
  fi
fi
echo "kpy: $("$venv/bin/kpy" --version) in $venv"
echo "kpy=$venv/bin/kpy" >> "$GITHUB_OUTPUT"
