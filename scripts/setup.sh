#!/usr/bin/env bash
# Installs everything the tests and the demo need, idempotently:
# Debian packages, the musl and ARMv7 targets, rust-src for the ARMv6 std, and a Debian kernel (downloaded, unpacked, not installed).
# Downloads are cached under .cache/ (git-ignored), so a second run needs no network.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(qemu-system-x86 musl-tools grub-pc-bin grub2-common e2fsprogs dosfstools mtools
          busybox-static xz-utils zstd fdisk cpio kmod gzip ca-certificates btrfs-progs
          grub-efi-amd64-bin ovmf
          dropbear-bin openssh-client openssl python3-venv
          gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user-static
          gcc-arm-linux-gnueabi libc6-dev-armel-cross)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
    echo "setup: adding rust target x86_64-unknown-linux-musl"
    rustup target add x86_64-unknown-linux-musl
fi

# ARMv7 (Pi 2/3, BeagleBone Black): static glibc binaries built by the Debian cross gcc
# (.cargo/config.toml) and run by the tests under qemu-arm-static (docs/arm-1x-contract.md §3).
if ! rustup target list --installed | grep -qx armv7-unknown-linux-gnueabihf; then
    echo "setup: adding rust target armv7-unknown-linux-gnueabihf"
    rustup target add armv7-unknown-linux-gnueabihf
fi

# ARMv6 (Pi 1 / Zero): rustup serves no ARMv6 std, so scripts/package-stager.sh armv6 builds
# it from rust-src against Debian's armel glibc (docs/arm-1x-contract.md §3).
if ! rustup component list --installed | grep -q '^rust-src'; then
    echo "setup: adding rust component rust-src"
    rustup component add rust-src
fi

# The test kernel: Debian's generic amd64 kernel, the kind a real host runs (ext4, ata, vfat as modules).
KDIR=.cache/kernel
if [ ! -f "$KDIR/VERSION" ]; then
    mkdir -p "$KDIR"
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    if [ -z "$pkg" ]; then
        apt-get update -qq
        pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    fi
    [ -n "$pkg" ] || { echo "setup: cannot find the Debian kernel package behind linux-image-amd64" >&2; exit 1; }
    echo "setup: downloading $pkg"
    rm -rf "$KDIR/tmp" && mkdir -p "$KDIR/tmp"
    (cd "$KDIR/tmp" && apt-get -o APT::Sandbox::User=root download "$pkg" >/dev/null)
    deb=$(ls "$KDIR"/tmp/*.deb)
    rm -rf "$KDIR/root" && dpkg -x "$deb" "$KDIR/root"
    ver=$(ls "$KDIR/root/lib/modules" | head -n1)
    depmod -b "$KDIR/root" "$ver"
    rm -rf "$KDIR/tmp"
    echo "$ver" > "$KDIR/VERSION"
fi
echo "setup: kernel $(cat "$KDIR/VERSION") ready in $KDIR"

# BeagleBone Black (issue 16): a real U-Boot built with a boot counter, Debian's armhf kernel
# and busybox, all cached under .cache/ (U-Boot's build takes about 2.5 min once).
bash scripts/setup-bbb-uboot.sh

# The fleet rollout's controller: ansible-core (pinned) from PyPI into fleet/.venv.
bash fleet/install.sh >/dev/null
echo "setup: $(fleet/.venv/bin/ansible-playbook --version | sed -n 1p) in fleet/.venv"
