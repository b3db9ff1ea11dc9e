#!/usr/bin/env bash
# Fuzz every parser that reads host or image data (issue 8, point 3).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Builds the cargo-fuzz targets in fuzz/ once, then runs each (all of them, or the
# TARGETs named) for SECONDS (default 60) with libFuzzer, starting from the seeds in
# fuzz/seeds/<target>/ plus the crates' own test fixtures, and prints a table:
# target / runs / seconds / result. Exits non-zero when any target crashed, leaked,
# timed out or ran out of memory; the input is then in fuzz/artifacts/<target>/.
#
# Environment:
#   FUZZ_SANITIZER  address (default) or none. The stable toolchain ships the ASan
#                   runtime, so address works here; `none` is still coverage-guided.
#   FUZZ_LOG_DIR    where each target's libFuzzer log goes (default fuzz/logs).
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). Only a stable toolchain is installed,
# and cargo-fuzz passes nightly-only flags (-Zsanitizer, -Cpasses=sancov-module, ...):
# RUSTC_BOOTSTRAP=1 lets the stable compiler accept them. See fuzz/README.md.
set -euo pipefail

seconds="${1:-60}"
shift || true
repo="$(cd "$(dirname "$0")/.." && pwd)"
fuzz="$repo/fuzz"
sanitizer="${FUZZ_SANITIZER:-address}"
log_dir="${FUZZ_LOG_DIR:-$fuzz/logs}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: run 'cargo install cargo-fuzz'" >&2
    exit 2
fi
case "$seconds" in
    '' | *[!0-9]*) echo "SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;;
esac

cd "$fuzz"
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# Seed one target's corpus: its own seeds, then the owning crate's fixtures.
seed() {
    local target="$1" corpus="$fuzz/corpus/$1"
    mkdir -p "$corpus"
    if [ -d "$fuzz/seeds/$target" ]; then
        cp -f "$fuzz/seeds/$target"/* "$corpus/"
    fi
    local f
    add() { for f in "$@"; do [ -f "$f" ] && cp -f "$f" "$corpus/fixture-$(basename "$f" | tr ' ' _)"; done; }
    # migrator_net: the first byte picks the format (see fuzz_targets/migrator_net.rs).
    add_net() {
        local selector="$1"; shift
        for f in "$@"; do
            [ -f "$f" ] || continue
            { printf "\\x$selector"; cat "$f"; } >"$corpus/fixture-$selector-$(basename "$f" | tr ' ' _)"
        done
    }
    local net="$repo/migrator/tests/fixtures/net"
    case "$target" in
        grub_cfg) add "$repo"/grub/tests/fixtures/*.cfg "$repo"/stager/tests/fixtures/grub/* ;;
        stager_os_release) add "$repo"/stager/tests/fixtures/os-release/* ;;
        stager_mountinfo) add "$repo"/stager/tests/fixtures/mountinfo/* ;;
        stager_swaps) add "$repo"/stager/tests/fixtures/swaps/* ;;
        stager_meminfo) add "$repo"/stager/tests/fixtures/meminfo/* ;;
        stager_fstab) add "$repo"/stager/tests/fixtures/fstab/* ;;
        board_profile) add "$repo"/board-profiles/profiles/*.toml ;;
        migrator_net)
            add_net 00 "$net"/ubuntu-root/etc/NetworkManager/system-connections/*
            add_net 01 "$net"/resin1-root/var/lib/connman/*/settings
            add_net 02 "$net"/resin1-root/var/lib/connman/*.config "$net"/resin1-root/resin-data/*/network.config
            add_net 03 "$net"/ubuntu-root/etc/wpa_supplicant/*.conf
            add_net 04 "$net"/ubuntu-root/etc/network/interfaces "$net"/ubuntu-root/etc/network/interfaces.d/*
            add_net 05 "$net"/resin1-root/boot/config.json
            ;;
    esac
}

# Images need room for an MBR's logical chain or a GPT and its backup.
max_len() {
    case "$1" in
        stager_partition_table | migrator_layout) echo 65536 ;;
        stager_swap_header) echo 16384 ;;
        migrator_flash_xz) echo 16384 ;;
        *) echo 8192 ;;
    esac
}

# Extra libFuzzer flags per target. migrator_flash_xz runs the flash engine, which starts
# threads for every input; glibc's thread-exit destructor registration
# (__cxa_thread_atexit_impl, 32 bytes per thread) is then reported as a leak by LSan.
extra_flags() {
    case "$1" in
        migrator_flash_xz) echo -detect_leaks=0 ;;
    esac
}

echo "building ${#targets[@]} fuzz targets (sanitizer: $sanitizer)..."
for target in "${targets[@]}"; do
    cargo fuzz build -s "$sanitizer" "$target"
done

mkdir -p "$log_dir"
rows=()
failed=0
for target in "${targets[@]}"; do
    seed "$target"
    log="$log_dir/$target.log"
    echo "fuzzing $target for ${seconds}s (log: $log)"
    set +e
    cargo fuzz run -s "$sanitizer" "$target" "$fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 $(extra_flags "$target") >"$log" 2>&1
    status=$?
    set -e
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    if [ "$status" -eq 0 ]; then
        result="clean"
    else
        failed=1
        artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)"
        result="FAILED (exit $status${artifact:+, input: ${artifact#"$fuzz/"}})"
        runs="${runs:-$(grep -o '^#[0-9]*' "$log" | tail -n 1 | tr -d '#')}"
    fi
    rows+=("$(printf '%-24s %12s %8s  %s' "$target" "${runs:-?}" "$seconds" "$result")")
done

echo
printf '%-24s %12s %8s  %s\n' target runs seconds result
for row in "${rows[@]}"; do echo "$row"; done
exit "$failed"
