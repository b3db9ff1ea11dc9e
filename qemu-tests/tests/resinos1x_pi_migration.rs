//! The Raspberry Pi 3 resinOS 1.x → 2.x migration end to end in system QEMU (issue 16 "Must
//! show" 1 and 2 for the Pi; docs/arm-1x-contract.md §2.2, §2.5, §4.2), which also makes the
//! checks of the Pi's two former stand-in tests, inside the boots it performs anyway (each QEMU
//! boot costs 10–20 s of TCG; CI time). Where each check of those tests is made now:
//!
//! - the former `resinos1x_pi_firmware.rs` (firmware player + 1.x stand-in, one-shot trial):
//!   - power-on → p1: `kernel7.img`, the harness initramfs, `cmdline.txt` with
//!     `console=serial0,115200` handed over as `ttyAMA0`; 1.x up with resin-root (…2) as `/`
//!     and its own `root=/dev/mmcblk0p2`: run 1 (and run 3) ([`expect_1x`]);
//!   - RESTART2 "3" → p3 (MBR type 0x0c): runs 1 → 2 and 3 → 4; the trial's
//!     `initramfs swapover/initramfs.img followkernel` loaded and unpacked and its command
//!     line (`swapover.stage=trial panic=10`, the serial console last, no `rootwait`) reaching
//!     the kernel, whose `/init` then runs: run 4 ([`expect_working_trial`]). The trial set is
//!     now the real stager's, not one the test writes from the host, so the old test's own
//!     `swapover.part=3` word (the stager writes none) is not looked for;
//!   - a plain restart (`reboot: Restarting system`, no command) → p1: run 7 → 8 (the
//!     migrator's restart into 2.x); a panic's restart → p1: run 2 → 3;
//!   - power-off → the player halts: run 8 (the 2.x verdict's `poweroff -f`);
//!   - a trial whose config.txt lacks the `initramfs` line gets no initramfs (the player
//!     loads none, the kernel unpacks none), never starts its `/init`, panics (no `rootwait`)
//!     and restarts to 1.x: run 2 → 3. The failing trial of must-show 2 is now made by
//!     deleting that line from the stager's config.txt on the spare, instead of cutting the
//!     initramfs to 4 KiB: the same one boot, the same "the migration environment cannot
//!     start" for `stager abort` to undo (the spare is reformatted either way), and the case
//!     that needs the contract's missing `rootwait`. (Doing both in one boot would test only
//!     the config line: the cut initramfs would never be loaded.) The truncated-initramfs
//!     trial stays in `resinos1x_bbb_migration.rs`.
//! - the former `resinos1x_pi_standins.rs` (the 1.x and 2.x stand-ins):
//!   - (a) the 1.x stand-in on armv7l with resin-boot, resin-conf, resin-data mounted, the
//!     network up (10.0.2.15, an HTTP answer from the host), the packaged stager at
//!     `/usr/bin/stager`, no `reboot_part` parameter; `stage-1x --dry-run` printing the plan
//!     (staging on partition 3 with its sectors, the MBR disk id) and the Pi's phase A (type
//!     byte 0x83 → 0x0c, FAT32 labelled resin-updt, RESTART2 alone, `reboot(RESTART2, "3")`)
//!     and changing nothing (no `swapover/` on resin-boot, the spare as before; and the
//!     fingerprints of must-show 2 are taken before it): run 1, before the real stage
//!     ([`check_first_1x`]). `plan-image` is not run any more: the dry
//!     run prints the same `planner::render` (the ARMv7 `plan-image` runs in
//!     `resinos1x_bbb_standins.rs`);
//!   - (b) the 2.x card boots through the player → the real U-Boot (`-bios`) → balena's
//!     `boot.scr` (`Found resin image on virtio 0` with the harness disk attached, `Loading
//!     resinOS_uEnv.txt …`, `Import resinOS_uEnv.txt in environment`) → the 2.x kernel with
//!     `cmdline.txt`'s words and `root=PARTUUID=<disk>-0N rootwait` → the verdict: run 8, on
//!     the migrated card ([`check_2x_boot`]);
//!   - (c) `root=…-0N` follows `resin_root_part` of resinOS_uEnv.txt: run 8 reads N from the
//!     migrated card's file on the host (the image's, `resin_root_part=2`). NOT folded: a
//!     card whose file says 3 (which showed U-Boot applies an imported value different from
//!     balena's default 2); that needs a boot of its own or a host edit of the migrated card
//!     before its verdict boot, and neither is made here.
//!
//! The sequence: the GPU firmware played by the harness (`qemu_tests::pi_firmware`: the
//! partition from the previous run's last `Restarting system with command 'N'`, else 1;
//! partition N's `config.txt`), the 1.x stand-in running the real ARMv7 stager
//! (`pi1x_standin`), the real ARMv7 migrator as PID 1 of the trial it arms, and the 2.x stand-in
//! booted through the real U-Boot and balena's `boot.scr` (`pi2x_standin`). One board, one
//! sequence of QEMU runs, each started by the player:
//!
//! 1. Power-on → p1 → 1.x checks its network, prints fingerprints of itself (raw sha256 of
//!    the MBR, resin-boot, resin-root and resin-conf; resin-data's entries with file hashes),
//!    runs `stager stage-1x --dry-run`, stages with `stager stage-1x --no-reboot` (the spare
//!    p3 becomes the FAT32 trial set), damages the trial (the `initramfs` line deleted from
//!    p3's `config.txt`) and restarts with `reboot(RESTART2, "3")`.
//! 2. The player boots p3 without an initramfs: the kernel finds no root and panics;
//!    `panic=10` restarts with no command → p1 → 1.x again: `stager status`, `stager abort`,
//!    the fingerprints again: equal (must-show 2). The spare stays an empty FAT32 labelled
//!    resin-updt (its ext3 cannot come back, contract R1). 1.x reports what the migration
//!    must carry and stages again, this time letting the stager restart the board itself
//!    (RESTART2 "3", as on a device).
//! 3. p3: the migrator (attempt 1) commits p1's `config.txt` (from then on every boot of p1
//!    starts the migrator from `swapover/`). Three power cuts after the commit (each a new
//!    QEMU process; a cut clears the firmware's partition choice, so p1): (a) 1.5 s into the
//!    flash, (b) when restore has the boot blobs waiting, (c) in finalize's last write, the
//!    moment the staging FAT's boot sector on the disk is written over; the next start
//!    finishes from the relay, renames the blobs, switches `config.txt` and restarts.
//! 4. p1's `kernel7.img` is now the image's U-Boot: the player hands over to the real U-Boot,
//!    which runs the image's `boot.scr`, and the 2.x stand-in's verdict passes with the data,
//!    WiFi and config.json 1.x reported. On the host: resin-boot holds the image's firmware
//!    files and `config.txt`, no `swapover/`, and `fsck.fat -n` is clean.

use anyhow::{ensure, Context, Result};
use qemu_tests::arm1x_e2e::{
    self, await_marker, check_boot_fat, cut_when_staging_overwritten, with_shell_functions,
    BLOBS_WAIT,
};
use qemu_tests::bbb1x_standin::{self, STAGER_PATH};
use qemu_tests::bbb_uboot::{stager_harness_disk, BbbInputs};
use qemu_tests::console_lines::{after, complete_lines, value, with_marker};
use qemu_tests::disk::{self, PartitionTable};
use qemu_tests::http_standin::answer_once;
use qemu_tests::paths;
use qemu_tests::pi1x_standin::{self, Pi1xImage, HARNESS_INITRAMFS, MODEL};
use qemu_tests::pi2x_standin;
use qemu_tests::pi_firmware::{
    describe, firmware_cmdline, next_boot, Board, BootPlan, Handover, NextBoot, RunEnd,
};
use qemu_tests::qemu::Vm;
use qemu_tests::resin1x_e2e::{check_carried_data, ConsoleOnFailure, STEPS};
use qemu_tests::verdict::{Verdict, SUMMARY_MARKER};
use std::path::Path;
use std::time::{Duration, Instant};

const NAME: &str = "resinos1x_pi_migration";
/// The 1.x partition the migration stages on (resin-updt), inside the 2.x resin-rootB.
const STAGING_PARTITION: u32 = 3;
const MARK_1X: &str = "SWAPOVER-1X-UP";

/// The test's commands in the 1.x stand-in, on every 1.x boot (its init runs them from the
/// harness disk). The stager's state directory and this script's phase file live on the
/// harness disk, so that they survive restarts as /var/lib/swapover does on a real 1.x root.
const RUN_SH: &str = r#"cd /run/harness
mount -o remount,rw /run/harness
mkdir -p /run/harness/state /var/lib
[ -e /var/lib/swapover ] || ln -s /run/harness/state /var/lib/swapover
phase=$(cat /run/harness/phase 2>/dev/null || echo fresh)
echo "SWAPOVER-T phase=$phase"
root=$(findfs LABEL=resin-root)
card=${root%[0-9]}
@SHELL_FUNCTIONS@
# Fingerprints of the 1.x system: the MBR and resin-boot, resin-root, resin-conf raw; every
# entry of resin-boot and resin-data (file hashes, symlink targets).
fingerprints() {
    sync
    echo "SWAPOVER-T fp-$1 mbr-raw $(dd if="$card" bs=512 count=1 2>/dev/null | sha256sum | cut -d' ' -f1)"
    for l in resin-boot resin-root resin-conf; do
        echo "SWAPOVER-T fp-$1 $l-raw $(sha256sum "$(findfs LABEL=$l)" | cut -d' ' -f1)"
    done
    (cd /mnt/boot && entries) | sed "s/^/SWAPOVER-T fp-$1 boot /"
    (cd /mnt/data && entries) | sed "s/^/SWAPOVER-T fp-$1 data /"
}
# The spare partition: its MBR type, file system and files.
spare() {
    # Partition 3's MBR type byte: entry 3 at 446 + 2 * 16, type at + 4.
    echo "SWAPOVER-T spare-$1 type=$(dd if="$card" bs=1 skip=482 count=1 2>/dev/null | od -An -tx1 | tr -d ' ')"
    mkdir -p /tmp/updt && mount -o ro "${card}3" /tmp/updt 2>/dev/null && {
        echo "SWAPOVER-T spare-$1 fs=$(grep ' /tmp/updt ' /proc/mounts | cut -d' ' -f3) files=$(cd /tmp/updt && find . -type f | wc -l)"
        umount /tmp/updt
    }
}
stage() {
    stager --profile-file ./@PROFILE@.toml stage-1x --profile @PROFILE@ --image ./@IMAGE@ \
        --config /mnt/conf/config.json --data-root /mnt/data \
        --modules "/lib/modules/$(uname -r)" --no-supervisor-update $2 \
        >/tmp/out 2>/tmp/err
    rc=$?
    sed "s/^/SWAPOVER-T $1-out /" /tmp/out
    sed "s/^/SWAPOVER-T $1-err /" /tmp/err
    echo "SWAPOVER-T $1-exit=$rc"
    [ "$rc" = 0 ]
}
case "$phase" in
fresh)
    # The 1.x side before anything is staged: the network (busybox nc, not wget: Debian's
    # busybox-static 1.35 wget segfaults), the packaged stager, no reboot_part parameter.
    response=$(printf 'GET /standin HTTP/1.0\r\n\r\n' | nc 10.0.2.2 @PORT@ 2>/tmp/nc.err)
    echo "SWAPOVER-T http=$(printf '%s\n' "$response" | tail -n1)"
    echo "SWAPOVER-T stager=$(command -v stager)"
    echo "SWAPOVER-T reboot_part=$(cat /sys/module/bcm2709/parameters/reboot_part 2>&1)"
    fingerprints before
    spare before
    # The Pi's phase A as the stager would run it here, changing nothing.
    stage dry --dry-run
    echo "SWAPOVER-T boot-after-dry=$(ls /mnt/boot | tr '\n' ' ')"
    spare dry
    stage first --no-reboot || exit 0
    spare staged
    mount -t vfat "${card}3" /tmp/updt
    sed 's/^/SWAPOVER-T staged-config /' /tmp/updt/config.txt
    # A trial the firmware cannot give its initramfs: the `initramfs` line deleted from the
    # stager's config.txt on the spare.
    sed -i '/^initramfs[[:space:]]/d' /tmp/updt/config.txt
    sed 's/^/SWAPOVER-T damaged-config /' /tmp/updt/config.txt
    umount /tmp/updt
    echo damaged > /run/harness/phase
    sync
    echo "SWAPOVER-T rebooting phase=damaged"
    /run/harness/reboot-with-command 3
    ;;
damaged)
    stager status >/tmp/out 2>&1
    echo "SWAPOVER-T status-exit=$?"
    sed 's/^/SWAPOVER-T status /' /tmp/out
    stager abort >/tmp/out 2>&1
    echo "SWAPOVER-T abort-exit=$?"
    sed 's/^/SWAPOVER-T abort /' /tmp/out
    fingerprints after
    spare after
    report_carried
    echo staged > /run/harness/phase
    sync
    echo "SWAPOVER-T staging-second"
    stage second ""
    ;;
*)
    echo "SWAPOVER-T back-in-1x phase=$phase"
    stager status 2>&1 | sed 's/^/SWAPOVER-T back-status /'
    ;;
esac
"#;

/// What the host's HTTP stand-in answers: seen in 1.x, the network works.
const HTTP_TOKEN: &str = "swapover-pi-net-ok";
/// The kernel's line of the command line it was given.
const KERNEL_CMDLINE: &str = "Kernel command line: ";
/// The kernel's line when it was given an initramfs (init/initramfs.c).
const UNPACK_INITRAMFS: &str = "Trying to unpack rootfs image as initramfs";

/// Awaits `marker` (at most `secs`) and prints when it came.
fn stage(vm: &mut Vm, marker: &str, secs: u64) -> Result<String> {
    await_marker(vm, "pi-e2e", marker, secs)
}

/// Waits for QEMU to exit by itself (a restart or power-off under `-no-reboot`).
fn exited(vm: &mut Vm, secs: u64) -> Result<String> {
    vm.wait_exit(Duration::from_secs(secs))?;
    Ok(vm.console_text())
}

fn expect_partition(plan: &BootPlan, n: u32, what: &str) -> Result<()> {
    ensure!(plan.partition == n, "{what} expected from p{n}: {}", describe(plan));
    Ok(())
}

/// The kernel's command line as it printed it (empty if it did not).
fn kernel_cmdline(console: &str) -> String {
    console
        .lines()
        .find_map(|l| l.split_once(KERNEL_CMDLINE).map(|(_, c)| c.trim().to_string()))
        .unwrap_or_default()
}

/// 1.x as the player starts it from p1 (power-on or a restart without a command): resin-boot's
/// `kernel7.img` with the harness initramfs and `cmdline.txt`, `console=serial0,115200` handed
/// over as `ttyAMA0`; awaits 1.x up with resin-root (partition 2) as `/` and its own
/// `root=/dev/mmcblk0p2`. Returns the `SWAPOVER-1X-UP` line.
fn expect_1x(plan: &BootPlan, vm: &mut Vm, what: &str) -> Result<String> {
    expect_partition(plan, 1, what)?;
    ensure!(plan.handover == Handover::Linux, "{what}: {}", describe(plan));
    ensure!(plan.config.kernel == "kernel7.img", "{what}: {}", describe(plan));
    ensure!(
        plan.config.initramfs.as_deref() == Some(HARNESS_INITRAMFS),
        "{what}: {}",
        describe(plan)
    );
    ensure!(plan.cmdline == firmware_cmdline(pi1x_standin::CMDLINE_1X), "{}", describe(plan));
    ensure!(plan.cmdline.contains("console=ttyAMA0,115200"), "serial0: {}", describe(plan));
    let up = stage(vm, MARK_1X, 120)?;
    let root = stage(vm, "SWAPOVER-1X-LABEL resin-root=", 120)?;
    let root = root.split_once('=').map(|(_, d)| d.trim()).unwrap_or_default().to_string();
    ensure!(root.ends_with('2') && up.contains(&format!("root={root} ")), "root: {up} / {root}");
    ensure!(up.contains("machine=armv7l"), "{up}");
    ensure!(up.contains("console=ttyAMA0,115200"), "serial0 as the player hands it: {up}");
    ensure!(up.contains("root=/dev/mmcblk0p2"), "1.x's own cmdline.txt: {up}");
    Ok(up)
}

/// The stager's trial as the player boots it from p3 (RESTART2 "3"): the spare's MBR type
/// 0x0c, the stager's config.txt (`kernel=`, `initramfs … followkernel`, `cmdline=`), the
/// trial command line without `rootwait`.
fn expect_working_trial(plan: &BootPlan) -> Result<()> {
    expect_partition(plan, 3, "the trial")?;
    ensure!(plan.mbr_type == "c", "the spare's MBR type: {}", describe(plan));
    ensure!(plan.handover == Handover::Linux, "{}", describe(plan));
    ensure!(
        plan.config.initramfs.as_deref() == Some("swapover/initramfs.img")
            && plan.initramfs.is_some(),
        "{}",
        describe(plan)
    );
    expect_trial_cmdline(plan)
}

fn expect_trial_cmdline(plan: &BootPlan) -> Result<()> {
    let words: Vec<&str> = plan.cmdline.split_whitespace().collect();
    ensure!(words.contains(&"swapover.stage=trial"), "{}", describe(plan));
    ensure!(words.contains(&"panic=10"), "{}", describe(plan));
    ensure!(!words.contains(&"rootwait"), "{}", describe(plan));
    let consoles: Vec<&&str> = words.iter().filter(|w| w.starts_with("console=")).collect();
    ensure!(
        consoles.last() == Some(&&"console=ttyAMA0,115200"),
        "the serial console is not the last (so not /dev/console): {}",
        describe(plan)
    );
    Ok(())
}

/// Must-show 2: after the failed trial and `stager abort`, 1.x is as it was before staging
/// (the spare aside: contract R1).
fn check_returned_identical(lines: &[String]) -> Result<()> {
    arm1x_e2e::check_returned_identical(
        lines,
        &[
            ("mbr-raw ", "the MBR's raw sha256"),
            ("resin-boot-raw ", "resin-boot's raw sha256"),
            ("resin-root-raw ", "resin-root's raw sha256"),
            ("resin-conf-raw ", "resin-conf's raw sha256"),
            ("boot F ", "resin-boot's files"),
            ("data F ", "resin-data's files"),
        ],
    )
}

/// Run 1's 1.x: the stand-in's mounts and network, the packaged stager, the dry run (the plan
/// and the Pi's phase A, nothing changed), the real stage, the trial damaged.
fn check_first_1x(lines: &[String]) -> Result<()> {
    let all = || lines.join("\n");
    ensure!(
        after(lines, "SWAPOVER-1X-MOUNTS") == "3",
        "/mnt/boot, /mnt/conf, /mnt/data:\n{}",
        all()
    );
    ensure!(after(lines, "SWAPOVER-1X-NET") == "10.0.2.15/24", "{}", all());
    ensure!(value(lines, "http") == HTTP_TOKEN, "no answer from the host:\n{}", all());
    ensure!(value(lines, "stager") == STAGER_PATH, "{}", all());
    // Debian's 6.1 kernel has no bcm2709 module: the stager arms with RESTART2 alone.
    ensure!(value(lines, "reboot_part").contains("No such file"), "{}", all());

    // stage-1x --dry-run: the plan (planner::render, as plan-image prints it) and the Pi's
    // phase A as it would run on this board (contract §2.2).
    let dry = [with_marker(lines, "dry-out"), with_marker(lines, "dry-err")].concat().join("\n");
    ensure!(value(lines, "dry-exit") == "0", "stage-1x --dry-run failed:\n{dry}");
    let updt = bbb1x_standin::PARTITIONS[2];
    let staging = format!(
        "Staging on the spare root (partition 3, sectors {}..{})",
        updt.start,
        updt.start + updt.sectors
    );
    for step in [
        staging.as_str(),
        &format!("Disk:     MBR {}", pi1x_standin::DISK_ID),
        "from 0x83 to 0x0c (FAT32 LBA)",
        "as FAT32 labelled resin-updt",
        "no reboot_part parameter: the partition goes to RESTART2 only",
        "reboot(RESTART2, \"3\")",
        "Dry run: nothing was changed.",
    ] {
        ensure!(dry.contains(step), "no {step:?} in the dry run:\n{dry}");
    }
    let boot_after = value(lines, "boot-after-dry");
    ensure!(!boot_after.contains("swapover"), "a dry run wrote to resin-boot: {boot_after}");
    let spare_before = with_marker(lines, "spare-before");
    ensure!(spare_before.join("\n").contains("type=83"), "the spare before: {spare_before:?}");
    ensure!(with_marker(lines, "spare-dry") == spare_before, "a dry run changed the spare");

    ensure!(
        value(lines, "first-exit") == "0",
        "stager stage-1x failed:\n{}",
        with_marker(lines, "first-err").join("\n")
    );
    let spare = with_marker(lines, "spare-staged").join("\n");
    ensure!(spare.contains("type=0c"), "spare after staging: {spare}");
    ensure!(spare.contains("fs=vfat"), "spare after staging: {spare}");
    // The damage: the stager's trial config.txt without its `initramfs` line, nothing else.
    let staged = with_marker(lines, "staged-config");
    let damaged = with_marker(lines, "damaged-config");
    let line = "initramfs swapover/initramfs.img followkernel";
    ensure!(staged.iter().any(|l| l == line), "the stager's config.txt: {staged:#?}");
    let expected: Vec<&String> = staged.iter().filter(|l| *l != line).collect();
    ensure!(damaged.iter().collect::<Vec<_>>() == expected, "the damaged config.txt: {damaged:#?}");
    Ok(())
}

/// `first`: run 1's console lines (the fingerprints before staging); `lines`: run 3's.
fn check_second_1x(first: &[String], lines: &[String]) -> Result<()> {
    let status = with_marker(lines, "status").join("\n");
    ensure!(value(lines, "status-exit") == "0", "stager status failed:\n{status}");
    ensure!(status.to_lowercase().contains("partition 3"), "stager status:\n{status}");
    let abort = with_marker(lines, "abort").join("\n");
    ensure!(value(lines, "abort-exit") == "0", "stager abort failed:\n{abort}");
    check_returned_identical(&[first, lines].concat())?;
    let spare = with_marker(lines, "spare-after").join("\n");
    ensure!(spare.contains("fs=vfat files=0"), "the spare after abort: {spare}");
    ensure!(spare.contains("type=83"), "the spare's MBR type after abort: {spare}");
    Ok(())
}

/// The 2.x boot of the migrated card (run 8, `console`; the player handed `kernel7.img`, the
/// image's U-Boot stand-in, to the real U-Boot): U-Boot finds the card as device 0 with the
/// harness disk attached, runs balena's `boot.scr`, loads and imports resinOS_uEnv.txt and
/// boots the 2.x kernel with `cmdline.txt`'s words (serial0 as ttyAMA0) and
/// `root=PARTUUID=<card>-0N rootwait`, N being `resin_root_part` of the card's
/// resinOS_uEnv.txt (`uenv`); then the verdict powers off and the player halts.
fn check_2x_boot(console: &str, card_id: &str, uenv: &str) -> Result<()> {
    for seen in [
        "Found resin image on virtio 0",
        "Loading resinOS_uEnv.txt from virtio device 0 partition 1",
        "Import resinOS_uEnv.txt in environment",
        "SWAPOVER-RESIN-UP",
    ] {
        ensure!(console.contains(seen), "no {seen:?} on the 2.x console");
    }
    let part = uenv
        .lines()
        .find_map(|l| l.trim().strip_prefix("resin_root_part="))
        .with_context(|| format!("no resin_root_part in resinOS_uEnv.txt: {uenv:?}"))?;
    // `boot.scr`: bootargs = the dtb's (the firmware's command line) + root + rootwait.
    let root = format!("root=PARTUUID={}-0{part} rootwait", card_id.trim_start_matches("0x"));
    let expected = format!("{} {root}", firmware_cmdline(pi2x_standin::CMDLINE_2X));
    let cmdline = kernel_cmdline(console);
    ensure!(cmdline == expected, "the 2.x kernel's command line {cmdline:?}, not {expected:?}");
    let verdict = Verdict::parse(console)?;
    ensure!(verdict.summary.preloaded_supervisor, "{:?}", verdict.summary);
    ensure!(
        next_boot(RunEnd::Exited, console)? == NextBoot::Halt,
        "the player does not halt after the verdict's power-off"
    );
    Ok(())
}

/// The first byte sectors of the staging partition: the FAT32 boot sector the stager made.
fn staging_boot_sector(disk: &Path, offset: u64) -> Result<Vec<u8>> {
    disk::read_at(disk, offset, 512)
}

#[test]
fn pi_1x_fails_a_trial_back_to_1x_identical_then_migrates_to_2x_through_three_power_cuts(
) -> Result<()> {
    let started = Instant::now();
    let runs = (1..=9).map(|r| format!("{NAME}-run{r}")).collect::<Vec<_>>();
    let mut guard = ConsoleOnFailure {
        logs: runs.iter().map(|b| paths::logs_dir().join(format!("{b}.log"))).collect(),
        passed: false,
    };
    let inputs = BbbInputs::locate()?;
    let image_2x = pi2x_standin::ensure(&inputs)?;
    let image_1x = Pi1xImage::ensure(&inputs)?;
    eprintln!("[pi-e2e] stand-ins ready after {:.1}s", started.elapsed().as_secs_f64());
    let dir = paths::artifacts_dir().join("runs").join(NAME);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let card = image_1x.fresh_copy(&dir)?;
    let profile = pi1x_standin::write_test_profile(&dir)?;
    let helper = pi1x_standin::reboot_with_command(&dir)?;
    let script =
        with_shell_functions(RUN_SH).replace("@PORT@", &answer_once(HTTP_TOKEN)?.to_string());
    let harness = stager_harness_disk(&dir, &inputs, &script, &profile, &image_2x.xz)?;
    let table = PartitionTable::read(&harness)?;
    disk::write_fat_file(
        &harness,
        table.number(1)?,
        "reboot-with-command",
        &std::fs::read(&helper)?,
    )?;
    let staging = PartitionTable::read(&card)?.number(STAGING_PARTITION)?.offset_bytes();
    let mut board = Board::new(NAME, MODEL, &card, &[("harness", &harness)], &dir.join("player"));

    // Run 1: power-on → 1.x: network, fingerprints, dry run, stage (no reboot), damage,
    // RESTART2 "3".
    let (plan, mut vm) = board.boot(RunEnd::PowerOn, "")?;
    expect_1x(&plan, &mut vm, "1.x at power-on")?;
    stage(&mut vm, "SWAPOVER-T dry-exit=", 600)?;
    stage(&mut vm, "SWAPOVER-T first-exit=", 600)?;
    let console = exited(&mut vm, 300)?;
    let lines_first = complete_lines(&console);
    check_first_1x(&lines_first)?;
    ensure!(console.contains("Restarting system with command '3'"), "1.x did not restart to p3");

    // Run 2: p3, the damaged trial: config.txt names no initramfs, so the kernel gets none,
    // finds no root and panics at once (no `rootwait`); it restarts with no command.
    let (plan, mut vm) = board.boot(RunEnd::Exited, &console)?;
    expect_partition(&plan, 3, "the damaged trial")?;
    ensure!(plan.mbr_type == "c", "the spare's MBR type: {}", describe(&plan));
    ensure!(
        plan.config.initramfs.is_none() && plan.initramfs.is_none(),
        "the damaged trial got an initramfs: {}",
        describe(&plan)
    );
    expect_trial_cmdline(&plan)?;
    stage(&mut vm, "Kernel panic", 120)?;
    let console = exited(&mut vm, 120)?;
    ensure!(!console.contains("SWAPOVER-MIGRATOR-START"), "the damaged trial started the migrator");
    ensure!(!console.contains(UNPACK_INITRAMFS), "the damaged trial's kernel had an initramfs");
    ensure!(
        kernel_cmdline(&console) == plan.cmdline,
        "the kernel's command line is not the trial's: {:?}",
        kernel_cmdline(&console)
    );

    // Run 3: p1 → 1.x: status, abort, fingerprints, stage again; the stager restarts to p3.
    let (plan, mut vm) = board.boot(RunEnd::Exited, &console)?;
    expect_1x(&plan, &mut vm, "1.x after the failed trial")?;
    stage(&mut vm, "SWAPOVER-T staging-second", 600)?;
    let console = exited(&mut vm, 900)?;
    let lines_1x = complete_lines(&console);
    check_second_1x(&lines_first, &lines_1x)?;
    ensure!(
        console.contains("Restarting system with command '3'"),
        "stage-1x (second) did not restart the board to p3:\n{}",
        with_marker(&lines_1x, "second-err").join("\n")
    );

    // Run 4: p3 → the migrator (attempt 1) commits p1's config.txt; cut (a) 1.5 s into the
    // flash.
    let (plan, mut vm) = board.boot(RunEnd::Exited, &console)?;
    expect_working_trial(&plan)?;
    stage(&mut vm, "SWAPOVER-MIGRATOR-START attempt=1", 120)?;
    stage(&mut vm, "SWAPOVER-STEP arm-resume done", 600)?;
    stage(&mut vm, "SWAPOVER-STEP flash begin", 300)?;
    std::thread::sleep(Duration::from_millis(1500));
    vm.power_cut()?;
    let text0 = vm.console_text();
    eprintln!(
        "[cut a] 1.5 s after `SWAPOVER-STEP flash begin` (flash {})",
        if text0.contains("SWAPOVER-STEP flash done") { "had finished" } else { "in progress" }
    );
    ensure!(
        text0.contains(UNPACK_INITRAMFS) && !text0.contains("Initramfs unpacking failed"),
        "the trial's kernel did not unpack its initramfs"
    );
    ensure!(
        kernel_cmdline(&text0) == plan.cmdline,
        "the trial kernel's command line is not the trial's: {:?}",
        kernel_cmdline(&text0)
    );
    drop(vm);

    // Run 5: power-on → p1 (committed config.txt) → the migrator resumes; cut (b) once
    // restore has the boot blobs waiting.
    let (plan, mut vm) = board.boot(RunEnd::PowerCut, "")?;
    expect_partition(&plan, 1, "the committed migrator")?;
    ensure!(plan.config.kernel == "swapover/kernel7.img", "{}", describe(&plan));
    ensure!(plan.cmdline.contains("swapover.stage=resume"), "{}", describe(&plan));
    stage(&mut vm, "SWAPOVER-MIGRATOR-START attempt=2", 120)?;
    stage(&mut vm, BLOBS_WAIT, 900)?;
    vm.power_cut()?;
    let text1 = vm.console_text();
    eprintln!("[cut b] at `{BLOBS_WAIT}`");
    drop(vm);

    // Run 6: resumes again; cut (c) in finalize's last write, the moment the staging FAT's
    // boot sector is written over.
    let staged_fs = staging_boot_sector(&card, staging)?;
    let (plan, mut vm) = board.boot(RunEnd::PowerCut, "")?;
    expect_partition(&plan, 1, "the committed migrator")?;
    stage(&mut vm, "SWAPOVER-MIGRATOR-START attempt=3", 120)?;
    stage(&mut vm, "SWAPOVER-STEP finalize begin", 900)?;
    let text2 = cut_when_staging_overwritten(&mut vm, "pi-e2e", &staged_fs, || {
        staging_boot_sector(&card, staging)
    })?;
    drop(vm);

    // Run 7: the relay finishes (blobs, then config.txt), the migrator restarts.
    let (plan, mut vm) = board.boot(RunEnd::PowerCut, "")?;
    expect_partition(&plan, 1, "the committed migrator")?;
    stage(&mut vm, "SWAPOVER-MIGRATOR-START relay", 120)?;
    stage(&mut vm, "boot blob(s) renamed", 600)?;
    stage(&mut vm, "is the new system's", 60)?;
    stage(&mut vm, "SWAPOVER-MIGRATOR-REBOOT target=resinos", 120)?;
    let text3 = exited(&mut vm, 120)?;
    drop(vm);
    // A plain restart (no command): the last kernel reboot line has none, so p1.
    let last_reboot = text3.lines().rev().find(|l| l.contains("reboot: ")).unwrap_or_default();
    ensure!(
        last_reboot.trim_end().ends_with("reboot: Restarting system"),
        "the migrator's restart into 2.x: {last_reboot:?}"
    );

    // Run 8: p1 is 2.x: kernel7.img is the image's U-Boot → boot.scr → the 2.x verdict, on
    // the card as the migration left it (its disk identifier and resinOS_uEnv.txt read here).
    let card_id = PartitionTable::read(&card)?.id.context("the card's MBR disk identifier")?;
    ensure!(card_id == pi2x_standin::DISK_ID, "the card's disk identifier {card_id}");
    let uenv =
        disk::read_fat_file(&card, PartitionTable::read(&card)?.number(1)?, "resinOS_uEnv.txt")?;
    let (plan, mut vm) = board.boot(RunEnd::Exited, &text3)?;
    expect_partition(&plan, 1, "2.x")?;
    ensure!(
        matches!(plan.handover, Handover::Uboot { .. }) && plan.initramfs.is_none(),
        "2.x not via U-Boot: {}",
        describe(&plan)
    );
    stage(&mut vm, "Found resin image on virtio 0", 120)?;
    stage(&mut vm, SUMMARY_MARKER, 300)?;
    vm.wait_exit(Duration::from_secs(120))?;
    let text4 = vm.console_text();
    drop(vm);
    check_2x_boot(&text4, &card_id, &String::from_utf8_lossy(&uenv))?;

    // The migrator ran every step across the cuts, resumed each time, never booted 1.x again.
    let migration = format!("{text0}{text1}{text2}{text3}");
    for step in STEPS {
        let marker = format!("SWAPOVER-STEP {step} begin");
        ensure!(migration.contains(&marker), "no `{marker}` on the consoles");
    }
    for (i, text) in [&text1, &text2, &text3, &text4].into_iter().enumerate() {
        ensure!(!text.contains(MARK_1X), "run {}: resinOS 1.x came up", i + 5);
    }
    check_carried_data(&lines_1x, &text4, &card)?;
    check_boot_partition(&card, &dir)?;

    guard.passed = true;
    eprintln!("[pi-e2e] whole test: {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// resin-boot after the migration, read on the host: the image's firmware files and
/// `config.txt`, the image's U-Boot as `kernel7.img`, no `swapover/`, nothing waiting as
/// `.swapover-new`, and a clean FAT ([`check_boot_fat`]).
fn check_boot_partition(disk: &Path, dir: &Path) -> Result<()> {
    let table = PartitionTable::read(disk)?;
    let boot = table.number(1)?;
    for blob in ["bootcode.bin", "start.elf", "fixup.dat"] {
        ensure!(
            disk::read_fat_file(disk, boot, blob)? == pi2x_standin::firmware_blob(blob),
            "{blob} is not the image's"
        );
    }
    ensure!(
        disk::read_fat_file(disk, boot, "config.txt")? == pi2x_standin::CONFIG_2X.as_bytes(),
        "config.txt is not the image's"
    );
    check_boot_fat(disk, boot, &["swapover"], dir, "pi-e2e")
}
