#!/usr/bin/env bash
# Builds the static (musl) migrator and stager, and packages the stager with the migrator
# appended to it (the one binary a customer runs). Prints their sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x scripts/package-stager.sh ]; then
    bash scripts/package-stager.sh
else
    cargo build --quiet --release --target x86_64-unknown-linux-musl -p migrator
fi
for f in target/x86_64-unknown-linux-musl/release/migrator target/swapover/stager; do
    [ -f "$f" ] && echo "size: $f $(stat -c %s "$f") bytes"
done
exit 0
