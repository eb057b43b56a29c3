#!/usr/bin/env bash
# make test: runs every stage even after one has failed (a red end-to-end run must not hide
# whether fuzzing and the benchmark check pass), then prints one line per stage and exits
# non-zero if any failed. The fuzzer is CPU-bound and the small benchmark waits on the
# emulator, so those two run side by side (the fuzzer's output is printed after it ends).
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

for name in lint audit unit package test-local e2e; do
  stage "$name"
done

started=$SECONDS
echo "==> make fuzz (in the background, output in $LOGS/fuzz.log) and make bench-check"
$MAKE --no-print-directory fuzz > "$LOGS/fuzz.log" 2>&1 &
fuzz_pid=$!
stage bench-check
if wait "$fuzz_pid"; then fuzz_status=passed; else fuzz_status=FAILED; fi
echo "==> make fuzz"
cat "$LOGS/fuzz.log"
record fuzz "$fuzz_status" $((SECONDS - started))

echo
echo "make test, stage by stage:"
printf '  %s\n' "${rows[@]}"
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
