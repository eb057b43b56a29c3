#!/usr/bin/env bash
# make test: runs every stage even after one has failed (a red end-to-end run must not hide
# whether fuzzing or the benchmark check pass), then prints one line per stage and exits
# non-zero if any failed. The end-to-end run waits on the emulator (one Python process) most of
# the time, so the CPU-bound arm64 package build runs beside it; likewise the fuzzer beside the
# small benchmark. A background stage's output is printed when it ends.
set -uo pipefail
MAKE=${MAKE:-make}
LOGS=${STAGE_LOGS:-target/stages}
mkdir -p "$LOGS"
declare -a rows=()
passed=0
failed=0

record() { # name status seconds
  rows+=("$(printf '%-12s %-7s %5d s' "$1" "$2" "$3")")
  if [ "$2" = passed ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

stage() { # name: one make target, in the foreground
  local started=$SECONDS
  echo "==> make $1"
  if $MAKE --no-print-directory "$1"; then record "$1" passed $((SECONDS - started))
  else record "$1" FAILED $((SECONDS - started)); fi
}

beside() { # foreground background: two make targets side by side
  local started=$SECONDS status=passed
  echo "==> make $2 (in the background, output in $LOGS/$2.log) beside make $1"
  $MAKE --no-print-directory "$2" > "$LOGS/$2.log" 2>&1 &
  local pid=$!
  stage "$1"
  wait "$pid" || status=FAILED
  echo "==> make $2"
  cat "$LOGS/$2.log"
  record "$2" "$status" $((SECONDS - started))
}

for name in lint audit unit test-local; do
  stage "$name"
done
beside e2e package
beside bench-check fuzz

echo
echo "make test, stage by stage:"
printf '  %s\n' "${rows[@]}"
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
