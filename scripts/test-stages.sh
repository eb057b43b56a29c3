#!/usr/bin/env bash
# make test: runs every stage even after one has failed (a red end-to-end run must not hide
# whether fuzzing or the benchmark check pass), then prints one line per stage and exits
# non-zero if any failed.
#
# Two lanes keep both cores of a 2-core machine busy:
# - the emulator lane, in the foreground: the x86 release build, then the end-to-end run and the
#   benchmark check, which mostly wait on the emulators (Python processes, a core each);
# - the CPU lane, in the background: the shared tools (virtualenvs, linters), then the arm64
#   package build, lint, unit tests, the local stack's tests, routing by discovery on a small
#   stack of its own, the dependency audit and fuzzing,
#   at a lower priority (nice) after the tools: the emulator lane is the longer one, and its
#   end-to-end run has the stack's timing to keep, so it gets a core whenever it asks.
# The emulator lane waits for the tools stage before the end-to-end run (a dependency, not a
# race); the package stage installs its own tools. A background stage's output goes to
# $LOGS/<stage>.log; a line says when it ends, and the logs are printed after both lanes.
set -uo pipefail
MAKE=${MAKE:-make}
LOGS=${STAGE_LOGS:-target/stages}
EMULATOR_LANE=(build e2e bench-check)
CPU_LANE=(tools package lint unit test-local e2e-discovery audit fuzz)
rm -rf "$LOGS"
mkdir -p "$LOGS"
started=$SECONDS

run() { # stage [log [nice]]: one make target; records "stage status seconds" in $LOGS/<stage>.result
  local name=$1 log=${2:-} niceness=${3:-0} t0=$SECONDS status=passed
  if [ -n "$log" ]; then
    nice -n "$niceness" $MAKE --no-print-directory "$name" > "$log" 2>&1 || status=FAILED
    echo "==> [$((SECONDS - started)) s] background stage $name $status ($((SECONDS - t0)) s; output in $log)"
  else
    echo "==> [$((SECONDS - started)) s] make $name"
    $MAKE --no-print-directory "$name" || status=FAILED
  fi
  echo "$name $status $((SECONDS - t0))" > "$LOGS/$name.result"
}

cpu_lane() {
  run "${CPU_LANE[0]}" "$LOGS/${CPU_LANE[0]}.log"
  for name in "${CPU_LANE[@]:1}"; do
    # The discovery stack runs the emulator lane's release binaries (a dependency, not a race).
    if [ "$name" = e2e-discovery ]; then while [ ! -e "$LOGS/build.result" ]; do sleep 1; done; fi
    run "$name" "$LOGS/$name.log" 10
  done
}

cpu_lane &
cpu_pid=$!
run "${EMULATOR_LANE[0]}"
# The end-to-end run needs the shared tools (the emulator's virtualenv).
while [ ! -e "$LOGS/tools.result" ]; do sleep 1; done
for name in "${EMULATOR_LANE[@]:1}"; do run "$name"; done
wait "$cpu_pid"

for name in "${CPU_LANE[@]}"; do
  echo
  echo "==> make $name (ran in the background)"
  cat "$LOGS/$name.log"
done

passed=0
failed=0
echo
echo "make test, stage by stage ($((SECONDS - started)) s in all; the lanes ran side by side):"
for name in "${EMULATOR_LANE[@]}" "${CPU_LANE[@]}"; do
  read -r stage status seconds < "$LOGS/$name.result" || { stage=$name status=FAILED seconds=0; }
  lane=emulator
  [[ " ${CPU_LANE[*]} " == *" $name "* ]] && lane=cpu
  printf '  %-14s %-7s %5d s  (%s lane)\n' "$stage" "$status" "$seconds" "$lane"
  if [ "$status" = passed ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
