#!/usr/bin/env bash
# Builds the static migrator and stager (x86_64 musl, ARMv7 and ARMv6 static glibc), and packages
# each stager with its migrator appended to it (the one binary a customer runs). Prints
# their sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x scripts/package-stager.sh ]; then
    bash scripts/package-stager.sh
    bash scripts/package-stager.sh armv7
    bash scripts/package-stager.sh armv6
else
    cargo build --quiet --release --target x86_64-unknown-linux-musl -p migrator
fi
for f in target/x86_64-unknown-linux-musl/release/migrator target/swapover/stager \
    target/armv7-unknown-linux-gnueabihf/release/migrator target/swapover/armv7/stager \
    target/armv6-build/arm-unknown-linux-gnueabi/release/migrator target/swapover/armv6/stager; do
    [ -f "$f" ] && echo "size: $f $(stat -c %s "$f") bytes"
done
exit 0
