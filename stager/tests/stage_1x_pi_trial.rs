//! `stage-1x` on a resinOS 1.x Raspberry Pi 3 (docs/arm-1x-contract.md §2.2, phase A): the
//! real 1.x device tree of `resinos1x_support::device` (the disk at /dev/sda in the
//! profile's layout by the real sfdisk/mkfs.vfat/mkfs.ext3/mkfs.btrfs, resin-boot holding
//! bootcode.bin, the firmware, kernel7.img, dtbs and nested overlays written by mtools),
//! the 1.x kernel's release and `reboot_part` parameter in the tree's /proc and /sys.
//! The spare (resin-updt, p3) is 40 MiB and placed past the 2.x image's end
//! (`PI_LAYOUT`): FAT32 needs at least 65525 clusters (about 33 MiB at 512-byte clusters).
//!
//! Shown, on the real disk bytes: the plan routes pi-firmware-trial with grub.pi, staging
//! vfat with its volume id and the R1 note; after staging, p3's MBR type byte is 0x0c and
//! p3 is a FAT32 labelled resin-updt with the plan's volume id (blkid and `fsck.fat -n`
//! on the partition's bytes); the trial files are byte-equal to resin-boot's; config.txt and
//! cmdline.txt are exactly the contract's; reboot_part holds 3; `abort`, and the rollback
//! after a failure injected after each step, give every byte of the disk outside p3 back
//! (MBR, p1, p2, EBRs, p5, p6) and leave p3 an empty FAT32 labelled resin-updt (its ext3
//! cannot come back: contract R1); refusals come in one line with nothing changed.
//!
//! Deviation (named): the stager writes the spare's FAT through the `fatfs` crate on the
//! raw partition, never through a vfat mount (this sandbox's kernel mounts no vfat, and
//! the 1.x root may have no mkfs.vfat); so nothing here mounts a FAT. That the GPU
//! firmware (played by qemu-tests' pi_firmware) and the migrator's kernel read this FAT is
//! for the QEMU test.

#[path = "stage_support/mod.rs"]
mod stage_support;

#[path = "resinos1x_support/mod.rs"]
mod resinos1x_support;

use plan::{FsType, GrubRoute, PartitionRole};
use resinos1x_support::device::{Device, MOUNTINFO, OSRELEASE, PI_MOUNTINFO};
use resinos1x_support::{start_of, PI_LAYOUT};
use stage_support::sha256_hex;
use stager::stage::engine::system::FixtureSystem;
use stager::stage::resinos1x::stage_1x::{self, Armed, Outcome1x, Stage1xError};
use stager::stage::resinos1x::{pi_trial, plan_image, planner, source_disk};
use std::io::{Cursor, Read};
use std::process::Command;

const PI3: &str = "resinos1x-raspberrypi3";
const EXPECTED_CONFIG: &str = "# resinOS 1.x\ngpu_mem=16\ndtparam=audio=on\nkernel=kernel7.img\ninitramfs swapover/initramfs.img followkernel\ncmdline=swapover/cmdline.txt\n";
const EXPECTED_CMDLINE: &str =
    "console=tty1 console=serial0,115200 swapover.stage=trial panic=10\n";

fn pi_device() -> Device {
    let mut device = Device::pi(PI3, &PI_LAYOUT);
    device.request.supervisor = stage_1x::SupervisorRequest::Skip;
    device
}

fn disk(device: &Device) -> Vec<u8> {
    std::fs::read(device.host.path("/dev/sda")).unwrap()
}

/// (start, end) in bytes of the partition with `role`.
fn span(device: &Device, role: PartitionRole) -> (usize, usize) {
    let (start, size) = start_of(&device.case.source, role);
    ((start * 512) as usize, ((start + size) * 512) as usize)
}

/// The sha256 of every disk byte outside the spare (MBR, p1, p2, EBRs, p5, p6), the
/// spare's MBR type byte taken as 0x83 (checked on its own by [`type_byte`]).
fn outside_spare(device: &Device) -> String {
    let mut bytes = disk(device);
    bytes[0x1be + 32 + 4] = 0x83;
    let (start, end) = span(device, PartitionRole::RootB);
    sha256_hex(&[&bytes[..start], &bytes[end..]].concat())
}

/// A FAT partition's bytes as a file system.
fn fat(device: &Device, role: PartitionRole) -> fatfs::FileSystem<Cursor<Vec<u8>>> {
    let (start, end) = span(device, role);
    let bytes = disk(device)[start..end].to_vec();
    fatfs::FileSystem::new(Cursor::new(bytes), fatfs::FsOptions::new()).unwrap()
}

fn read(fs: &fatfs::FileSystem<Cursor<Vec<u8>>>, name: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    fs.root_dir().open_file(name).unwrap().read_to_end(&mut bytes).unwrap();
    bytes
}

/// The names in a FAT's root directory.
fn root_names(fs: &fatfs::FileSystem<Cursor<Vec<u8>>>) -> Vec<String> {
    let mut names: Vec<String> = fs.root_dir().iter().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    names
}

/// blkid's and fsck.fat's view of the spare's bytes (copied to a file).
fn blkid_spare(device: &Device) -> String {
    let (start, end) = span(device, PartitionRole::RootB);
    let file = device.case.dir.path().join("spare.fs");
    std::fs::write(&file, &disk(device)[start..end]).unwrap();
    let fsck = Command::new("fsck.fat").arg("-n").arg(&file).output().unwrap();
    assert!(
        fsck.status.success(),
        "fsck.fat -n: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    let out = Command::new("blkid").args(["-p", "-o", "export"]).arg(&file).output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

fn type_byte(device: &Device, number: usize) -> u8 {
    disk(device)[0x1be + 16 * (number - 1) + 4]
}

fn volume_id(device: &Device) -> String {
    plan_image::plan(&device.request.plan).unwrap().plan.staging.fs_uuid
}

#[test]
fn the_plan_routes_the_firmware_trial_on_a_new_fat32() {
    let device = pi_device();
    let p = plan_image::plan(&device.request.plan).unwrap();
    let grub = &p.plan.grub;
    assert_eq!(grub.route, GrubRoute::PiFirmwareTrial);
    let pi = grub.pi.as_ref().expect("grub.pi");
    let trial = device.request.plan.profile.pi_trial.clone().unwrap();
    assert_eq!(
        (pi.trial_partition, pi.kernel.as_str(), &pi.blobs_last),
        (3, "kernel7.img", &trial.blobs_last)
    );
    assert!(grub.uboot.is_none() && grub.files.is_empty() && p.boot_edits.is_empty());
    assert!(p.plan.failure.watchdog.is_none(), "the GPU firmware starts no watchdog");
    assert_eq!(p.plan.staging.fs_type, FsType::Vfat);
    assert_eq!(p.plan.staging.partition.number, 3);
    let id = &p.plan.staging.fs_uuid;
    assert!(id.len() == 9 && id.as_bytes()[4] == b'-', "{id}");
    assert_eq!(&volume_id(&device), id, "the volume id is the same for the same inputs");
    // The budget is the new FAT32's room, the trial set counted.
    let geometry = pi_trial::fat32_geometry(plan::Bytes(40 * 1024 * 1024)).unwrap();
    assert_eq!(p.budget.have, geometry.data_bytes());
    assert!(p.budget.trial_set.get() > 400_000 + 2 * 200_000, "{:?}", p.budget);
    let text = planner::render(&p);
    assert!(text.contains("its ext3, a copy of an old root that resinOS 1.x does not need, is given up and does not come back on abort (contract R1)"), "{text}");
    assert!(
        text.contains(&format!("in a new vfat file system labelled resin-updt (volume id {id}")),
        "{text}"
    );
    p.plan.validate().unwrap();
}

#[test]
fn stage_1x_makes_the_spare_a_trial_fat32_and_abort_gives_every_other_byte_back() {
    let mut device = pi_device();
    let before_outside = outside_spare(&device);
    let before_tree = device.snapshot().0;
    let id = volume_id(&device);

    device.request.dry_run = true;
    let text = match stage_1x::run(&device.request, &mut FixtureSystem::default()) {
        Ok(Outcome1x::DryRun(text)) => text,
        other => panic!("no dry run: {other:?}"),
    };
    device.request.dry_run = false;
    assert!(text.contains("from 0x83 to 0x0c"), "{text}");
    assert!(text.contains("does not come back (contract R1)"), "{text}");
    assert_eq!(outside_spare(&device), before_outside, "a dry run changed the disk");
    assert_eq!(type_byte(&device, 3), 0x83);

    device.request.execute.no_reboot = false;
    let mut system = FixtureSystem::default();
    match stage_1x::run(&device.request, &mut system) {
        Ok(Outcome1x::Staged { rebooting: true, armed }) => {
            assert_eq!(armed, Armed::PiTrial { partition: 3 })
        }
        other => panic!("not staged: {other:?}"),
    }
    assert_eq!(system.calls, ["reboot 3"], "RESTART2 with the partition");
    assert_eq!(type_byte(&device, 3), 0x0c);
    let blkid = blkid_spare(&device);
    for line in ["TYPE=vfat", "VERSION=FAT32", "LABEL=resin-updt", &format!("UUID={id}")] {
        assert!(blkid.lines().any(|l| l == line), "{line} not in {blkid}");
    }
    let boot = fat(&device, PartitionRole::Boot);
    let spare = fat(&device, PartitionRole::RootB);
    let trial_set = [
        "start.elf",
        "fixup.dat",
        "start_x.elf",
        "kernel7.img",
        "bcm2709-rpi-2-b.dtb",
        "bcm2710-rpi-3-b.dtb",
        "overlays/w1-gpio.dtbo",
        "overlays/extra/i2c.dtbo",
    ];
    for name in trial_set {
        assert_eq!(read(&spare, name), read(&boot, name), "{name} differs from resin-boot's");
    }
    assert_eq!(String::from_utf8(read(&spare, "config.txt")).unwrap(), EXPECTED_CONFIG);
    assert_eq!(String::from_utf8(read(&spare, "swapover/cmdline.txt")).unwrap(), EXPECTED_CMDLINE);
    assert_eq!(&read(&spare, "swapover/initramfs.img")[..2], b"\x1f\x8b", "a gzip initramfs");
    assert_eq!(
        read(&spare, "swapover/resinos.img.xz"),
        std::fs::read(&device.request.plan.image).unwrap()
    );
    let plan: plan::Plan = serde_json::from_slice(&read(&spare, "swapover/plan.json")).unwrap();
    assert_eq!(plan.staging.fs_uuid, id);
    assert_eq!(
        root_names(&spare),
        [
            "bcm2709-rpi-2-b.dtb",
            "bcm2710-rpi-3-b.dtb",
            "config.txt",
            "fixup.dat",
            "kernel7.img",
            "overlays",
            "start.elf",
            "start_x.elf",
            "swapover"
        ],
        "bootcode.bin is resin-boot's alone; no temporary left"
    );
    let reboot_part = device.request.plan.profile.pi_trial.clone().unwrap().reboot_part;
    assert_eq!(std::fs::read_to_string(device.host.path(&reboot_part)).unwrap(), "3\n");
    assert_eq!(outside_spare(&device), before_outside, "staging changed resin-boot or more");

    let status =
        stager::status::status(&device.request.root, &mut FixtureSystem::default()).unwrap();
    let shown = stager::status::render_text(&status);
    assert!(shown.contains("armed: the GPU firmware boots partition 3 once"), "{shown}");
    assert!(shown.contains("its ext3 (a copy of an old root) cannot come back"), "{shown}");

    let report = stager::abort::abort(&device.request.root, &mut FixtureSystem::default()).unwrap();
    let said = format!("{report:?}");
    assert!(said.contains("cannot come back (contract R1)"), "{said}");
    assert_eq!(std::fs::read_to_string(device.host.path(&reboot_part)).unwrap(), "0\n");
    assert_eq!(type_byte(&device, 3), 0x83);
    assert_eq!(
        outside_spare(&device),
        before_outside,
        "abort left bytes outside the spare changed"
    );
    assert_empty_spare(&device, &id);
    let mut after = device.snapshot().0;
    let mut before = before_tree;
    after.remove("dev/sda");
    before.remove("dev/sda");
    assert_eq!(after, before, "abort left the tree changed");
}

fn assert_empty_spare(device: &Device, id: &str) {
    let blkid = blkid_spare(device);
    for line in ["VERSION=FAT32", "LABEL=resin-updt", &format!("UUID={id}")] {
        assert!(blkid.lines().any(|l| l == line), "{line} not in {blkid}");
    }
    let spare = fat(device, PartitionRole::RootB);
    assert!(root_names(&spare).is_empty(), "{:?}", root_names(&spare));
}

#[test]
fn a_failure_after_each_step_rolls_back_every_byte_outside_the_spare() {
    let mut device = pi_device();
    let before = outside_spare(&device);
    let id = volume_id(&device);
    let reboot_part = device.request.plan.profile.pi_trial.clone().unwrap().reboot_part;
    // In this order, each run after the first formats a spare an earlier run wrote.
    for step in ["set-partition-type", "format-spare", "write-pi-trial", "arm-pi-trial"] {
        device.request.execute.fail_after = Some(step.into());
        let err = stage_1x::run(&device.request, &mut FixtureSystem::default())
            .expect_err("injected failure");
        let text = err.to_string();
        assert!(matches!(err, Stage1xError::Execute(_)), "{step}: {text}");
        assert!(text.contains(&format!("failure injected after {step}")), "{text}");
        assert!(text.contains("everything was rolled back"), "{step}: {text}");
        assert_eq!(outside_spare(&device), before, "rollback after {step} changed the disk");
        assert_eq!(type_byte(&device, 3), 0x83, "{step}");
        assert_eq!(std::fs::read_to_string(device.host.path(&reboot_part)).unwrap(), "0\n");
        if step != "set-partition-type" {
            assert_empty_spare(&device, &id);
        }
        assert!(!device.host.path("/var/lib/swapover/state.json").exists(), "{step}");
    }
}

#[test]
fn refusals_come_in_one_line_with_nothing_changed() {
    let device = pi_device();
    // The spare mounted.
    device.host.write(
        MOUNTINFO,
        &format!("{PI_MOUNTINFO}40 21 259:3 / /mnt/updt rw - ext3 /dev/sda3 rw\n"),
    );
    device.refused(&["the spare /dev/sda3 is mounted at /mnt/updt"]);
    device.host.write(MOUNTINFO, PI_MOUNTINFO);
    // A 4.1 kernel without the parameter file.
    let reboot_part = device.request.plan.profile.pi_trial.clone().unwrap().reboot_part;
    device.host.remove(&reboot_part);
    device
        .refused(&["reboot_part does not exist and the running kernel (4.1.23) is older than 4.9"]);
    // A newer kernel takes the partition through RESTART2 alone.
    device.host.write(OSRELEASE, "6.1.0-13-armmp\n");
    let mut ready = pi_device_from(&device);
    ready.request.dry_run = true;
    match stage_1x::run(&ready.request, &mut FixtureSystem::default()) {
        Ok(Outcome1x::DryRun(text)) => assert!(text.contains("RESTART2 only"), "{text}"),
        other => panic!("not ready: {other:?}"),
    }
    device.host.write(&reboot_part, "0\n");
    // Leftovers: the spare's type already changed.
    let disk_path = device.host.path("/dev/sda");
    let mut bytes = std::fs::read(&disk_path).unwrap();
    bytes[0x1be + 32 + 4] = 0x0c;
    std::fs::write(&disk_path, &bytes).unwrap();
    device.refused(&[
        "partition 3 of",
        "has type 0x0c, not the Linux type 0x83",
        "run `stager abort`",
    ]);
    bytes[0x1be + 32 + 4] = 0x83;
    std::fs::write(&disk_path, &bytes).unwrap();
    // No start.elf on resin-boot.
    let (start, _) = start_of(&device.case.source, PartitionRole::Boot);
    let image = format!("{}@@{}", disk_path.display(), start * 512);
    let status = Command::new("mdel").args(["-i", &image, "::start.elf"]).status().unwrap();
    assert!(status.success());
    device
        .refused(&["resin-boot has no start.elf, which the GPU firmware needs to boot the trial"]);
}

/// The same device, by reference (refusals mutate the tree; the request is cloned).
fn pi_device_from(device: &Device) -> Clone1x {
    Clone1x { request: device.request.clone() }
}

struct Clone1x {
    request: stage_1x::Stage1xRequest,
}

#[test]
fn a_spare_too_small_for_fat32_is_refused() {
    // The profile's own layout scaled: a 20 MiB resin-updt, inside the image's resin-rootB.
    let mut device = Device::pi(PI3, &[]);
    device.request.supervisor = stage_1x::SupervisorRequest::Skip;
    device.refused(&[
        "the spare resin-updt (partition 3) is 20 MiB (20971520 bytes), too small for a FAT32 (at least 65525 clusters of 512 bytes)",
    ]);
}

#[test]
fn an_image_of_4_gib_or_more_is_refused_by_the_planner() {
    let device = pi_device();
    let req = &device.request.plan;
    let disk = source_disk::read(&req.disk).unwrap();
    let boot = plan_image::read_boot_files(&disk, &req.profile).unwrap();
    let mut image = stager::stage::image_probe::probe(&req.image).unwrap();
    image.compressed_size = plan::Bytes(4 * 1024 * 1024 * 1024);
    let config = stager::stage::config_json::read(&req.config).unwrap();
    let app_data =
        stager::stage::resinos1x::app_data::measure(&req.data_root, &req.profile).unwrap();
    let err = planner::make_plan(&planner::Inputs {
        profile: &req.profile,
        disk: &disk,
        image: &image,
        config: &config,
        app_data: &app_data,
        kernel: plan::Bytes(1024 * 1024),
        initramfs: plan::Bytes(1024 * 1024),
        boot_files: &boot.files,
        boot_free: boot.free,
        allow_unknown_device_type: false,
        boot_counter: None,
        pi_boot: boot.pi.as_ref(),
    })
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "the image is 4 GiB (4294967296 bytes), but the staging FAT32 holds files below 4 GiB only; use the compressed image (.img.xz)"
    );
}

#[test]
fn the_cli_dry_run_takes_resin_boots_kernel_and_shows_the_steps() {
    let device = pi_device();
    // resin-boot mounted as on the device (only the kernel is read there: its size).
    let boot = fat(&device, PartitionRole::Boot);
    std::fs::write(device.host.path("/mnt/boot/kernel7.img"), read(&boot, "kernel7.img")).unwrap();
    let migrator = device.host.path("/tmp/migrator");
    std::fs::create_dir_all(migrator.parent().unwrap()).unwrap();
    std::fs::write(&migrator, b"\x7fELF the migrator").unwrap();
    let before = outside_spare(&device);
    let mut command = Command::new(env!("CARGO_BIN_EXE_stager"));
    command.args(["stage-1x", "--profile", PI3, "--dry-run", "--no-supervisor-update"]);
    command.arg("--migrator").arg(&migrator);
    let out = device.stage_1x_args_but_kernel(&mut command).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("via the spare partition as a FAT32 trial boot set"), "{text}");
    assert!(text.contains("set partition 3's type byte"), "{text}");
    assert!(text.contains("write 3 to /sys/module/bcm2709/parameters/reboot_part"), "{text}");
    assert!(text.contains("reboot(RESTART2, \"3\")"), "{text}");
    assert!(text.contains("Dry run: nothing was changed."), "{text}");
    assert_eq!(outside_spare(&device), before);
    assert_eq!(type_byte(&device, 3), 0x83);
}
