//! The Raspberry Pi firmware player (`qemu_tests::pi_firmware`) driving the Pi 2/3 resinOS 1.x
//! stand-in (`pi1x_standin`) through the one-shot trial of docs/arm-1x-contract.md §2.2 (issue
//! 16). One board, one sequence of QEMU runs, each started by the player from the previous
//! run's end:
//!
//! 1. Power-on → p1 (`kernel7.img`, the harness initramfs, `cmdline.txt`) → the 1.x stand-in
//!    is up with resin-root as `/`; nothing asked of it, it powers off → the player halts.
//! 2. From the host, the test puts a trial set on p3 as the stager will (§2.2 steps 1–3:
//!    `mkfs.vfat -F 32 -n resin-updt` on p3's extent, MBR type 0x0c, `start.elf`,
//!    `fixup.dat`, `kernel7.img`, the dtbs and `overlays/` copied from p1, a busybox
//!    `swapover/initramfs.img` printing a marker, `swapover/cmdline.txt`, and a config.txt
//!    with `kernel=`, `initramfs … followkernel`, `cmdline=`), and asks 1.x (harness disk
//!    file `reboot-to`) to restart with `reboot(RESTART2, "3")`.
//! 3. Power-on → p1 → 1.x restarts with command 3 → the player boots p3 → the marker, with
//!    `swapover.stage=trial` on /proc/cmdline; it restarts plainly (`reboot -f`) → p1 → 1.x.
//! 4. The documented rule can fail: the test drops the `initramfs` line from p3's config.txt;
//!    1.x restarts with 3 again → the player boots kernel7.img alone with the trial cmdline →
//!    the marker never appears: the kernel panics (no root; the cmdline has no `rootwait`, see
//!    [`TRIAL_CMDLINE`]), `panic=10` restarts without a command → p1 → 1.x is back (the test
//!    cuts the power there).

use anyhow::{ensure, Context, Result};
use qemu_tests::bbb_uboot::{self, build_harness_disk, BbbInputs, TrialKind};
use qemu_tests::disk::{self, PartitionTable, SECTOR_BYTES};
use qemu_tests::paths;
use qemu_tests::pi1x_standin::{self, Pi1xImage, HARNESS_INITRAMFS, MODEL};
use qemu_tests::pi_firmware::{self, next_boot, Board, BootPlan, NextBoot, RunEnd, FIRMWARE_FILES};
use qemu_tests::qemu::Vm;
use qemu_tests::tools::run;
use std::path::Path;
use std::time::{Duration, Instant};

const STAGE: Duration = Duration::from_secs(120);
/// Printed by the trial initramfs's `/init`, with its command line.
const MARK_TRIAL: &str = "SWAPOVER-T trial-up";
const MARK_1X: &str = "SWAPOVER-1X-UP";
/// The trial command line the stager writes (contract §2.2 step 3; consoles as on `-M virt`,
/// the serial one last so that it is /dev/console) WITHOUT the contract's `rootwait`: measured
/// here, a trial whose initramfs the firmware does not load then waits for a root device
/// forever ("Waiting for root device ...", no `root=`), so `panic=10` never fires and only a
/// power cut (or, unplayed, the watchdog: R3) gives 1.x back. Without `rootwait` the kernel
/// panics at once (no root) and restarts to p1.
const TRIAL_CMDLINE: &str = "dwc_otg.lpm_enable=0 console=tty1 console=ttyAMA0,115200 swapover.stage=trial swapover.part=3 panic=10\n";
const TRIAL_CONFIG: &str = "# swapover trial boot (written by the test as the stager will)\n\
gpu_mem=16\n\
kernel=kernel7.img\n\
initramfs swapover/initramfs.img followkernel\n\
cmdline=swapover/cmdline.txt\n";
/// The marker `/init` of the trial: says it is up, then restarts without a command.
const TRIAL_INIT: &str = r#"#!/bin/sh
mount -t proc proc /proc
echo "SWAPOVER-T trial-up cmdline=$(cat /proc/cmdline)"
reboot -f
"#;
/// The test's commands in the 1.x stand-in (its init runs them from the harness disk).
const RUN_SH: &str = r#"if [ -f /run/harness/reboot-to ]; then
    n=$(cat /run/harness/reboot-to)
    echo "SWAPOVER-T reboot-to=$n"
    /run/harness/reboot-with-command "$n"
fi
echo "SWAPOVER-T no-reboot"
"#;

/// Waits for 1.x: up with resin-root as `/`; returns its `SWAPOVER-1X-UP` line.
fn expect_1x(plan: &BootPlan, vm: &mut Vm) -> Result<String> {
    ensure!(plan.partition == 1, "1.x expected from p1: {}", pi_firmware::describe(plan));
    let up = vm.wait_for(MARK_1X, STAGE)?;
    let root = vm.wait_for("SWAPOVER-1X-LABEL resin-root=", STAGE)?;
    let root = root.split_once('=').map(|(_, d)| d.trim()).unwrap_or_default().to_string();
    ensure!(root.ends_with('2') && up.contains(&format!("root={root} ")), "root: {up} / {root}");
    ensure!(up.contains("root=/dev/mmcblk0p2"), "1.x's own cmdline.txt: {up}");
    Ok(up)
}

/// Waits for QEMU to exit by itself; returns the run's console.
fn exited(vm: &mut Vm) -> Result<String> {
    vm.wait_exit(STAGE)?;
    Ok(vm.console_text())
}

/// The stager's Phase A steps 1–3 on p3, from the host (contract §2.2).
fn stage_trial(dir: &Path, inputs: &BbbInputs, disk: &Path) -> Result<()> {
    let table = PartitionTable::read(disk)?;
    let (p1, p3) = (table.number(1)?, table.number(3)?);
    // 1. FAT32 on p3's extent, label kept; MBR type 0x0c.
    run(
        "mkfs.vfat",
        [
            "-F".to_string(),
            "32".to_string(),
            "-n".to_string(),
            "resin-updt".to_string(),
            // As mkfs on /dev/mmcblk0p3 would: hidden sectors = the partition's start.
            "-h".to_string(),
            p3.start.to_string(),
            // 512-byte clusters: FAT32 needs >= 65525 clusters, and the stand-in's p3 is
            // 64 MiB (mkfs.fat picked 4 KiB clusters here, too few: mtools refused the FAT).
            "-s".to_string(),
            "1".to_string(),
            format!("--offset={}", p3.start),
            disk.display().to_string(),
            (p3.len_bytes() / 1024).to_string(),
        ],
    )?;
    run("sfdisk", ["--part-type".as_ref(), disk.as_os_str(), "3".as_ref(), "c".as_ref()])?;
    let p3 = PartitionTable::read(disk)?.number(3)?.clone();
    ensure!(p3.kind == "c", "p3's MBR type is {}", p3.kind);
    // 2. The firmware, the kernel, the dtbs and overlays/ copied from p1.
    let mut copied = FIRMWARE_FILES.to_vec();
    copied.extend(["kernel7.img", "bcm2709-rpi-2-b.dtb", "bcm2710-rpi-3-b.dtb"]);
    disk::mkdir_fat(disk, &p3, "/overlays")?;
    copied.push("overlays/README");
    for f in &copied {
        let bytes = disk::read_fat_file(disk, p1, f)?;
        disk::write_fat_file(disk, &p3, f, &bytes)?;
        ensure!(disk::read_fat_file(disk, &p3, f)? == bytes, "{f} not byte-copied");
    }
    // 3. The trial's initramfs, cmdline and config.txt.
    let rd = dir.join("trial-initramfs.img");
    bbb_uboot::initramfs(&rd, inputs, TRIAL_INIT, TrialKind::Working)?;
    disk::mkdir_fat(disk, &p3, "/swapover")?;
    disk::write_fat_file(disk, &p3, "swapover/initramfs.img", &std::fs::read(&rd)?)?;
    disk::write_fat_file(disk, &p3, "swapover/cmdline.txt", TRIAL_CMDLINE.as_bytes())?;
    disk::write_fat_file(disk, &p3, "config.txt", TRIAL_CONFIG.as_bytes())?;
    let label = run(
        "mlabel",
        [
            "-s".to_string(),
            "-i".to_string(),
            format!("{}@@{}", disk.display(), p3.start * SECTOR_BYTES),
            "::".to_string(),
        ],
    )?;
    let label = String::from_utf8_lossy(&label);
    ensure!(label.contains("is resin-updt"), "p3's label: {label}");
    Ok(())
}

/// Sets (Some) or removes (None) the harness disk's `reboot-to` file, 1.x's instruction.
fn reboot_to(harness: &Path, partition: Option<u32>) -> Result<()> {
    let table = PartitionTable::read(harness)?;
    let part = table.number(1)?;
    match partition {
        Some(n) => disk::write_fat_file(harness, part, "reboot-to", n.to_string().as_bytes()),
        None => disk::delete_fat_file(harness, part, "reboot-to"),
    }
}

#[test]
fn the_pi_firmware_player_boots_the_1x_standin_then_a_one_shot_trial_on_p3() -> Result<()> {
    let started = Instant::now();
    let inputs = BbbInputs::locate()?;
    let dir = paths::artifacts_dir().join("runs/pi-firmware");
    let image = Pi1xImage::ensure(&inputs)?;
    eprintln!("[pi-firmware] stand-in ready: {:.1}s", started.elapsed().as_secs_f64());
    let disk = image.fresh_copy(&dir)?;
    let helper = pi1x_standin::reboot_with_command(&dir)?;
    let run_sh = dir.join("run.sh");
    std::fs::write(&run_sh, RUN_SH)?;
    let harness = build_harness_disk(
        &dir,
        &inputs,
        &[("run.sh", &run_sh), ("reboot-with-command", &helper)],
    )?;
    let mut board =
        Board::new("pi-firmware", MODEL, &disk, &[("harness", &harness)], &dir.join("player"));

    // 1. Power-on: 1.x from p1, nothing to do, power-off → halt.
    let (plan, mut vm) = board.boot(RunEnd::PowerOn, "")?;
    assert_eq!(plan.config.kernel, "kernel7.img");
    assert_eq!(plan.config.initramfs.as_deref(), Some(HARNESS_INITRAMFS));
    assert_eq!(plan.cmdline, pi_firmware::firmware_cmdline(pi1x_standin::CMDLINE_1X));
    assert!(plan.cmdline.contains("console=ttyAMA0,115200"), "serial0 resolved: {}", plan.cmdline);
    expect_1x(&plan, &mut vm)?;
    vm.wait_for("SWAPOVER-T no-reboot", STAGE)?;
    let console = exited(&mut vm)?;
    assert_eq!(next_boot(RunEnd::Exited, &console)?, NextBoot::Halt, "1.x powered off");
    drop(vm);
    eprintln!("[pi-firmware] 1: 1.x up, halted: {:.1}s", started.elapsed().as_secs_f64());

    // 2. The trial set on p3, and 1.x told to restart into partition 3.
    stage_trial(&dir, &inputs, &disk).context("staging p3")?;
    reboot_to(&harness, Some(3))?;

    // 3. Power-on → 1.x → reboot 3 → trial → reboot → 1.x.
    let (plan, mut vm) = board.boot(RunEnd::PowerOn, "")?;
    expect_1x(&plan, &mut vm)?;
    vm.wait_for("SWAPOVER-T reboot-to=3", STAGE)?;
    let console = exited(&mut vm)?;
    assert!(console.contains("reboot: Restarting system with command '3'"), "{console}");
    let (plan, mut vm) = board.boot(RunEnd::Exited, &console)?;
    assert_eq!((plan.partition, plan.mbr_type.as_str()), (3, "c"));
    assert_eq!(plan.config.initramfs.as_deref(), Some("swapover/initramfs.img"));
    let trial = vm.wait_for(MARK_TRIAL, STAGE)?;
    assert!(trial.contains("swapover.stage=trial swapover.part=3"), "{trial}");
    let console = exited(&mut vm)?;
    eprintln!("[pi-firmware] 3: trial up: {:.1}s", started.elapsed().as_secs_f64());
    let (plan, mut vm) = board.boot(RunEnd::Exited, &console)?;
    expect_1x(&plan, &mut vm)?;

    // 4. A config.txt without `initramfs`: the trial never starts, and 1.x comes back.
    vm.wait_for("SWAPOVER-T reboot-to=3", STAGE)?;
    let console = exited(&mut vm)?;
    let p3 = PartitionTable::read(&disk)?.number(3)?.clone();
    let without_rd: String = TRIAL_CONFIG
        .lines()
        .filter(|l| !l.starts_with("initramfs"))
        .map(|l| format!("{l}\n"))
        .collect();
    disk::write_fat_file(&disk, &p3, "config.txt", without_rd.as_bytes())?;
    let (plan, mut vm) = board.boot(RunEnd::Exited, &console)?;
    assert_eq!((plan.partition, plan.initramfs.as_ref()), (3, None));
    let console = exited(&mut vm)?;
    assert!(!console.contains(MARK_TRIAL), "a trial without its initramfs started:\n{console}");
    assert!(console.contains("Kernel panic"), "{console}");
    let (plan, mut vm) = board.boot(RunEnd::Exited, &console)?;
    expect_1x(&plan, &mut vm)?;
    vm.power_cut()?;
    assert_eq!(next_boot(RunEnd::PowerCut, &vm.console_text())?, NextBoot::Partition(1));
    eprintln!(
        "[pi-firmware] whole test ({} runs): {:.1}s",
        board.runs,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
