#!/usr/bin/env bash
# The BeagleBone Black (issue 16) test inputs, idempotently, all cached under .cache/:
#  - a real U-Boot v2023.01 (Debian's orig tarball, sha256-pinned) built for QEMU's `virt`
#    board with a generic RAM boot counter, standing in for the BBB's v2015.07 + AM33XX RTC
#    counter (docs/arm-1x-contract.md §4.1, §4.2);
#  - Debian's armhf armmp kernel (unpacked, depmod'ed) and busybox-static:armhf (unpacked,
#    not installed: it would replace the amd64 busybox-static the other tests use).
# Called by scripts/setup.sh; needs network only on the first run.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

# bison, flex, libssl-dev (mkimage's TOOLS_LIBCRYPTO), bc, make, gcc: U-Boot's build;
# device-tree-compiler: the harness edits QEMU's dtb.
PACKAGES=(qemu-system-arm bison flex gcc gcc-arm-linux-gnueabihf libc6-dev-armhf-cross
          device-tree-compiler libssl-dev bc make curl xz-utils kmod mtools dosfstools
          e2fsprogs fdisk)
if ! dpkg --print-foreign-architectures | grep -qx armhf; then
    echo "setup-bbb: adding dpkg architecture armhf"
    dpkg --add-architecture armhf
    apt-get update -qq
fi
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup-bbb: installing ${missing[*]}"
    apt-get update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- U-Boot ---------------------------------------------------------------------------------
# Source: Debian's orig tarball of u-boot 2023.01 (bookworm). Its sha256 is the one in
# http://deb.debian.org/debian/pool/main/u/u-boot/u-boot_2023.01+dfsg-2+deb12u3.dsc
# (Checksums-Sha256), checked again here after download.
UBOOT_URL=http://deb.debian.org/debian/pool/main/u/u-boot/u-boot_2023.01+dfsg.orig.tar.xz
UBOOT_SHA256=e75da6f089d063aaef39a1c17f1631791d87700662624e18de2121fa39a1ed44
# The config on top of qemu_arm_defconfig. BOOTCOUNT_GENERIC keeps the counter in a RAM word
# (0x5c000000, inside the 512 MiB at 0x40000000): kept over a warm `reset`, lost when the QEMU
# process ends, like the AM33XX RTC scratch2 word over a reboot / power cut. The address is
# kept out of Linux by a /memreserve/ in the harness dtb, and out of its RAM (so /dev/mem may
# read it) by `mem=448M` on the stand-ins' command line (qemu-tests/src/bbb_uboot.rs).
# SYS_BOOTCOUNT_SINGLEWORD: one word, the magic's upper half 0xB001 over the count, as the
# AM33XX RTC's (contract B6) — without it U-Boot keeps the count and the magic in two words,
# which `uboot_env::BootCount::from_counter_word` (the stager's reading) would take for "no
# counter". BOOTDELAY=0: no 2 s autoboot wait per boot (the counter is still stored:
# bootdelay_process runs bootcount_inc regardless).
UBOOT_CONFIG='CONFIG_BOOTCOUNT_LIMIT=y
CONFIG_BOOTCOUNT_GENERIC=y
CONFIG_SYS_BOOTCOUNT_ADDR=0x5c000000
CONFIG_SYS_BOOTCOUNT_SINGLEWORD=y
CONFIG_BOOTDELAY=0'
cfg_hash=$(printf '%s\n%s\n' "$UBOOT_SHA256" "$UBOOT_CONFIG" | sha256sum | cut -c1-16)
UDIR=.cache/uboot/$cfg_hash
if [ ! -f "$UDIR/u-boot.bin" ] || [ ! -x "$UDIR/mkimage" ]; then
    tarball=.cache/uboot-src/u-boot_2023.01+dfsg.orig.tar.xz
    if ! { [ -f "$tarball" ] && echo "$UBOOT_SHA256  $tarball" | sha256sum -c --quiet >/dev/null 2>&1; }; then
        echo "setup-bbb: downloading $UBOOT_URL"
        mkdir -p .cache/uboot-src
        curl -fsSL -o "$tarball.part" "$UBOOT_URL"
        echo "$UBOOT_SHA256  $tarball.part" | sha256sum -c --quiet
        mv "$tarball.part" "$tarball"
    fi
    echo "setup-bbb: building U-Boot qemu_arm_defconfig + bootcount into $UDIR (about 2.5 min)"
    build=.cache/uboot-src/build
    rm -rf "$build" && mkdir -p "$build"
    tar -xJf "$tarball" -C "$build" --strip-components=1
    printf '%s\n' "$UBOOT_CONFIG" > "$build/bootcount.config"
    (
        cd "$build"
        export CROSS_COMPILE=arm-linux-gnueabihf-
        make -s qemu_arm_defconfig
        ./scripts/kconfig/merge_config.sh -m .config bootcount.config >/dev/null
        make -s olddefconfig
        for line in $UBOOT_CONFIG; do
            grep -qx "$line" .config || { echo "setup-bbb: $line did not stick in .config" >&2; exit 1; }
        done
        make -s -j"$(nproc)" u-boot.bin >/dev/null
    )
    mkdir -p "$UDIR"
    cp "$build/u-boot.bin" "$UDIR/u-boot.bin.part"
    cp "$build/tools/mkimage" "$UDIR/mkimage"
    cp "$build/.config" "$UDIR/config"
    mv "$UDIR/u-boot.bin.part" "$UDIR/u-boot.bin"
    rm -rf "$build"
fi
ln -sfn "$cfg_hash" .cache/uboot/current
echo "setup-bbb: U-Boot ready in $UDIR"

# --- Debian armhf armmp kernel and busybox-static:armhf -------------------------------------
fetch_armhf() { # $1 = package, $2 = unpack dir
    rm -rf "$2.tmp" && mkdir -p "$2.tmp"
    # The armhf package lists may be missing (architecture just added): update once and retry.
    (cd "$2.tmp" && { apt-get -o APT::Sandbox::User=root download "$1:armhf" >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get -o APT::Sandbox::User=root download "$1:armhf" >/dev/null; }; })
    rm -rf "$2" && dpkg -x "$2".tmp/*.deb "$2"
    rm -rf "$2.tmp"
}
KDIR=.cache/kernel-armhf
if [ ! -f "$KDIR/VERSION" ]; then
    pkg=$(apt-cache depends linux-image-armmp:armhf 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    if [ -z "$pkg" ]; then
        apt-get update -qq
        pkg=$(apt-cache depends linux-image-armmp:armhf | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    fi
    pkg=${pkg%:armhf}
    [ -n "$pkg" ] || { echo "setup-bbb: no package behind linux-image-armmp:armhf" >&2; exit 1; }
    echo "setup-bbb: downloading $pkg:armhf"
    fetch_armhf "$pkg" "$KDIR/root"
    ver=$(ls "$KDIR/root/lib/modules" | head -n1)
    depmod -b "$KDIR/root" "$ver"
    echo "$ver" > "$KDIR/VERSION"
fi
echo "setup-bbb: armhf kernel $(cat "$KDIR/VERSION") ready in $KDIR"
BDIR=.cache/busybox-armhf
if [ ! -x "$BDIR/root/bin/busybox" ]; then
    echo "setup-bbb: downloading busybox-static:armhf"
    fetch_armhf busybox-static "$BDIR/root"
fi
echo "setup-bbb: armhf busybox ready in $BDIR"
