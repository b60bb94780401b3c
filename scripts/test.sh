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
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --locked
if [ -f fuzz/Cargo.toml ]; then
  echo "== fuzz targets build"
  cargo build --manifest-path fuzz/Cargo.toml --locked
fi
