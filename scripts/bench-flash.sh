#!/usr/bin/env bash
# Flash-path benchmark (issue 7, point 1).
#
# Builds a >= 1 GiB disk image in the resinOS 2.x MBR layout (resin-boot vfat,
# resin-rootA/B ext4, extended, resin-state, resin-data; files that compress well,
# files that do not, free space), compresses it single-block (`xz`) and multi-block
# (`xz -T0`), then flashes each onto a target file with:
#   - swapover: the migrator's own flash code (migrator/benches/flash_bench.rs calls
#     migrator::flash), release build for x86_64-unknown-linux-musl (static, bundled
#     liblzma: what runs as PID 1), writing every byte like dd does;
#   - swapover, target known to read as zero (fresh file): zero runs skipped;
#   - xz -dc | dd bs=4M conv=fsync;
#   - bmaptool copy --bmap (when bmap-tools is installed).
# Each is run RUNS times; the table gives the median. Read-back verification is timed
# on its own. Results go to stdout and target/bench-flash.md.
# Then scripts/bench-prepare.sh (issue 15 point 9) wraps the same image into a zipped
# resinOS flasher download and times the stager's preparation of it (extraction + staging
# as multi-block xz, peak RSS <= 64 MiB or the script fails) next to the flash of the result.
#
# Environment: RUNS (default 3), BENCH_DIR (default target/bench-flash; the built
# images are cached there, delete it to rebuild), SKIP_PREPARE=1 (flash benchmark only).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${BENCH_DIR:-$ROOT/target/bench-flash}
RUNS=${RUNS:-3}
REPORT=$ROOT/target/bench-flash.md
IMG=$WORK/resinos.img
TARGET=$WORK/target.img
mkdir -p "$WORK"
export LC_ALL=C

need() { command -v "$1" >/dev/null || { echo "bench-flash: '$1' is missing; install it ($2)" >&2; exit 1; }; }
need sfdisk fdisk
need mkfs.ext4 e2fsprogs
need mkfs.vfat dosfstools
need mcopy mtools
need xz xz-utils
need jq jq
[ -x /usr/bin/time ] || { echo "bench-flash: /usr/bin/time is missing; apt-get install time" >&2; exit 1; }

mib() { echo $(( $1 * 1024 * 1024 )); }

# Fill DIR with SIZE_MIB of incompressible data (like compressed kernels, docker layers).
random_files() {
  local dir=$1 size_mib=$2 prefix=$3 i=0
  mkdir -p "$dir"
  while [ "$size_mib" -gt 0 ]; do
    local chunk=$(( size_mib < 16 ? size_mib : 16 ))
    head -c "$(mib "$chunk")" /dev/urandom > "$dir/$prefix-$i.bin"
    size_mib=$(( size_mib - chunk )); i=$(( i + 1 ))
  done
}

# Copy about SIZE_MIB of real system files (binaries, libraries, docs: compressible).
system_files() {
  local dir=$1 size_mib=$2
  mkdir -p "$dir"
  find /usr/lib/x86_64-linux-gnu /usr/bin /usr/share/doc /usr/share/locale -xdev -type f -size +8k \
      -printf '%s\t%p\n' 2>/dev/null \
    | sort -t"$(printf '\t')" -k2 | awk -F'\t' -v budget="$(mib "$size_mib")" '{ total += $1; if (total <= budget) print $2 }' \
    | tar -cf - -T - 2>/dev/null | tar -xf - -C "$dir"
}

# put_fs IMAGE START_MIB FS_FILE: copy a filesystem image into place, keeping holes.
put_fs() { dd if="$3" of="$1" bs=1M seek="$2" conv=notrunc,sparse status=none; }

build_image() {
  echo "bench-flash: building the 1 GiB resinOS-layout image (cached in $WORK)" >&2
  local tree=$WORK/tree
  rm -rf "$tree" "$IMG"
  # MiB: 4 reserved | boot 40 | rootA 312 | rootB 312 | extended: state 20, data to 1024
  truncate -s 1024M "$IMG"
  sfdisk -q "$IMG" <<'LAYOUT'
label: dos
start=8192, size=81920, type=c, bootable
start=90112, size=638976, type=83
start=729088, size=638976, type=83
start=1368064, type=5
start=1376256, size=40960, type=83
start=1425408, type=83
LAYOUT
  # resin-boot: a kernel-sized incompressible file and text config.
  random_files "$tree/boot" 12 bzImage
  cp -r /usr/share/doc/bash "$tree/boot/docs" 2>/dev/null || true
  truncate -s 40M "$WORK/boot.fs"; mkfs.vfat -n resin-boot "$WORK/boot.fs" >/dev/null 2>&1
  mcopy -s -i "$WORK/boot.fs" "$tree/boot"/* ::/
  # resin-rootA: a root filesystem (real binaries and docs) plus some compressed blobs.
  system_files "$tree/rootA" 170
  random_files "$tree/rootA/var/lib/blobs" 30 blob
  truncate -s 312M "$WORK/rootA.fs"; mkfs.ext4 -q -F -L resin-rootA -d "$tree/rootA" "$WORK/rootA.fs"
  truncate -s 312M "$WORK/rootB.fs"; mkfs.ext4 -q -F -L resin-rootB "$WORK/rootB.fs"
  mkdir -p "$tree/state/root-overlay/etc"; echo swapover > "$tree/state/root-overlay/etc/hostname"
  truncate -s 20M "$WORK/state.fs"; mkfs.ext4 -q -F -L resin-state -d "$tree/state" "$WORK/state.fs"
  # resin-data: preloaded container layers (incompressible) and logs (compressible).
  random_files "$tree/data/docker/layers" 100 layer
  system_files "$tree/data/logs" 30
  truncate -s 328M "$WORK/data.fs"; mkfs.ext4 -q -F -L resin-data -d "$tree/data" "$WORK/data.fs"
  put_fs "$IMG" 4 "$WORK/boot.fs"; put_fs "$IMG" 44 "$WORK/rootA.fs"; put_fs "$IMG" 356 "$WORK/rootB.fs"
  put_fs "$IMG" 672 "$WORK/state.fs"; put_fs "$IMG" 696 "$WORK/data.fs"
  rm -rf "$tree" "$WORK"/*.fs
  echo "bench-flash: compressing single-block (xz) and multi-block (xz -T0)" >&2
  xz -6 -T1 -c "$IMG" > "$IMG.xz.tmp" && mv "$IMG.xz.tmp" "$IMG.xz"
  xz -6 -T0 -c "$IMG" > "$IMG.T0.xz.tmp" && mv "$IMG.T0.xz.tmp" "$IMG.T0.xz"
  if command -v bmaptool >/dev/null; then bmaptool -q create -o "$IMG.bmap" "$IMG"; fi
  sha256sum "$IMG" | cut -d' ' -f1 > "$IMG.sha256"
  touch "$WORK/image.done"
}

[ -f "$WORK/image.done" ] || build_image
[ "${BUILD_ONLY:-}" = 1 ] && exit 0
RAW_BYTES=$(stat -c %s "$IMG")
RAW_SHA=$(cat "$IMG.sha256")

# The migrator ships as a static musl binary with the liblzma that lzma-sys bundles;
# a host (glibc) build would link the system's liblzma instead, so bench the musl build.
echo "bench-flash: building the flash bench (release profile, static musl like the migrator)" >&2
BENCH_BIN=$(cd "$ROOT" && cargo bench -p migrator --bench flash_bench --no-run --target x86_64-unknown-linux-musl \
    --message-format=json 2>/dev/null \
  | jq -r 'select(.reason == "compiler-artifact" and .target.name == "flash_bench") | .executable' | tail -1)
[ -x "$BENCH_BIN" ] || { echo "bench-flash: could not build migrator/benches/flash_bench.rs" >&2; exit 1; }

now() { date +%s.%N; }
fresh_target() { rm -f "$TARGET"; sync; }
# Drop the target's cached pages so read-back comes from the disk (like the engine does).
uncache_target() { dd if="$TARGET" iflag=nocache count=0 status=none; }
check_target() {
  local got; got=$(head -c "$RAW_BYTES" "$TARGET" | sha256sum | cut -d' ' -f1)
  [ "$got" = "$RAW_SHA" ] || { echo "bench-flash: $1 produced a wrong target (sha256 $got)" >&2; exit 1; }
}

RESULTS=$WORK/results.tsv
: > "$RESULTS"   # image tool run write_s verify_s rss_kib mode

run_swapover() { # image label extra-args...
  local xzfile=$1 label=$2; shift 2
  fresh_target
  local out; out=$(/usr/bin/time -f "time_rss_kib=%M" -o "$WORK/time.out" "$BENCH_BIN" "$xzfile" "$TARGET" "$@")
  local w v r m
  w=$(sed -n 's/.*write_s=\([0-9.]*\).*/\1/p' <<<"$out")
  v=$(sed -n 's/.*verify_s=\([0-9.]*\).*/\1/p' <<<"$out")
  m=$(sed -n 's/.*mode=\([^ ]*\).*/\1/p' <<<"$out")
  r=$(sed -n 's/time_rss_kib=//p' "$WORK/time.out")
  check_target "$label"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$w" "$v" "$r" "$m" "$xzfile" >> "$RESULTS"
}

run_xz_dd() {
  local xzfile=$1 label=$2
  fresh_target
  local t0 t1 t2; t0=$(now)
  /usr/bin/time -f %M -o "$WORK/xz.rss" xz -dc "$xzfile" \
    | /usr/bin/time -f %M -o "$WORK/dd.rss" dd of="$TARGET" bs=4M conv=fsync status=none
  t1=$(now)
  uncache_target; check_target "$label"; t2=$(now)
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" \
    "$(( $(cat "$WORK/xz.rss") + $(cat "$WORK/dd.rss") ))" "pipeline" "$xzfile" >> "$RESULTS"
}

run_bmaptool() {
  local xzfile=$1 label=$2
  fresh_target
  local t0 t1; t0=$(now)
  /usr/bin/time -f %M -o "$WORK/bmap.rss" bmaptool -q copy --bmap "$IMG.bmap" "$xzfile" "$TARGET"
  t1=$(now)
  check_target "$label"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$(echo "$t1 - $t0" | bc)" "" "$(cat "$WORK/bmap.rss")" "bmap" "$xzfile" >> "$RESULTS"
}

need bc bc
HAVE_BMAP=no; command -v bmaptool >/dev/null && [ -f "$IMG.bmap" ] && HAVE_BMAP=yes
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for image in single multi; do
  xzfile=$IMG.xz; [ $image = multi ] && xzfile=$IMG.T0.xz
  for run in $(seq "$RUNS"); do
    echo "bench-flash: $image-block image, run $run/$RUNS" >&2
    run_xz_dd "$xzfile" "$image|xzdd"
    run_swapover "$xzfile" "$image|swapover"
    run_swapover "$xzfile" "$image|swapover-zero" --target-reads-zero
    if [ $HAVE_BMAP = yes ]; then run_bmaptool "$xzfile" "$image|bmaptool"; fi
  done
done
rm -f "$TARGET"

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

{
  echo "## Flash benchmark"
  echo
  echo "Machine: $(nproc) cores ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, Linux $(uname -r), target on $(df -T "$WORK" | awk 'NR==2 {print $2}'); $(xz --version | sed -n 1p); load average before the runs: $LOAD_BEFORE."
  echo "Image: $(( RAW_BYTES / 1024 / 1024 )) MiB raw, resinOS 2.x MBR layout; single-block xz $(( $(stat -c %s "$IMG.xz") / 1024 / 1024 )) MiB, multi-block (xz -T0) $(( $(stat -c %s "$IMG.T0.xz") / 1024 / 1024 )) MiB ($(xz --robot -lv "$IMG.T0.xz" | awk '$1 == "totals" {print $3}') blocks)."
  echo "Median of $RUNS runs each; MB/s = raw image bytes / 10^6 / write time (decode + write + fsync); verify = read-back after dropping the target's cache (for the pipeline: sha256sum of the target); peak RSS: the pipeline counts xz + dd."
  echo
  echo "| image | tool | write MB/s | vs xz\\|dd | write s | verify s | peak RSS MiB | mode |"
  echo "|---|---|---|---|---|---|---|---|"
  for image in single multi; do
    base=$(awk -F'\t' -v l="$image|xzdd" '$1 == l {print $2}' "$RESULTS" | median)
    cut -f1 "$RESULTS" | grep "^$image|" | awk '!seen[$0]++' | while IFS= read -r label; do
      w=$(awk -F'\t' -v l="$label" '$1 == l {print $2}' "$RESULTS" | median)
      v=$(awk -F'\t' -v l="$label" '$1 == l && $3 != "" {print $3}' "$RESULTS" | median)
      r=$(awk -F'\t' -v l="$label" '$1 == l {print $4}' "$RESULTS" | sort -g | tail -1)
      m=$(awk -F'\t' -v l="$label" '$1 == l {print $5}' "$RESULTS" | head -1)
      case ${label#*|} in
        xzdd) name='xz -dc \| dd bs=4M conv=fsync' ;;
        swapover) name='swapover flash (writes every byte)' ;;
        swapover-zero) name='swapover flash, target known to read as zero' ;;
        bmaptool) name='bmaptool copy --bmap' ;;
      esac
      printf '| %s-block | %s | %.1f | %.2f× | %.2f | %s | %.1f | %s |\n' "$image" "$name" \
        "$(echo "$RAW_BYTES / 1000000 / $w" | bc -l)" "$(echo "$base / $w" | bc -l)" "$w" \
        "${v:+$(printf '%.2f' "$v")}" "$(echo "$r / 1024" | bc -l)" "$m"
    done
  done
} | tee "$REPORT"
echo "bench-flash: raw results in $RESULTS, table in $REPORT" >&2

# Put this run's table into the README, between its bench-flash markers.
README=$ROOT/README.md
if grep -q '^<!-- bench-flash:begin' "$README" && grep -q '^<!-- bench-flash:end' "$README"; then
  awk -v report="$REPORT" '
    /^<!-- bench-flash:begin/ { print; while ((getline line < report) > 0) if (line !~ /^## /) print line; skip = 1; next }
    /^<!-- bench-flash:end/ { skip = 0 }
    !skip { print }' "$README" > "$README.tmp" && mv "$README.tmp" "$README"
  echo "bench-flash: README.md's benchmark table rewritten" >&2
else
  echo "bench-flash: README.md has no bench-flash markers; table left in $REPORT only" >&2
fi

if [ "${SKIP_PREPARE:-}" != 1 ]; then
  RUNS=$RUNS BENCH_DIR=$WORK bash "$ROOT/scripts/bench-prepare.sh"
fi
