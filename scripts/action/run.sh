#!/usr/bin/env bash
# The action's main step: the kpy command of the chosen mode, built from the inputs (which
# arrive as KPY_IN_* variables, never inside the script's text). kpy itself writes the step
# outputs, the job summary and the annotations; this step's exit code is kpy's.
set -euo pipefail
# shellcheck source=scripts/action/root.sh
. "$GITHUB_ACTION_PATH/scripts/action/root.sh"

fail() {
  echo "::error title=kpy action::$1"
  exit 2
}
args=()
# an option with its value, when the input is not empty
option() {
  if [ -n "$2" ]; then args+=("$1" "$2"); fi
}
flag() {
  case "$2" in
    true) args+=("$1") ;;
    false | "") ;;
    *) fail "input $3 is '$2': use 'true' or 'false'" ;;
  esac
}

case "$KPY_IN_MODE" in
  record)
    [ -n "$KPY_IN_COMMAND" ] || fail "mode record needs the command input"
    args=(record -c "$KPY_IN_COMMAND")
    if [ -n "$KPY_IN_FROM_SET" ]; then
      option --from-set "$KPY_IN_FROM_SET"
      option --tests "$KPY_IN_TESTS"
    else
      [ -z "$KPY_IN_TESTS" ] || fail "the tests input goes with from-set"
      [ -n "$KPY_IN_PORT" ] || fail "mode record needs the port input (or from-set)"
      option --path "$KPY_IN_PATH"
      option --set "$KPY_IN_SET"
    fi
    option --port "$KPY_IN_PORT"
    option --traffic "$KPY_IN_TRAFFIC"
    option --ready-url "$KPY_IN_READY_URL"
    ;;
  test)
    [ -n "$KPY_IN_COMMAND" ] || fail "mode test needs the command input"
    args=(test -c "$KPY_IN_COMMAND" --junit "${KPY_IN_JUNIT:-$RUNNER_TEMP/kpy-junit.xml}")
    option --path "$KPY_IN_PATH"
    option --set "$KPY_IN_SET"
    option --port "$KPY_IN_PORT"
    option --ready-url "$KPY_IN_READY_URL"
    option --shard "$KPY_IN_SHARD"
    flag --check-drift "$KPY_IN_CHECK_DRIFT" check-drift
    if [ "$KPY_IN_CHECK_DRIFT" = true ]; then option --migrations "$KPY_IN_MIGRATIONS"; fi
    ;;
  validate)
    args=(validate)
    option --path "$KPY_IN_PATH"
    option --set "$KPY_IN_SET"
    ;;
  drift)
    args=(drift --junit "${KPY_IN_JUNIT:-$RUNNER_TEMP/kpy-drift.xml}")
    option --path "$KPY_IN_PATH"
    option --set "$KPY_IN_SET"
    option --migrations "$KPY_IN_MIGRATIONS"
    ;;
  *)
    fail "input mode is '$KPY_IN_MODE': use record, test, validate or drift"
    ;;
esac

# more arguments, split as a shell would but never expanded (no $, no globs, no commands)
extra=()
if [ -n "$KPY_IN_ARGS" ]; then
  split='import shlex, sys; sys.stdout.write("".join(a + "\0" for a in shlex.split(sys.argv[1])))'
  mapfile -d '' -t extra < <("$(dirname "$KPY")/python" -c "$split" "$KPY_IN_ARGS") ||
    fail "input args cannot be split: $KPY_IN_ARGS"
fi
# a DSN holds a password: it reaches kpy through its environment, never its command line
# (and kpy keeps it from the service's); only the modes that read a schema take it
if [ -n "$KPY_IN_DSN" ]; then
  case "$KPY_IN_MODE:$KPY_IN_CHECK_DRIFT" in
    drift:* | test:true) export KPY_DSN=$KPY_IN_DSN ;;
    *) fail "the dsn input goes with mode drift, or mode test with check-drift" ;;
  esac
fi
if [ -n "$KPY_IN_CONFIG" ]; then export KPY_CONFIG=$KPY_IN_CONFIG; fi
echo "kpy ${args[*]} ${extra[*]}"
as_root "$KPY" "${args[@]}" "${extra[@]}"
