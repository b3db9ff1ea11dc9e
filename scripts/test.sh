#!/usr/bin/env bash
# Runs every test of swapover: unit and integration tests of all crates, and the QEMU
# end-to-end tests (real GRUB, real kernels, real file systems). Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
start=$(date +%s)
echo "== disk: $(df -h --output=avail . | tail -1 | tr -d ' ') free in $(pwd)"
echo "== rustfmt"
cargo fmt --all --check
echo "== clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== static binaries (musl)"
bash scripts/build-static.sh
# The fleet test's check-in client for the resinOS stand-in (test-only, static musl); the
# test would build it itself, but here its compile time stays out of the test's time.
cargo build --quiet --release --target x86_64-unknown-linux-musl -p resin-checkin
echo "== tests"
status=0
cargo test --workspace --exclude qemu-tests --no-fail-fast || status=1
# The ARMv7 build's flash engine (xz decoding by lzma-sys, sha256, positional writes past
# 2 GiB) on the BeagleBone Black's CPU: .cargo/config.toml's runner is qemu-arm-static -cpu
# cortex-a8. (The ARM stager and migrator binaries are run by stager/tests/arm_binaries.rs.)
echo "== ARMv7 migrator flash tests (qemu-arm-static -cpu cortex-a8)"
cargo test --target armv7-unknown-linux-gnueabihf -p migrator --test flash_engine || status=1
# The same on the Raspberry Pi 1's ARM1176 (ARMv6, no NEON: an ARMv7 instruction on the path
# is SIGILL), the std built from rust-src as scripts/package-stager.sh armv6 does, in its
# target directory.
echo "== ARMv6 migrator flash tests (qemu-arm-static -cpu arm1176)"
RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=target/armv6-build cargo test -Zbuild-std \
    --target arm-unknown-linux-gnueabi -p migrator --test flash_engine || status=1
echo "== disk before the QEMU tests: $(df -h --output=avail . | tail -1 | tr -d ' ') free"
echo "== QEMU end-to-end tests (one VM at a time: TCG on 2 cores; timings printed)"
cargo test -p qemu-tests --no-fail-fast -- --test-threads=1 --nocapture || status=1
echo "== took $(( $(date +%s) - start ))s"
exit "$status"
