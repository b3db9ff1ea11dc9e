//! The two Raspberry Pi 3 stand-ins a full Pi migration test needs, each started by the
//! firmware player (`qemu_tests::pi_firmware`; issue 16, docs/arm-1x-contract.md §4.2):
//!
//! a. The 1.x stand-in (`pi1x_standin`): power-on → p1's `kernel7.img` (Linux) with
//!    `cmdline.txt`'s `console=serial0,115200` handed over as `ttyAMA0` → the 1.x root on
//!    resin-root with the 1.x partitions mounted and the network up (an HTTP answer from the
//!    host's loopback). Inside it the real ARMv7 stager (`/usr/bin/stager`, the packaged
//!    binary) with the QEMU test profile (`--profile-file`) plans the migration of its own disk
//!    onto the Pi 2.x stand-in (`plan-image`: staging on partition 3) and runs
//!    `stage-1x --dry-run`, which prints the Pi's phase A (type byte, FAT32, RESTART2 alone:
//!    Debian's kernel has no `reboot_part`). 1.x powers off → the player halts.
//! b. The 2.x stand-in (`pi2x_standin`) as a migration writes it to the card: power-on → p1's
//!    `kernel7.img` is the U-Boot stand-in → the harness's real U-Boot as `-bios` with the dtb
//!    carrying the command line → its distro boot runs the image's `boot.scr` (balena's
//!    `boot.cmd.in` with balena's environment) → it finds the image by its `resin-image` flag,
//!    imports `resinOS_uEnv.txt`, sets `root=PARTUUID=<disk>-02` → `bootz` the 2.x kernel from
//!    resin-boot → the verdict init's summary.
//! c. The same card with `resin_root_part=3` in `resinOS_uEnv.txt`, and the harness disk
//!    attached after it (as an end-to-end test's board has it; the card stays U-Boot's device
//!    0): the kernel gets `…-03` — U-Boot really imported the file (the check in b can fail).
//!
//! Run: `bash scripts/build-static.sh`, then
//! `cargo test -p qemu-tests --test resinos1x_pi_standins -- --test-threads=1 --nocapture`.

use anyhow::Result;
use qemu_tests::bbb1x_standin::STAGER_PATH;
use qemu_tests::bbb2x_standin::Arm2xImage;
use qemu_tests::bbb_uboot::{build_harness_disk, stager_harness_disk, BbbInputs};
use qemu_tests::console_lines::{after, complete_lines, value};
use qemu_tests::disk::{self, PartitionTable};
use qemu_tests::http_standin::answer_once;
use qemu_tests::paths;
use qemu_tests::pi1x_standin::{self, Pi1xImage, HARNESS_INITRAMFS, MODEL};
use qemu_tests::pi2x_standin;
use qemu_tests::pi_firmware::{self, next_boot, Board, Handover, NextBoot, RunEnd};
use qemu_tests::verdict::{Verdict, SUMMARY_MARKER};
use std::path::Path;
use std::time::{Duration, Instant};

const STAGE: Duration = Duration::from_secs(120);
/// What the host's HTTP stand-in answers: seen in the guest, the network works.
const HTTP_TOKEN: &str = "swapover-pi-net-ok";

/// The test's commands inside the 1.x stand-in (its init runs them from the harness disk).
const RUN_SH: &str = r#"cd /run/harness
# busybox nc, not wget: Debian's busybox-static 1.35 wget segfaults (also on the host).
response=$(printf 'GET /standin HTTP/1.0\r\n\r\n' | nc 10.0.2.2 @PORT@ 2>/tmp/nc.err)
echo "SWAPOVER-T http=$(printf '%s\n' "$response" | tail -n1)"
echo "SWAPOVER-T stager=$(command -v stager)"
echo "SWAPOVER-T reboot_part=$(cat /sys/module/bcm2709/parameters/reboot_part 2>&1)"
stager --profile-file ./@PROFILE@.toml plan-image --profile @PROFILE@ \
    --image ./@IMAGE@ --config /mnt/conf/config.json --data-root /mnt/data \
    --kernel /mnt/boot/kernel7.img --initramfs /mnt/boot/@RD@ >/tmp/plan.out 2>/tmp/plan.err
rc=$?
sed 's/^/SWAPOVER-PLAN /' /tmp/plan.out
sed 's/^/SWAPOVER-PLAN-ERR /' /tmp/plan.err
echo "SWAPOVER-PLAN-EXIT $rc"
stager --profile-file ./@PROFILE@.toml stage-1x --profile @PROFILE@ --image ./@IMAGE@ \
    --config /mnt/conf/config.json --data-root /mnt/data --kernel /mnt/boot/kernel7.img \
    --modules "/lib/modules/$(uname -r)" --no-supervisor-update --dry-run \
    >/tmp/dry.out 2>/tmp/dry.err
rc=$?
sed 's/^/SWAPOVER-DRY /' /tmp/dry.out
sed 's/^/SWAPOVER-DRY-ERR /' /tmp/dry.err
echo "SWAPOVER-DRY-EXIT $rc"
echo "SWAPOVER-T boot-after=$(ls /mnt/boot | tr '\n' ' ')"
"#;

/// [`qemu_tests::timing::timed`] with this test's tag.
fn timed<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    qemu_tests::timing::timed("pi-standins", what, f)
}

/// The lines after `marker ` of `lines`, joined.
fn tagged(lines: &[String], marker: &str) -> String {
    let prefix = format!("{marker} ");
    lines
        .iter()
        .filter_map(|l| l.split_once(&prefix).map(|(_, t)| t))
        .collect::<Vec<_>>()
        .join("\n")
}

fn boot_1x(inputs: &BbbInputs, dir: &Path, image_2x: &Arm2xImage) -> Result<Vec<String>> {
    let image_1x = timed("1.x stand-in built (or cached)", || Pi1xImage::ensure(inputs))?;
    let disk = image_1x.fresh_copy(dir)?;
    let profile = pi1x_standin::write_test_profile(dir)?;
    let script = RUN_SH
        .replace("@PORT@", &answer_once(HTTP_TOKEN)?.to_string())
        .replace("@RD@", HARNESS_INITRAMFS);
    let harness = stager_harness_disk(dir, inputs, &script, &profile, &image_2x.xz)?;
    let mut board =
        Board::new("pi-standins-1x", MODEL, &disk, &[("harness", &harness)], &dir.join("player"));
    let (plan, mut vm) = board.boot(RunEnd::PowerOn, "")?;
    assert_eq!(plan.handover, Handover::Linux);
    assert_eq!(plan.cmdline, pi_firmware::firmware_cmdline(pi1x_standin::CMDLINE_1X));
    assert!(plan.cmdline.contains("console=ttyAMA0,115200"), "{}", plan.cmdline);
    vm.wait_for("SWAPOVER-1X-DONE", STAGE)?;
    vm.wait_exit(STAGE)?;
    let console = vm.console_text();
    assert_eq!(next_boot(RunEnd::Exited, &console)?, NextBoot::Halt, "1.x powered off");
    Ok(complete_lines(&console))
}

fn check_1x(lines: &[String]) {
    let all = lines.join("\n");
    let up = after(lines, "SWAPOVER-1X-UP");
    assert!(up.contains("machine=armv7l"), "{up}");
    assert!(up.contains("console=ttyAMA0,115200"), "serial0 as the player hands it: {up}");
    let root = after(lines, "SWAPOVER-1X-LABEL resin-root=");
    assert!(root.ends_with('2') && up.contains(&format!("root={root} ")), "{up} / {root}");
    assert_eq!(after(lines, "SWAPOVER-1X-MOUNTS"), "3", "/mnt/boot, /mnt/conf, /mnt/data");
    assert_eq!(after(lines, "SWAPOVER-1X-NET"), "10.0.2.15/24");
    assert_eq!(value(lines, "http"), HTTP_TOKEN, "no answer from the host");
    assert_eq!(value(lines, "stager"), STAGER_PATH);
    // Debian's 6.1 kernel has no bcm2709 module: the stager arms with RESTART2 alone.
    assert!(value(lines, "reboot_part").contains("No such file"), "{all}");

    // plan-image: the real ARMv7 stager plans its own disk onto the Pi 2.x stand-in.
    let plan = tagged(lines, "SWAPOVER-PLAN");
    assert_eq!(after(lines, "SWAPOVER-PLAN-EXIT"), "0", "plan-image failed:\n{all}");
    let updt = qemu_tests::bbb1x_standin::PARTITIONS[2];
    let staging = format!(
        "Staging on the spare root (partition 3, sectors {}..{})",
        updt.start,
        updt.start + updt.sectors
    );
    assert!(plan.contains(&staging), "{plan}");
    assert!(plan.contains(&format!("Disk:     MBR {}", pi1x_standin::DISK_ID)), "{plan}");
    assert!(plan.contains("nothing was changed"), "{plan}");

    // stage-1x --dry-run: the Pi's phase A as it would run on this board (contract §2.2):
    // the spare's type byte, its FAT32, the trial set, RESTART2 alone (no reboot_part here).
    let dry = tagged(lines, "SWAPOVER-DRY");
    assert_eq!(after(lines, "SWAPOVER-DRY-EXIT"), "0", "stage-1x --dry-run:\n{all}");
    for step in [
        "from 0x83 to 0x0c (FAT32 LBA)",
        "as FAT32 labelled resin-updt",
        "no reboot_part parameter: the partition goes to RESTART2 only",
        "reboot(RESTART2, \"3\")",
    ] {
        assert!(dry.contains(step), "no {step:?} in the dry run:\n{dry}");
    }
    let boot_after = value(lines, "boot-after");
    assert!(!boot_after.contains("swapover"), "a dry run wrote to resin-boot: {boot_after}");
}

/// Boots `card` (the 2.x stand-in as written) to its verdict; returns the verdict and console.
fn boot_2x(
    dir: &Path,
    name: &str,
    card: &Path,
    extra_disks: &[(&str, &Path)],
) -> Result<(Verdict, String)> {
    let mut board = Board::new(name, MODEL, card, extra_disks, &dir.join(format!("{name}-player")));
    let (plan, mut vm) = board.boot(RunEnd::PowerOn, "")?;
    assert!(matches!(plan.handover, Handover::Uboot { .. }), "{}", pi_firmware::describe(&plan));
    assert_eq!(plan.initramfs, None);
    vm.wait_for(SUMMARY_MARKER, STAGE)?;
    vm.wait_exit(STAGE)?;
    let text = vm.console_text();
    Ok((Verdict::parse(&text)?, text))
}

/// The kernel's command line as it printed it.
fn kernel_cmdline(console: &str) -> String {
    console
        .lines()
        .find_map(|l| l.split_once("Kernel command line: ").map(|(_, c)| c.trim().to_string()))
        .unwrap_or_default()
}

#[test]
fn pi_standins_1x_runs_the_armv7_stager_and_2x_boots_through_uboot_and_boot_scr() -> Result<()> {
    let started = Instant::now();
    let inputs = BbbInputs::locate()?;
    let runs = paths::artifacts_dir().join("runs/pi-standins");
    let image_2x = timed("2.x stand-in built (or cached)", || pi2x_standin::ensure(&inputs))?;

    let lines = timed("a: 1.x up, network, stager plan-image and stage-1x --dry-run", || {
        boot_1x(&inputs, &runs.join("1x"), &image_2x)
    })?;
    check_1x(&lines);

    let card = image_2x.fresh_raw_copy(&runs.join("2x"), "pi-2x")?;
    let (verdict, text) = timed("b: 2.x → U-Boot → boot.scr → verdict", || {
        boot_2x(&runs, "pi-standins-2x", &card, &[])
    })?;
    let partuuid = format!("root=PARTUUID={}-0", pi2x_standin::DISK_ID.trim_start_matches("0x"));
    for seen in [
        "Found resin image on virtio 0",
        "Loading resinOS_uEnv.txt from virtio device 0 partition 1",
        "SWAPOVER-RESIN-UP",
    ] {
        assert!(text.contains(seen), "no {seen:?} on the console:\n{text}");
    }
    let cmdline = kernel_cmdline(&text);
    assert!(
        cmdline.starts_with("dwc_otg.lpm_enable=0 console=tty1 console=ttyAMA0,115200"),
        "{cmdline}"
    );
    assert!(cmdline.ends_with(&format!("{partuuid}2 rootwait")), "{cmdline}");
    assert!(verdict.summary.preloaded_supervisor, "{:?}", verdict.summary);
    assert!(!verdict.summary.config_json, "nothing migrated yet: {:?}", verdict.summary);

    let card3 = image_2x.fresh_raw_copy(&runs.join("2x"), "pi-2x-root3")?;
    let table = PartitionTable::read(&card3)?;
    disk::write_fat_file(&card3, table.number(1)?, "resinOS_uEnv.txt", b"resin_root_part=3\n")?;
    // With the harness disk attached, as an end-to-end test's board has it: the card is still
    // U-Boot's device 0.
    let harness = build_harness_disk(&runs.join("2x"), &inputs, &[])?;
    let (_, text) = timed("c: resin_root_part=3 → …-03 (harness disk attached)", || {
        boot_2x(&runs, "pi-standins-2x-root3", &card3, &[("harness", &harness)])
    })?;
    assert!(text.contains("Found resin image on virtio 0"), "{text}");
    let cmdline = kernel_cmdline(&text);
    assert!(cmdline.ends_with(&format!("{partuuid}3 rootwait")), "{cmdline}");
    eprintln!("[pi-standins] whole test: {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
