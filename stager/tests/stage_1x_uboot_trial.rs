//! `stage-1x` on a resinOS 1.x BeagleBone Black (docs/arm-1x-contract.md §2.3, phase A): the
//! real 1.x device tree of `resinos1x_support::device` (the disk at /dev/sda in the profile's
//! layout by the real sfdisk/mkfs, its spare root's ext3 really loop-mounted for staging), a
//! tmpfs mounted as resin-boot holding the disk's uEnv.txt and a u-boot.img, the board's
//! kernel and dtb on the root, and a sparse file at the tree's /dev/mem holding U-Boot's
//! boot counter word at 0x44E3E068 (big-endian, count 4). Shown: the armed uEnv.txt is
//! `uboot_env`'s trial text for count 5 on top of the board's own file; the trial's files on
//! resin-boot are byte-equal to their sources; the plan says route uboot-trial with the count,
//! the 1.x copy and the watchdog; `abort`, and the rollback after a failure injected after
//! each step, give every file of the tree (resin-boot included) back byte for byte; an
//! unreadable or exhausted counter, a U-Boot without the counter and a missing dtb are
//! refused in one line with nothing changed.
//!
//! The boot mount is a tmpfs, not the disk's FAT: this kernel mounts no vfat (and does not
//! scan loop devices' partitions), so "byte-identical" is each file of resin-boot's tree,
//! not the FAT's raw bytes (which no file-level undo could give back anyway: FAT keeps
//! deleted directory entries and freed clusters' bytes).

#[path = "stage_support/mod.rs"]
mod stage_support;

#[path = "resinos1x_support/mod.rs"]
mod resinos1x_support;

use plan::{FileChangeKind, GrubRoute, UbootInterface};
use resinos1x_support::device::{Device, BOOT_MOUNT, PHYS_MEM, UBOOT_IMG};
use resinos1x_support::{original_boot_file, write_counter};
use stager::stage::engine::system::FixtureSystem;
use stager::stage::resinos1x::stage_1x::{self, Armed, Outcome1x, Stage1xError};
use stager::stage::resinos1x::{plan_image, uboot_trial};
use std::process::Command;
use uboot_env::{BootCount, BootPart, ExistingUenv, TrialCount, TrialEnv};

const BBB: &str = "resinos1x-beaglebone-black";

fn boot_file(device: &Device, name: &str) -> Vec<u8> {
    std::fs::read(device.host.path(&format!("{BOOT_MOUNT}/{name}"))).unwrap()
}

fn root_file(device: &Device, name: &str) -> Vec<u8> {
    std::fs::read(device.host.path(name)).unwrap()
}

/// The trial text `uboot_env` renders for the board's 1.x uEnv.txt at counter 4.
fn expected_uenv() -> String {
    TrialEnv {
        interface: UbootInterface::Mmc,
        mmcdev: 1,
        bootpart: BootPart { device: 1, partition: 2 },
        trial_count: TrialCount::after(BootCount(4)).unwrap(),
    }
    .render(&ExistingUenv::parse(&original_boot_file("uEnv.txt")).unwrap())
    .unwrap()
}

#[test]
fn the_plan_carries_the_route_the_count_the_1x_copy_and_the_watchdog() {
    let device = Device::new(BBB);
    let p = plan_image::plan(&device.request.plan).unwrap();
    let grub = &p.plan.grub;
    assert_eq!(grub.route, GrubRoute::UbootTrial);
    let uboot = grub.uboot.as_ref().expect("grub.uboot");
    assert_eq!(
        (uboot.interface, uboot.original_uenv.as_str(), uboot.trial_count),
        (UbootInterface::Mmc, "swapover/uEnv.txt.1x", 5)
    );
    let watchdog = p.plan.failure.watchdog.as_ref().expect("failure.watchdog");
    assert_eq!((watchdog.device.as_str(), watchdog.interval_secs), ("/dev/watchdog", 10));
    let files: Vec<(&str, bool)> = grub
        .files
        .iter()
        .map(|f| (f.path.as_str(), matches!(f.change, FileChangeKind::Created)))
        .collect();
    assert_eq!(
        files,
        vec![
            ("/mnt/boot/uEnv.txt", false),
            ("/mnt/boot/swapover/zImage", true),
            ("/mnt/boot/swapover/board.dtb", true),
            ("/mnt/boot/swapover/initramfs.img", true),
        ]
    );
    match &grub.files[0].change {
        FileChangeKind::Modified { backup, .. } => {
            assert_eq!(backup, "/mnt/boot/swapover/uEnv.txt.1x")
        }
        other => panic!("{other:?}"),
    }
    // The plan's uEnv.txt edit is uboot_env's trial text, nothing of the old edit's.
    let edit = p.boot_edits.iter().find(|e| e.name == "uEnv.txt").unwrap();
    assert_eq!(String::from_utf8(edit.edited.clone()).unwrap(), expected_uenv());
    assert!(p.budget.kernel_on_boot, "U-Boot loads the trial's files from resin-boot");
    p.plan.validate().unwrap();
}

#[test]
fn stage_1x_arms_the_trial_and_abort_gives_the_boot_tree_back() {
    let mut device = Device::with_mounted_boot(BBB);
    device.request.supervisor = stage_1x::SupervisorRequest::Skip;
    let before = device.snapshot().0;

    device.request.dry_run = true;
    let text = match stage_1x::run(&device.request, &mut FixtureSystem::default()) {
        Ok(Outcome1x::DryRun(text)) => text,
        other => panic!("no dry run: {other:?}"),
    };
    device.request.dry_run = false;
    assert!(text.contains("uEnv.txt replaced by a trial that U-Boot runs for one boot"), "{text}");
    assert!(
        text.contains("U-Boot's boot counter at 0x44e3e068 reads 4 (word 0xb0010004); the trial runs at the boot that counts 5"),
        "{text}"
    );
    assert_eq!(device.snapshot().0, before, "a dry run changed the device");

    match stage_1x::run(&device.request, &mut FixtureSystem::default()) {
        Ok(Outcome1x::Staged { rebooting: false, armed }) => {
            assert_eq!(armed, Armed::UbootTrial { trial_count: 5 })
        }
        other => panic!("not staged: {other:?}"),
    }
    assert_eq!(String::from_utf8(boot_file(&device, "uEnv.txt")).unwrap(), expected_uenv());
    assert_eq!(boot_file(&device, uboot_trial::ORIGINAL_UENV), original_boot_file("uEnv.txt"));
    assert_eq!(boot_file(&device, uboot_env::TRIAL_KERNEL), root_file(&device, "/boot/zImage"));
    assert_eq!(
        boot_file(&device, uboot_env::TRIAL_DTB),
        root_file(&device, "/boot/am335x-boneblack.dtb")
    );
    let initramfs = boot_file(&device, uboot_env::TRIAL_INITRAMFS);
    assert_eq!(&initramfs[..2], b"\x1f\x8b", "a gzip initramfs");
    let mut names: Vec<String> =
        std::fs::read_dir(device.host.path(&format!("{BOOT_MOUNT}/swapover")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    names.sort();
    assert_eq!(names, ["board.dtb", "initramfs.img", "uEnv.txt.1x", "zImage"], "no temporary left");
    let journal =
        std::fs::read_to_string(device.host.path("/var/lib/swapover/state.json")).unwrap();
    assert!(journal.contains("\"kind\": \"arm-uboot-trial\""), "{journal}");

    let status =
        stager::status::status(&device.request.root, &mut FixtureSystem::default()).unwrap();
    let shown = stager::status::render_text(&status);
    assert!(
        shown.contains("Armed through U-Boot's boot counter: the boot that counts 5"),
        "{shown}"
    );

    let report = stager::abort::abort(&device.request.root, &mut FixtureSystem::default()).unwrap();
    assert!(format!("{report:?}").contains("put the 1.x"), "{report:?}");
    assert_eq!(device.snapshot().0, before, "abort left the device changed");
}

#[test]
fn a_failure_after_each_step_rolls_the_boot_tree_back() {
    let mut device = Device::with_mounted_boot(BBB);
    device.request.supervisor = stage_1x::SupervisorRequest::Skip;
    let before = device.snapshot().0;
    let steps =
        ["attach", "mount", "write-staging-dir", "unmount", "write-boot-dir", "arm-uboot-trial"];
    for step in steps {
        device.request.execute.fail_after = Some(step.into());
        let err = stage_1x::run(&device.request, &mut FixtureSystem::default())
            .expect_err("injected failure");
        let text = err.to_string();
        assert!(matches!(err, Stage1xError::Execute(_)), "{step}: {text}");
        assert!(text.contains(&format!("failure injected after {step}")), "{text}");
        assert!(text.contains("everything was rolled back"), "{step}: {text}");
        assert_eq!(device.snapshot().0, before, "rollback after {step} left the device changed");
    }
}

#[test]
fn an_unreadable_or_exhausted_boot_counter_is_refused_with_nothing_changed() {
    let mut device = Device::new(BBB);
    let trial = device.request.plan.profile.uboot_trial.clone().unwrap();
    let mem = device.host.path(PHYS_MEM);
    std::fs::remove_file(&mem).unwrap();
    device.refused(&[
        &format!(
            "refused: cannot read U-Boot's boot counter at 0x44e3e068 through {}",
            mem.display()
        ),
        "the trial cannot be armed safely",
    ]);
    write_counter(&mem, &trial.bootcount, 0xB001_FFFF);
    device.refused(&["the boot counter is at 65535", "power the board off and on"]);
    // The same device with a counter it can arm at is ready: the refusals were the counter's.
    write_counter(&mem, &trial.bootcount, 0xB001_FFFE);
    device.request.dry_run = true;
    match stage_1x::run(&device.request, &mut FixtureSystem::default()) {
        Ok(Outcome1x::DryRun(text)) => {
            assert!(text.contains("the boot that counts 65535"), "{text}")
        }
        other => panic!("not ready: {other:?}"),
    }
}

#[test]
fn a_uboot_without_the_counter_a_foreign_uenv_or_a_missing_dtb_is_refused() {
    let device = Device::new(BBB);
    let uboot = device.host.path(&format!("{BOOT_MOUNT}/{UBOOT_IMG}"));
    let good = std::fs::read(&uboot).unwrap();
    std::fs::write(&uboot, b"U-Boot 2015.07\0uenvcmd\0bootz\0").unwrap();
    device.refused(&["u-boot.img has no bootcount in its strings"]);
    std::fs::write(&uboot, good).unwrap();
    let uenv = device.host.path(&format!("{BOOT_MOUNT}/uEnv.txt"));
    std::fs::write(&uenv, b"bootpart=1:3\n").unwrap();
    device.refused(&["uEnv.txt is not the uEnv.txt read from the disk's boot partition"]);
    std::fs::write(&uenv, original_boot_file("uEnv.txt")).unwrap();
    let dtb = device.host.path("/boot/am335x-boneblack.dtb");
    std::fs::remove_file(&dtb).unwrap();
    device.refused(&[
        "/boot/am335x-boneblack.dtb (the board's device tree) is not on the running root",
    ]);
}

#[test]
fn the_cli_dry_run_shows_the_route_and_the_counter() {
    let device = Device::new(BBB);
    let migrator = device.host.path("/tmp/migrator");
    std::fs::create_dir_all(migrator.parent().unwrap()).unwrap();
    std::fs::write(&migrator, b"\x7fELF the migrator").unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_stager"));
    command.args(["stage-1x", "--profile", BBB, "--dry-run", "--no-supervisor-update"]);
    command.arg("--migrator").arg(&migrator);
    let out = device.stage_1x_args(&mut command).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("via uEnv.txt replaced by a trial that U-Boot runs for one boot"),
        "{text}"
    );
    assert!(text.contains("U-Boot's boot counter at 0x44e3e068 reads 4"), "{text}");
    assert!(text.contains("rename the trial's uEnv.txt over /mnt/boot/uEnv.txt"), "{text}");
    assert!(text.contains("Dry run: nothing was changed."), "{text}");
}
