#!/usr/bin/env bash
# Runs each cargo fuzz target (default: event path) for FUZZ_SECONDS (default 30) from the
# committed seed corpus, on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo fuzz pass its -Z
# flags, and no sanitizer (-s none): the code is safe Rust, we look for panics (overflow checks
# and debug assertions are on) and invalid paths, not memory errors.
#
# New corpus entries go to a temporary directory and are dropped, unless FUZZ_KEEP_CORPUS=1
# (then they are added to fuzz/corpus/<target>; minimise with `cargo fuzz cmin` before a commit).
# Exits non-zero if a target crashed, after printing the crashing inputs' paths.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cargo_fuzz="$root/.tools/bin/cargo-fuzz"
seconds=${FUZZ_SECONDS:-30}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(event path)

"$root/scripts/rust-tools.sh"  # cargo-fuzz at its pinned version (and cargo-deny)

export RUSTC_BOOTSTRAP=1
cd "$here"
"$cargo_fuzz" build -s none

status=0
for target in "${targets[@]}"; do
  case $target in
    event) options=(-max_len=300000 -dict="$here/event.dict") ;;
    path) options=(-max_len=4096) ;;
    *) echo "fuzz: unknown target $target" >&2; exit 2 ;;
  esac
  scratch=$(mktemp -d)
  if [ "${FUZZ_KEEP_CORPUS:-0}" = 1 ]; then
    corpus=("$here/corpus/$target")
  else
    corpus=("$scratch/new" "$here/corpus/$target")
    mkdir "$scratch/new"
  fi
  mkdir -p "$here/artifacts/$target"
  touch "$scratch/started"
  echo "fuzz: $target for ${seconds}s"
  code=0
  "$cargo_fuzz" run -s none "$target" "${corpus[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "${options[@]}" >"$scratch/log" 2>&1 || code=$?
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' \
    "$scratch/log" || true
  if [ "$code" != 0 ]; then
    # The panic (or libFuzzer's report) and its input; the whole log if there is neither.
    grep -E -A4 'panicked at|ERROR: libFuzzer|^SUMMARY' "$scratch/log" >&2 || cat "$scratch/log" >&2
    echo "fuzz: $target FAILED (exit $code); crashing input(s), to rerun with" \
      "RUSTC_BOOTSTRAP=1 $cargo_fuzz run -s none $target <file>:" >&2
    find "$here/artifacts/$target" -type f -newer "$scratch/started" >&2
    status=1
  fi
  rm -rf "$scratch"
done
exit $status
