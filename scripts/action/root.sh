# shellcheck shell=bash
# Sourced by the action's steps: as_root CMD... runs CMD as root, directly when the step
# already is root, else through sudo. sudo resets the environment, and sudo-rs (Ubuntu
# 26.04's default) ignores -E, so the step's variables are passed by name: GITHUB_*,
# RUNNER_*, PATH and whatever the job gave the service. CMD must be an absolute path (sudo's
# own PATH has no venv). kpy gives every file it writes back to SUDO_UID/SUDO_GID.

# what sudo sets itself, and the action's own inputs (the service has no use for them)
KPY_NOT_PASSED='^(HOME|USER|LOGNAME|SHELL|MAIL|PWD|OLDPWD|SHLVL|_|SUDO_.*|BASH_FUNC_.*|KPY|KPY_IN_.*)$'

as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
    return
  fi
  if ! command -v sudo >/dev/null; then
    echo "::error title=kpy needs root::kpy attaches eBPF programs, which needs root: this runner runs as $(id -un), and has no sudo."
    return 4
  fi
  if ! sudo -n true 2>/dev/null; then
    echo "::error title=kpy needs root::kpy attaches eBPF programs, which needs root: this runner's user $(id -un) cannot sudo without a password."
    return 4
  fi
  local names
  names=$(compgen -e | grep -Ev "$KPY_NOT_PASSED" | paste -sd, -)
  sudo --preserve-env="$names" "$@"
}
