#!/usr/bin/env bash
# Runs every test of swapover: unit and integration tests of all crates, and the QEMU
# end-to-end tests (real GRUB, real kernels, real file systems). Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
start=$(date +%s)
echo "== clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== static binaries (musl)"
bash scripts/build-static.sh
echo "== tests"
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt
status=${PIPESTATUS[0]}
echo "== took $(( $(date +%s) - start ))s"
exit "$status"
