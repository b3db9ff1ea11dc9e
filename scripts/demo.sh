#!/usr/bin/env bash
# The full migration demo in QEMU: builds the legacy Project STEM host and the resinOS
# stand-in with its flasher download (a dashboard-style .zip), runs the real stager inside the
# host on that .zip, lets the migrator take over, and boots resinOS to its verdict. Says what
# is missing where a part is not there yet.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build-static.sh
cargo run --quiet --release -p qemu-tests --bin swapover-demo
