#!/usr/bin/env bash
# Builds vchat and runs the demo. Installs missing system packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo run --release --locked -- demo "$@"
