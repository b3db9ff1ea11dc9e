//! The Raspberry Pi 3 resinOS 1.x → 2.x migration end to end in system QEMU (issue 16 "Must
//! show" 1 and 2 for the Pi; docs/arm-1x-contract.md §2.2, §2.5, §4.2): the GPU firmware played
//! by the harness (`qemu_tests::pi_firmware`: the partition from the previous run's last
//! `Restarting system with command 'N'`, else 1; partition N's `config.txt`), the 1.x stand-in
//! running the real ARMv7 stager (`pi1x_standin`), the real ARMv7 migrator as PID 1 of the
//! trial it arms, and the 2.x stand-in booted through the real U-Boot and balena's `boot.scr`
//! (`pi2x_standin`). One board, one sequence of QEMU runs, each started by the player:
//!
//! 1. Power-on → p1 → 1.x prints fingerprints of itself (raw sha256 of the MBR, resin-boot,
//!    resin-root and resin-conf; resin-data's entries with file hashes), stages with
//!    `stager stage-1x --no-reboot` (the spare p3 becomes the FAT32 trial set), damages the
//!    trial (its initramfs on p3 cut to 4 KiB) and restarts with `reboot(RESTART2, "3")`.
//! 2. The player boots p3: the kernel finds no init and panics; `panic=10` restarts with no
//!    command → p1 → 1.x again: `stager status`, `stager abort`, the fingerprints again: equal
//!    (must-show 2). The spare stays an empty FAT32 labelled resin-updt (its ext3 cannot come
//!    back, contract R1). 1.x reports what the migration must carry and stages again, this
//!    time letting the stager restart the board itself (RESTART2 "3", as on a device).
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

use anyhow::{ensure, Result};
use qemu_tests::arm1x_e2e::{
    self, await_marker, check_boot_fat, cut_when_staging_overwritten, with_shell_functions,
    BLOBS_WAIT,
};
use qemu_tests::bbb_uboot::{stager_harness_disk, BbbInputs};
use qemu_tests::console_lines::{complete_lines, value, with_marker};
use qemu_tests::disk::{self, PartitionTable};
use qemu_tests::paths;
use qemu_tests::pi1x_standin::{self, Pi1xImage, MODEL};
use qemu_tests::pi2x_standin;
use qemu_tests::pi_firmware::{describe, Board, BootPlan, Handover, RunEnd};
use qemu_tests::qemu::Vm;
use qemu_tests::resin1x_e2e::{check_carried_data, ConsoleOnFailure, STEPS};
use qemu_tests::verdict::SUMMARY_MARKER;
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
    fingerprints before
    spare before
    stage first --no-reboot || exit 0
    spare staged
    # A migration environment that cannot start: its initramfs, on the spare, cut short.
    mount -t vfat "${card}3" /tmp/updt && truncate -s 4096 /tmp/updt/swapover/initramfs.img
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

fn check_first_1x(lines: &[String]) -> Result<()> {
    ensure!(
        value(lines, "first-exit") == "0",
        "stager stage-1x failed:\n{}",
        with_marker(lines, "first-err").join("\n")
    );
    let spare = with_marker(lines, "spare-staged").join("\n");
    ensure!(spare.contains("type=0c"), "spare after staging: {spare}");
    ensure!(spare.contains("fs=vfat"), "spare after staging: {spare}");
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
    let script = with_shell_functions(RUN_SH);
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

    // Run 1: power-on → 1.x: fingerprints, stage (no reboot), damage, RESTART2 "3".
    let (plan, mut vm) = board.boot(RunEnd::PowerOn, "")?;
    expect_partition(&plan, 1, "1.x")?;
    stage(&mut vm, MARK_1X, 120)?;
    stage(&mut vm, "SWAPOVER-T first-exit=", 600)?;
    let console = exited(&mut vm, 300)?;
    let lines_first = complete_lines(&console);
    check_first_1x(&lines_first)?;
    ensure!(console.contains("Restarting system with command '3'"), "1.x did not restart to p3");

    // Run 2: p3, the damaged trial: no init, panic, restart with no command.
    let (plan, mut vm) = board.boot(RunEnd::Exited, &console)?;
    expect_partition(&plan, 3, "the trial")?;
    ensure!(plan.mbr_type == "c", "the spare's MBR type: {}", describe(&plan));
    ensure!(
        plan.config.initramfs.as_deref() == Some("swapover/initramfs.img"),
        "{}",
        describe(&plan)
    );
    ensure!(plan.cmdline.contains("swapover.stage=trial"), "{}", describe(&plan));
    ensure!(!plan.cmdline.contains("rootwait"), "{}", describe(&plan));
    stage(&mut vm, "Kernel panic", 120)?;
    let console = exited(&mut vm, 120)?;
    ensure!(!console.contains("SWAPOVER-MIGRATOR-START"), "the damaged trial started the migrator");

    // Run 3: p1 → 1.x: status, abort, fingerprints, stage again; the stager restarts to p3.
    let (plan, mut vm) = board.boot(RunEnd::Exited, &console)?;
    expect_partition(&plan, 1, "1.x after the failed trial")?;
    stage(&mut vm, MARK_1X, 120)?;
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
    expect_partition(&plan, 3, "the trial")?;
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

    // Run 8: p1 is 2.x: kernel7.img is the image's U-Boot → boot.scr → the 2.x verdict.
    let (plan, mut vm) = board.boot(RunEnd::Exited, &text3)?;
    expect_partition(&plan, 1, "2.x")?;
    ensure!(
        matches!(plan.handover, Handover::Uboot { .. }),
        "2.x not via U-Boot: {}",
        describe(&plan)
    );
    stage(&mut vm, "Found resin image on virtio 0", 120)?;
    stage(&mut vm, SUMMARY_MARKER, 300)?;
    vm.wait_exit(Duration::from_secs(120))?;
    let text4 = vm.console_text();
    drop(vm);

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
