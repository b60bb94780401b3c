#!/usr/bin/env bash
# Runs everything CI runs: formatting, lints, the whole test suite, and a
# build of the fuzz targets. Installs missing system packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
if [ -f fuzz/Cargo.toml ]; then
  echo "== fuzz targets build"
  # Not --locked: fuzz/ is its own workspace whose lock must follow every
  # dependency change of the main crate; CI checks that the target builds.
  cargo build --manifest-path fuzz/Cargo.toml
fi
