#!/usr/bin/env bash
# Builds the static stager and migrator and packages them as the one binary a customer
# runs: target/swapover/stager = the stager with the migrator appended as
#   [migrator bytes][u64 LE length][32-byte sha256 of the migrator][8 bytes "SWAPMIGR"]
# which `stager stage` reads back from /proc/self/exe and checks before use
# (stager::migrator_payload). Prints where the package is and its sha256.
#
# Usage: package-stager.sh [x86_64 | armv7 | armv6]
#   x86_64 (default): musl, target/swapover/stager
#   armv7: static glibc for ARMv7 (Pi 2/3, BeagleBone Black; .cargo/config.toml and
#          docs/arm-1x-contract.md §3), target/swapover/armv7/stager
#   armv6: static glibc (Debian armel) for ARMv6 (Pi 1 / Zero), target/swapover/armv6/stager;
#          rustup serves no ARMv6 std, so the std is built from source (`-Zbuild-std`, the
#          rust-src component; RUSTC_BOOTSTRAP lets stable cargo take the flag), in its
#          own target directory target/armv6-build
set -euo pipefail
cd "$(dirname "$0")/.."

# Run from a test, this script inherits the test's package variables (cargo test sets
# CARGO_PKG_NAME, CARGO_MANIFEST_DIR, …); ring's build script tracks two of them, so every
# switch between a test's call and a shell's rebuilt ring and all above it (~3 min per
# target). The build must not depend on who calls it.
for v in $(compgen -e); do
    case "$v" in
        CARGO_MANIFEST_* | CARGO_PKG_* | CARGO_CRATE_* | CARGO_BIN_* | CARGO_PRIMARY_PACKAGE | \
            CARGO_TARGET_TMPDIR | OUT_DIR) unset "$v" ;;
    esac
done

arch=${1:-x86_64}
case "$arch" in
    x86_64) target=x86_64-unknown-linux-musl out_dir=target/swapover run=() ;;
    armv7)
        target=armv7-unknown-linux-gnueabihf out_dir=target/swapover/armv7
        run=(qemu-arm-static -cpu cortex-a8)
        ;;
    armv6)
        target=arm-unknown-linux-gnueabi out_dir=target/swapover/armv6
        run=(qemu-arm-static -cpu arm1176)
        ;;
    *) echo "package-stager: unknown architecture '$arch' (x86_64, armv7 or armv6)" >&2; exit 2 ;;
esac
build_dir=target
if [ "$arch" = armv6 ]; then
    # Its own target directory: a build under RUSTC_BOOTSTRAP fingerprints the host's build
    # scripts differently, and sharing target/release/build with the other builds would
    # rebuild them all, back and forth, on every call.
    build_dir=target/armv6-build
    RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$build_dir" cargo build --quiet --release \
        -Zbuild-std=std,panic_abort --target "$target" -p migrator -p stager
else
    cargo build --quiet --release --target "$target" -p migrator -p stager
fi
stager="$build_dir/$target/release/stager"
migrator="$build_dir/$target/release/migrator"
for f in "$stager" "$migrator"; do
    [ -f "$f" ] || { echo "package-stager: $f was not built" >&2; exit 1; }
done

out="$out_dir/stager"
mkdir -p "$out_dir"
tmp="$out.partial"
cp "$stager" "$tmp"
cat "$migrator" >>"$tmp"

# u64 little-endian length, then the raw sha256, then the magic.
length=$(stat -c %s "$migrator")
le=""
for _ in 1 2 3 4 5 6 7 8; do
    le+=$(printf '\\x%02x' $((length & 0xff)))
    length=$((length >> 8))
done
printf "$le" >>"$tmp"
digest=$(sha256sum "$migrator" | cut -d' ' -f1)
raw=""
for ((i = 0; i < 64; i += 2)); do
    raw+="\\x${digest:i:2}"
done
printf "$raw" >>"$tmp"
printf 'SWAPMIGR' >>"$tmp"
chmod 0755 "$tmp"
mv "$tmp" "$out"

# The package must carry exactly this migrator: the stager checks it the same way.
"${run[@]}" "$out" --version >/dev/null
echo "packaged $out ($(stat -c %s "$out") bytes, migrator $(stat -c %s "$migrator") bytes, migrator sha256 $digest)"
