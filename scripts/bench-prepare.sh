#!/usr/bin/env bash
# Preparation benchmark (issue 15, point 9): what a customer downloads -> the staged image.
#
# Builds a resinOS *flasher* download around the >= 1 GiB image scripts/bench-flash.sh
# builds (its resin-boot gets the `/resin-image` flag a real image has): msdos table,
# p1 flash-boot (vfat: /resin-image-flasher, device-type.json with slug intel-nuc,
# grub.cfg_internal, grub/boot.img from grub-pc-bin, grub/core.img from grub-mkimage),
# p2 flash-rootA (ext4 made with mkfs.ext4 -d, holding
# /opt/resin-image-genericx86-64.resinos-img = that image), p3 4 MiB, p4 extended, p5 and
# p6 without file system; zips it (one .img entry, deflate, python3's zipfile). Then, RUNS
# times each:
#   - swapover prepare: the stager's own code (stager/benches/prepare_bench.rs calls
#     stager::stage::prepare::prepare; release build for x86_64-unknown-linux-musl like the
#     shipped stager): zip entry inflated, flash-rootA's ext4 walked to the inner image,
#     grub.cfg_internal and the BIOS boot code added, re-encoded as multi-block xz, fsynced;
#   - the alternative by hand: unzip -p to a file, debugfs -R "dump ..." of the inner image,
#     xz -T0 -1 (the same preset and 3 MiB blocks), sync; it adds neither grub.cfg nor boot
#     code, so it does less;
#   - the flash of the staged image through the migrator's engine
#     (migrator/benches/flash_bench.rs, writing every byte).
# The flashed target is then checked: MBR boot code = grub/boot.img, /grub/grub.cfg and
# /EFI/BOOT/grub.cfg = grub.cfg_internal, everything after resin-boot = the inner image.
# Peak RSS comes from /usr/bin/time -v; the script fails when swapover's prepare takes more
# than MAX_RSS_MIB (64). Results go to stdout and target/bench-prepare.md, and into
# README.md between its bench-prepare markers.
#
# Environment: RUNS (default 3), BENCH_DIR (default target/bench-flash, shared with
# bench-flash.sh; the built images are cached there, delete flasher.done to rebuild the
# flasher), MAX_RSS_MIB (default 64).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${BENCH_DIR:-$ROOT/target/bench-flash}
RUNS=${RUNS:-3}
MAX_RSS_MIB=${MAX_RSS_MIB:-64}
REPORT=$ROOT/target/bench-prepare.md
IMG=$WORK/resinos.img
INNER=$WORK/inner.img
FLASHER=$WORK/flasher.img
ZIP=$WORK/flasher.zip
MACHINE=genericx86-64
INNER_PATH=/opt/resin-image-$MACHINE.resinos-img
STAGE_DIR=$WORK/prepare-cache
ALT_DIR=$WORK/alternative
TARGET=$WORK/target-prepare.img
export LC_ALL=C
export BENCH_DIR=$WORK

need() { command -v "$1" >/dev/null || { echo "bench-prepare: '$1' is missing; install it ($2)" >&2; exit 1; }; }
need sfdisk fdisk
need mkfs.ext4 e2fsprogs
need debugfs e2fsprogs
need mkfs.vfat dosfstools
need mcopy mtools
need xz xz-utils
need jq jq
need bc bc
need python3 python3
need grub-mkimage grub2-common
[ -f /usr/lib/grub/i386-pc/boot.img ] || { echo "bench-prepare: /usr/lib/grub/i386-pc is missing; apt-get install grub-pc-bin" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench-prepare: /usr/bin/time is missing; apt-get install time" >&2; exit 1; }

# The >= 1 GiB resinOS-layout image: bench-flash.sh builds and caches it.
[ -f "$WORK/image.done" ] || BUILD_ONLY=1 bash "$ROOT/scripts/bench-flash.sh"

MIB=$((1024 * 1024))
BOOT_START_MIB=4   # resin-boot of bench-flash.sh's image: 4 MiB .. 44 MiB
BOOT_END=$(( 44 * MIB ))
# The flasher's layout, in sectors: flash-rootA holds the inner image plus ext4's overhead.
ROOTA_START=90112
ROOTA_MIB=$(( $(stat -c %s "$IMG") / MIB + 96 ))

build_flasher() {
  echo "bench-prepare: building the flasher download around $IMG (cached in $WORK)" >&2
  local tree=$WORK/flasher-tree
  rm -rf "$tree" "$INNER" "$FLASHER" "$ZIP" "$WORK/flasher.done"
  mkdir -p "$tree/boot/grub" "$tree/rootA/opt"
  # The inner image: the flash bench's image with the flag file of a normal resinOS image.
  cp --sparse=always "$IMG" "$INNER"
  printf '' > "$tree/resin-image"
  mcopy -i "$INNER@@${BOOT_START_MIB}M" "$tree/resin-image" ::/resin-image
  sha256sum "$INNER" | cut -d' ' -f1 > "$INNER.sha256"

  # flash-boot: what resin-image-flasher.bb puts there.
  printf '' > "$tree/boot/resin-image-flasher"
  cat > "$tree/boot/device-type.json" <<'JSON'
{"slug": "intel-nuc", "name": "Intel NUC", "arch": "amd64", "state": "released", "yocto": {"machine": "genericx86-64", "image": "resin-image-flasher", "fstype": "resinos-img"}}
JSON
  cat > "$tree/boot/grub.cfg_internal" <<'CFG'
default=boot
timeout=3
menuentry 'boot' {
  search --set=root --label resin-rootA
  linux /boot/bzImage root=LABEL=resin-rootA rootwait
}
CFG
  cp /usr/lib/grub/i386-pc/boot.img "$tree/boot/grub/boot.img"
  grub-mkimage -O i386-pc -p '(hd0,msdos1)/grub' -o "$tree/boot/grub/core.img" \
    biosdisk part_msdos fat ext2 normal search search_label linux
  truncate -s 40M "$WORK/flash-boot.fs"; mkfs.vfat -n flash-boot "$WORK/flash-boot.fs" >/dev/null 2>&1
  mcopy -s -i "$WORK/flash-boot.fs" "$tree/boot"/* ::/

  # flash-rootA: the inner image in /opt (mkfs.ext4 -d keeps its holes).
  cp --sparse=always "$INNER" "$tree/rootA$INNER_PATH"
  truncate -s "${ROOTA_MIB}M" "$WORK/flash-rootA.fs"
  mkfs.ext4 -q -F -L flash-rootA -d "$tree/rootA" "$WORK/flash-rootA.fs"

  # MiB: 4 reserved | flash-boot 40 | flash-rootA | p3 4 | extended: p5 4, p6 4.
  local rootA_sectors=$(( ROOTA_MIB * 2048 ))
  local p3=$(( ROOTA_START + rootA_sectors ))
  local ext=$(( p3 + 8192 ))
  local total_mib=$(( (ext + 3 * 8192) / 2048 ))
  truncate -s "${total_mib}M" "$FLASHER"
  sfdisk -q "$FLASHER" <<LAYOUT
label: dos
start=8192, size=81920, type=c, bootable
start=$ROOTA_START, size=$rootA_sectors, type=83
start=$p3, size=8192, type=83
start=$ext, size=$(( 3 * 8192 )), type=5
start=$(( ext + 2048 )), size=6144, type=83
start=$(( ext + 8192 + 2048 )), size=6144, type=83
LAYOUT
  dd if="$WORK/flash-boot.fs" of="$FLASHER" bs=1M seek=4 conv=notrunc,sparse status=none
  dd if="$WORK/flash-rootA.fs" of="$FLASHER" bs=1M seek=$(( ROOTA_START / 2048 )) conv=notrunc,sparse status=none
  cp "$tree/boot/grub.cfg_internal" "$tree/boot/grub/boot.img" "$tree/boot/grub/core.img" "$WORK/"
  rm -rf "$tree" "$WORK/flash-boot.fs" "$WORK/flash-rootA.fs"

  echo "bench-prepare: zipping the flasher (one .img entry, deflate)" >&2
  python3 - "$FLASHER" "$ZIP.tmp" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[2], "w", compression=zipfile.ZIP_DEFLATED) as z:
    z.write(sys.argv[1], arcname="resin-intel-nuc-2.x-bench-flasher.img")
PY
  mv "$ZIP.tmp" "$ZIP"
  stat -c %s "$FLASHER" > "$FLASHER.bytes"
  rm -f "$FLASHER"
  touch "$WORK/flasher.done"
}

[ -f "$WORK/flasher.done" ] || build_flasher
[ "${BUILD_ONLY:-}" = 1 ] && exit 0
INNER_BYTES=$(stat -c %s "$INNER")
FLASHER_BYTES=$(cat "$FLASHER.bytes")
ZIP_BYTES=$(stat -c %s "$ZIP")

# Both benches as the shipped binaries are built: release profile, static musl.
bench_bin() { # package bench
  (cd "$ROOT" && cargo bench -p "$1" --bench "$2" --no-run --target x86_64-unknown-linux-musl \
      --message-format=json 2>/dev/null) \
    | jq -r --arg n "$2" 'select(.reason == "compiler-artifact" and .target.name == $n) | .executable' | tail -1
}
echo "bench-prepare: building the prepare and flash benches (release profile, static musl)" >&2
PREPARE_BIN=$(bench_bin stager prepare_bench)
FLASH_BIN=$(bench_bin migrator flash_bench)
[ -x "$PREPARE_BIN" ] || { echo "bench-prepare: could not build stager/benches/prepare_bench.rs" >&2; exit 1; }
[ -x "$FLASH_BIN" ] || { echo "bench-prepare: could not build migrator/benches/flash_bench.rs" >&2; exit 1; }

now() { date +%s.%N; }
rss_of() { sed -n 's/.*Maximum resident set size (kbytes): //p' "$1"; }
RESULTS=$WORK/prepare-results.tsv
: > "$RESULTS"   # label seconds rss_kib

run_prepare() {
  rm -rf "$STAGE_DIR"; mkdir -p "$STAGE_DIR"
  local out t0 t1
  t0=$(now)
  out=$(/usr/bin/time -v -o "$WORK/prepare.time" "$PREPARE_BIN" "$ZIP" "$STAGE_DIR" --firmware bios)
  t1=$(now)
  STAGED=$(sed -n 's/.*staged=\([^ ]*\).*/\1/p' <<<"$out" | head -1)
  [ -f "$STAGED" ] || { echo "bench-prepare: prepare made no staged file: $out" >&2; exit 1; }
  ORIGIN=$(grep '^origin: ' <<<"$out" | sed 's/^origin: //')
  printf 'prepare\t%s\t%s\n' "$(echo "$t1 - $t0" | bc)" "$(rss_of "$WORK/prepare.time")" >> "$RESULTS"
}

# The obvious pipeline by hand: a file for the flasher (debugfs needs to seek), one for the
# inner image, then the same xz preset, multi-threaded, and an fsync.
run_alternative() {
  rm -rf "$ALT_DIR"; mkdir -p "$ALT_DIR"
  local t0 t1 r1 r2 r3 r4
  t0=$(now)
  if [ "$ALT_LABEL" = 'unzip -p' ]; then
    /usr/bin/time -v -o "$ALT_DIR/1.time" sh -c 'unzip -p "$1" > "$2"' sh "$ZIP" "$ALT_DIR/flasher.img"
  else
    /usr/bin/time -v -o "$ALT_DIR/1.time" python3 -c '
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(z.namelist()[0]) as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)' "$ZIP" "$ALT_DIR/flasher.img"
  fi
  /usr/bin/time -v -o "$ALT_DIR/2.time" debugfs -R "dump $INNER_PATH $ALT_DIR/inner.img" \
    "$ALT_DIR/flasher.img?offset=$(( ROOTA_START * 512 ))" 2>/dev/null
  /usr/bin/time -v -o "$ALT_DIR/3.time" sh -c 'xz -T0 -1 -c "$1" > "$2"' sh "$ALT_DIR/inner.img" "$ALT_DIR/staged.img.xz"
  /usr/bin/time -v -o "$ALT_DIR/4.time" sync "$ALT_DIR/staged.img.xz"
  t1=$(now)
  cmp -s <(xz -dc "$ALT_DIR/staged.img.xz") "$INNER" \
    || { echo "bench-prepare: the alternative pipeline produced a wrong image" >&2; exit 1; }
  ALT_TEMP_BYTES=$(( $(stat -c %s "$ALT_DIR/flasher.img") + $(stat -c %s "$ALT_DIR/inner.img") ))
  r1=$(rss_of "$ALT_DIR/1.time"); r2=$(rss_of "$ALT_DIR/2.time"); r3=$(rss_of "$ALT_DIR/3.time"); r4=$(rss_of "$ALT_DIR/4.time")
  printf 'alternative\t%s\t%s\n' "$(echo "$t1 - $t0" | bc)" \
    "$(printf '%s\n' "$r1" "$r2" "$r3" "$r4" | sort -g | tail -1)" >> "$RESULTS"
  rm -rf "$ALT_DIR"
}

run_flash() {
  rm -f "$TARGET"; sync
  local out
  out=$(/usr/bin/time -v -o "$WORK/flash-staged.time" "$FLASH_BIN" "$STAGED" "$TARGET")
  FLASH_MODE=$(sed -n 's/.*mode=\([^ ]*\).*/\1/p' <<<"$out")
  printf 'flash\t%s\t%s\n' "$(sed -n 's/.*write_s=\([0-9.]*\).*/\1/p' <<<"$out")" \
    "$(rss_of "$WORK/flash-staged.time")" >> "$RESULTS"
  printf 'verify\t%s\t\n' "$(sed -n 's/.*verify_s=\([0-9.]*\).*/\1/p' <<<"$out")" >> "$RESULTS"
}

# What was flashed is the inner image with the flasher's additions, and nothing else changed.
check_flashed() {
  cmp -s -n 440 "$TARGET" "$WORK/boot.img" \
    || { echo "bench-prepare: the flashed MBR does not hold grub/boot.img's boot code" >&2; exit 1; }
  cmp -s <(tail -c +513 "$TARGET" | head -c "$(stat -c %s "$WORK/core.img")") "$WORK/core.img" \
    || { echo "bench-prepare: the flashed disk does not hold grub/core.img at byte 512" >&2; exit 1; }
  for cfg in ::/grub/grub.cfg ::/EFI/BOOT/grub.cfg; do
    cmp -s <(mtype -i "$TARGET@@${BOOT_START_MIB}M" "$cfg") "$WORK/grub.cfg_internal" \
      || { echo "bench-prepare: the flashed resin-boot's $cfg is not grub.cfg_internal" >&2; exit 1; }
  done
  cmp -s <(tail -c +$(( BOOT_END + 1 )) "$TARGET" | head -c $(( INNER_BYTES - BOOT_END ))) \
         <(tail -c +$(( BOOT_END + 1 )) "$INNER") \
    || { echo "bench-prepare: the flashed image differs from the inner image after resin-boot" >&2; exit 1; }
}

ALT_LABEL='python3 zipfile'; command -v unzip >/dev/null && ALT_LABEL='unzip -p'
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for run in $(seq "$RUNS"); do
  echo "bench-prepare: run $run/$RUNS: swapover prepare" >&2
  run_prepare
  echo "bench-prepare: run $run/$RUNS: flash of the staged image" >&2
  run_flash
  [ "$run" = 1 ] && check_flashed
  echo "bench-prepare: run $run/$RUNS: the alternative ($ALT_LABEL, debugfs, xz)" >&2
  run_alternative
done
STAGED_BYTES=$(stat -c %s "$STAGED")
STAGED_BLOCKS=$(xz --robot -lv "$STAGED" | awk '$1 == "totals" {print $3}')
rm -f "$TARGET"

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -F'\t' -v l="$1" -v c="$2" '$1 == l && $c != "" {print $c}' "$RESULTS"; }
P=$(col prepare 2 | median); PR=$(col prepare 3 | sort -g | tail -1)
A=$(col alternative 2 | median); AR=$(col alternative 3 | sort -g | tail -1)
F=$(col flash 2 | median); FR=$(col flash 3 | sort -g | tail -1)
V=$(col verify 2 | median)
gib() { printf '%.2f' "$(echo "$1 / 1073741824" | bc -l)"; }
mib() { printf '%.1f' "$(echo "$1 / 1048576" | bc -l)"; }
f2() { printf '%.2f' "$1"; }
PREPARE_MIB=$(mib "$(( PR * 1024 ))")
{
  echo "## Preparation benchmark"
  echo
  echo "Machine: $(nproc) cores ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, Linux $(uname -r), files on $(df -T "$WORK" | awk 'NR==2 {print $2}'); $(xz --version | sed -n 1p); load average before the runs: $LOAD_BEFORE."
  echo "Download: a resinOS flasher for intel-nuc, $(gib "$FLASHER_BYTES") GiB raw, zipped (deflate) to $(gib "$ZIP_BYTES") GiB; its inner image $INNER_PATH is the $(gib "$INNER_BYTES") GiB image of the flash benchmark. Staged: $(mib "$STAGED_BYTES") MiB multi-block xz ($STAGED_BLOCKS blocks)."
  echo "Median of $RUNS run(s) each; seconds are wall time including fsync; peak RSS from /usr/bin/time -v (the alternative: its largest step)."
  echo
  echo "| step | tool | s | vs alternative | peak RSS MiB | scratch on disk |"
  echo "|---|---|---|---|---|---|"
  printf '| flasher .zip → staged .img.xz | swapover prepare (extract + grub.cfg + boot code + xz) | %s | %.2f× | %s | %s MiB |\n' \
    "$(f2 "$P")" "$(echo "$A / $P" | bc -l)" "$PREPARE_MIB" "$(( BOOT_END / MIB ))"
  printf '| flasher .zip → staged .img.xz | %s > file; debugfs dump; xz -T0 -1; sync (no additions) | %s | 1.00× | %s | %s GiB |\n' \
    "$ALT_LABEL" "$(f2 "$A")" "$(mib "$(( AR * 1024 ))")" "$(gib "$ALT_TEMP_BYTES")"
  printf '| staged .img.xz → disk | swapover flash (%s, writes every byte) | %s (+ %s verify) |  | %s |  |\n' \
    "$FLASH_MODE" "$(f2 "$F")" "$(f2 "$V")" "$(mib "$(( FR * 1024 ))")"
  echo
  printf 'flasher .zip (%s GiB image, %s GiB zipped) → staged .img.xz: extract+stage %s s, peak RSS %s MiB | flash of the staged image: %s s | alternative: %s s (%.2f× swapover'"'"'s time)\n' \
    "$(gib "$FLASHER_BYTES")" "$(gib "$ZIP_BYTES")" "$(f2 "$P")" "$PREPARE_MIB" "$(f2 "$F")" "$(f2 "$A")" "$(echo "$A / $P" | bc -l)"
} | tee "$REPORT"
echo "bench-prepare: raw results in $RESULTS, table in $REPORT; what prepare said:" >&2
sed 's/^/  /' <<<"$ORIGIN" >&2
rm -rf "$STAGE_DIR"

# Put this run's table into the README, between its bench-prepare markers.
README=$ROOT/README.md
if grep -q '^<!-- bench-prepare:begin' "$README" && grep -q '^<!-- bench-prepare:end' "$README"; then
  awk -v report="$REPORT" '
    /^<!-- bench-prepare:begin/ { print; while ((getline line < report) > 0) if (line !~ /^## /) print line; skip = 1; next }
    /^<!-- bench-prepare:end/ { skip = 0 }
    !skip { print }' "$README" > "$README.tmp" && mv "$README.tmp" "$README"
  echo "bench-prepare: README.md's preparation table rewritten" >&2
else
  echo "bench-prepare: README.md has no bench-prepare markers; table left in $REPORT only" >&2
fi

if [ "$PR" -gt $(( MAX_RSS_MIB * 1024 )) ]; then
  echo "bench-prepare: FAIL: swapover prepare peaked at $PREPARE_MIB MiB RSS, over the $MAX_RSS_MIB MiB limit" >&2
  exit 1
fi
echo "bench-prepare: swapover prepare's peak RSS $PREPARE_MIB MiB is within $MAX_RSS_MIB MiB" >&2
