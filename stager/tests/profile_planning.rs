//! Every shipped profile plans: for each embedded profile (board-profiles' own tests make
//! sure every file under board-profiles/profiles is embedded), a sparse disk image in the
//! profile's source layout made by the real sfdisk, mkfs.vfat, mkfs.ext3/ext4, mkswap and mkfs.btrfs, a small 2.x image in
//! the profile's target layout (xz-compressed by the real xz), then the stager's planner.
//! The plan's staging partition, target layout and restore locations must be the profile's.
//! Sizes are the profile's typical sizes divided by one scale per profile (a power of two,
//! at least 16, small enough for the 2.x image to fit the fixture host's 100 MiB old root),
//! rounded up to whole MiB, the same for both layouts: a profile whose 1.x layout puts
//! resin-updt where flashing reaches first fails here.
//!
//! Then the refusals of the 1.x path, each naming sizes and the fix: the spare root too
//! small, data over the 170 MB limit, resin-updt overlapping resin-rootA, a disk or host of
//! the other kind.

#[path = "stage_support/mod.rs"]
mod stage_support;

#[path = "resinos1x_support/mod.rs"]
mod resinos1x_support;

use board_profiles::{ExpectedPartition, Profile};
use plan::{FsType, PartitionRole, SourceKind};
use resinos1x_support::*;
use stage_support::fixture_host::sparse_file;
use stage_support::StageHost;
use stager::stage::resinos1x::plan_image;
use stager::stage::resinos1x::{Plan1x, Refusal1x};
use std::path::Path;
use std::process::Command;

/// Checks a 1.x plan against the profile and the images built for it.
fn check_1x_plan(profile: &Profile, case: &Case, p: &Plan1x) -> Result<(), String> {
    let plan = &p.plan;
    let updt =
        profile.source_partition(PartitionRole::RootB).ok_or("no root-b source partition")?;
    let (start, size) = start_of(&case.source, PartitionRole::RootB);
    let staging = &plan.staging.partition;
    if (staging.start.get(), staging.size.get()) != (start, size) {
        return Err(format!(
            "staging is {}..+{}, {} is {start}..+{size}",
            staging.start.get(),
            staging.size.get(),
            updt.name
        ));
    }
    let (root_start, _) = start_of(&case.source, PartitionRole::RootA);
    if plan.old_root.partition.start.get() != root_start {
        return Err("old root is not the 1.x root".into());
    }
    let expected_fs = profile.source_partition(PartitionRole::RootA).map(|p| p.fs);
    if Some(plan.old_root.fs_type) != expected_fs {
        return Err(format!("old root fs {} is not the profile's", plan.old_root.fs_type));
    }
    check_layout(profile, case.target.as_slice(), plan)?;
    let root_b =
        profile.target_partition(PartitionRole::RootB).ok_or("no root-b target partition")?;
    if plan.layout.written_last != vec![root_b.name.clone()] {
        return Err(format!("written_last is {:?}", plan.layout.written_last));
    }
    let volume = plan.backup.volumes.first().ok_or("no backup volume")?;
    if volume.restore_to != profile.restore.data.to_restore_location("4321") {
        return Err(format!("data restored to {:?}", volume.restore_to));
    }
    if volume.items[0].source != "/mnt/data/resin-data" {
        return Err(format!("data read from {}", volume.items[0].source));
    }
    // The migrator mounts the 1.x data partition (the profile's, with its file system) to read it.
    let (data_start, data_size) = start_of(&case.source, PartitionRole::Data);
    let data = plan.source_data.as_ref().ok_or("no source_data")?;
    if (data.partition.start.get(), data.partition.size.get()) != (data_start, data_size) {
        return Err(format!(
            "source_data is {}..+{}, the data partition {data_start}..+{data_size}",
            data.partition.start.get(),
            data.partition.size.get()
        ));
    }
    if Some(data.fs_type) != profile.source_partition(PartitionRole::Data).map(|p| p.fs) {
        return Err(format!("source_data fs {} is not the profile's", data.fs_type));
    }
    if plan.config_json.restore_to != profile.restore.config_json.to_restore_location("4321") {
        return Err(format!("config.json restored to {:?}", plan.config_json.restore_to));
    }
    if plan.backup.limit != profile.backup_limit().unwrap() {
        return Err("backup limit is not the profile's".into());
    }
    Ok(())
}

/// Target partitions: the profile's names, roles and file systems in its order, at the
/// places the image's table gives them.
fn check_layout(
    profile: &Profile,
    target: &[(ExpectedPartition, u64, u64)],
    plan: &plan::Plan,
) -> Result<(), String> {
    let found: Vec<(String, PartitionRole, FsType, u64, u64)> = plan
        .layout
        .partitions
        .iter()
        .map(|p| (p.name.clone(), p.role, p.fs, p.disk_start.get(), p.size.get()))
        .collect();
    let wanted: Vec<(String, PartitionRole, FsType, u64, u64)> = target
        .iter()
        .map(|(p, at, size)| {
            (p.name.clone(), p.role, p.fs, at * SECTORS_PER_MIB, size * SECTORS_PER_MIB)
        })
        .collect();
    if found != wanted {
        return Err(format!("layout {found:?}, profile {} wants {wanted:?}", profile.name));
    }
    Ok(())
}

/// An Ubuntu/GRUB profile plans on the fixture STEM host (root, extended, swap) with a 2.x
/// image in the profile's target layout.
fn ubuntu_plan(profile: &Profile) -> Result<(), String> {
    let host = StageHost::new();
    let (image, target) = target_image(host.inputs.path(), profile);
    host.write_input(
        "config.json",
        format!("{{\"deviceType\":\"{}\",\"applicationId\":1234}}", profile.device_type).as_bytes(),
    );
    std::fs::create_dir_all(host.host.path("/srv/app")).unwrap();
    std::fs::write(host.host.path("/srv/app/db"), b"rows").unwrap();
    let mut request = host.request();
    request.profile = profile.clone();
    request.sha256 = Some(stage_support::sha256_hex(&std::fs::read(&image).unwrap()));
    request.image = image.display().to_string();
    request.backups = vec!["/srv/app".into()];
    let sp = stager::stage::plan_stage(&request).map_err(|e| e.to_string())?;
    let plan = &sp.plan;
    let staging = &plan.staging.partition;
    if (staging.number, staging.start.get()) != (5, stage_support::SWAP_START) {
        return Err(format!(
            "staging is partition {} at {}, not the swap partition",
            staging.number,
            staging.start.get()
        ));
    }
    check_layout(profile, &target, plan)?;
    if plan.backup.volumes[0].restore_to != profile.restore.data.to_restore_location("1234") {
        return Err(format!("data restored to {:?}", plan.backup.volumes[0].restore_to));
    }
    if plan.config_json.restore_to != profile.restore.config_json.to_restore_location("1234") {
        return Err(format!("config.json restored to {:?}", plan.config_json.restore_to));
    }
    Ok(())
}

#[test]
fn every_shipped_profile_plans_against_a_disk_in_its_source_layout() {
    let mut failures = Vec::new();
    let names = Profile::list_builtin();
    assert!(names.len() >= 7, "{names:?}");
    for name in names {
        let profile = Profile::builtin(name).unwrap();
        let outcome = match profile.source.kind {
            SourceKind::UbuntuGrubHost => ubuntu_plan(&profile),
            SourceKind::Resinos1x => {
                let case = resinos1x_case(&profile, layout_for(&profile), 300_000, MIB);
                match plan_image::plan(&case.request) {
                    Ok(p) => check_1x_plan(&profile, &case, &p),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        eprintln!(
            "{name}: {}",
            outcome.as_ref().map(|_| "plans".to_string()).unwrap_or_else(|e| e.clone())
        );
        if let Err(e) = outcome {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "profiles that do not plan:\n{}", failures.join("\n"));
}

#[test]
fn raspberry_pi_plan_stages_a_firmware_trial_and_leaves_resin_boot_alone() {
    let profile = Profile::builtin("resinos1x-raspberrypi3").unwrap();
    let case = resinos1x_case(&profile, layout_for(&profile), 300_000, MIB);
    let p = plan_image::plan(&case.request).unwrap();
    // The trial set and staging go on the spare (stage_1x_pi_trial.rs); resin-boot is not
    // edited in phase A.
    assert_eq!(p.plan.grub.route, plan::GrubRoute::PiFirmwareTrial);
    assert!(!p.budget.kernel_on_boot);
    assert!(p.boot_edits.is_empty() && p.plan.grub.files.is_empty(), "{:?}", p.boot_edits);
    // The app data is measured without the 400 MB docker layer beside it.
    assert!(p.plan.backup.estimated_size().unwrap().get() < 1_000_000);
    assert_eq!(
        p.plan.network.connman,
        vec![
            "/var/lib/connman".to_string(),
            "/mnt/data/resin-data/4321/network.config".to_string()
        ]
    );
}

#[test]
fn beaglebone_plan_arms_a_uboot_trial_on_resin_boot() {
    let profile = Profile::builtin("resinos1x-beaglebone-black").unwrap();
    let case = resinos1x_case(&profile, &[], 300_000, MIB);
    let p = plan_image::plan(&case.request).unwrap();
    assert!(p.budget.kernel_on_boot, "U-Boot loads the trial's files from resin-boot");
    assert_eq!(p.plan.grub.route, plan::GrubRoute::UbootTrial);
    let edit = p.boot_edits.iter().find(|e| e.name == "uEnv.txt").expect("uEnv.txt replaced");
    let text = String::from_utf8(edit.edited.clone()).unwrap();
    assert!(text.starts_with("mmcdev=1\nbootpart=1:2\n"), "{text}");
    assert!(
        text.ends_with(
            "uenvcmd=if test ${bootcount} -eq ${swapover_trial}; then run swapover_boot; fi\n"
        ),
        "{text}"
    );
    assert!(!text.contains("swapover_part"), "the old edit towards resin-updt is gone: {text}");
}

#[test]
fn spare_root_too_small_is_refused_with_the_sizes() {
    let profile = Profile::builtin("resinos1x-intel-nuc").unwrap();
    // 30 MB of application data: under the path's 170 MB limit, over the 20 MiB spare root.
    let case = resinos1x_case(&profile, &[], 30_000_000, MIB);
    let err = plan_image::plan(&case.request).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Refusal1x::SpareRootTooSmall { .. }), "{message}");
    // Free space of resin-updt's own ext3 (20 MiB less what mkfs.ext3 uses), not its size.
    assert!(message.contains("the spare root resin-updt (partition 3) has "), "{message}");
    assert!(message.contains(" free but staging needs "), "{message}");
    assert!(
        !message.contains("20971520 bytes"),
        "the partition's size is not free space: {message}"
    );
    assert!(message.contains("backup 28.61 MiB"), "{message}");
    assert!(!message.contains('\n'));
}

#[test]
fn data_over_the_170_mb_limit_is_refused_naming_the_measured_size() {
    let profile = Profile::builtin("resinos1x-raspberry-pi2").unwrap();
    let case = resinos1x_case(&profile, &[], 171_000_000, 2 * MIB);
    let err = plan_image::plan(&case.request).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Refusal1x::BackupOverLimit { .. }), "{message}");
    // resin-data, 4321, app.db: three tar headers and the padded 171 MB file.
    assert!(message.contains("(171001856 bytes)"), "{message}");
    assert!(message.contains("(170000000 bytes) limit"), "{message}");
    assert!(message.contains("never truncated"), "{message}");
}

#[test]
fn resin_updt_overlapping_root_a_is_refused() {
    let profile = Profile::builtin("resinos1x-raspberrypi3").unwrap();
    // A 1.x root smaller than 2.x rootA moves resin-updt into rootA's space.
    let case = resinos1x_case(&profile, &[("resin-root", 10)], 300_000, MIB);
    let err = plan_image::plan(&case.request).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Refusal1x::StagingOverlap { .. }), "{message}");
    assert!(message.contains("overlaps the 2.x image's resin-rootA"), "{message}");
    assert!(!case.dir.path().join("never").exists());
}

#[test]
fn an_ubuntu_disk_is_refused_for_a_1x_profile_naming_the_ubuntu_profiles() {
    let profile = Profile::builtin("resinos1x-intel-nuc").unwrap();
    let mut case = resinos1x_case(&profile, &[], 300_000, MIB);
    let host = StageHost::new();
    case.request.disk = host.disk();
    let message = plan_image::plan(&case.request).unwrap_err().to_string();
    assert!(message.contains("is not a resinOS 1.x disk: no partition labelled resin-boot, resin-root, resin-updt, resin-conf, resin-data"), "{message}");
    assert!(message.contains("found: 1 ext4; 5 swap 'stem-swap'"), "{message}");
    assert!(message.contains("--profile genericx86-64 or intel-nuc"), "{message}");

    // And a 1.x profile is not an Ubuntu one: `stager stage` points at plan-image.
    let mut request = host.request();
    request.profile = profile;
    let message = stager::stage::plan_stage(&request).unwrap_err().to_string();
    assert!(message.contains("stager plan-image --profile resinos1x-intel-nuc"), "{message}");
}

#[test]
fn a_resinos_host_is_refused_for_an_ubuntu_profile_naming_the_1x_profiles() {
    let host = StageHost::new();
    host.host.write("/etc/os-release", "ID=\"resin-os\"\nNAME=\"Resin OS\"\nVERSION=\"1.26.0\"\nVERSION_ID=\"1.26.0\"\nPRETTY_NAME=\"Resin OS 1.26.0\"\n");
    let request = host.request();
    let message = stager::stage::plan_stage(&request).unwrap_err().to_string();
    assert!(message.contains("this device runs Resin OS 1.26.0, not Ubuntu/Debian"), "{message}");
    assert!(message.contains("--profile resinos1x-intel-nuc"), "{message}");
}

#[test]
fn plan_image_prints_the_plan_and_exits_1_on_a_refusal() {
    let profile = Profile::builtin("resinos1x-raspberrypi3").unwrap();
    let case = resinos1x_case(&profile, layout_for(&profile), 300_000, MIB);
    let r = &case.request;
    let args = |data_root: &Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_stager"));
        c.args(["plan-image", "--profile", "resinos1x-raspberrypi3", "--disk"])
            .arg(&r.disk)
            .arg("--image")
            .arg(&r.image)
            .arg("--config")
            .arg(&r.config)
            .arg("--data-root")
            .arg(data_root)
            .arg("--kernel")
            .arg(&r.kernel)
            .arg("--initramfs")
            .arg(&r.initramfs);
        c
    };
    let before = stage_support::sha256_hex(&std::fs::read(&r.disk).unwrap());
    let out = args(&r.data_root).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("resin-rootB written last"), "{stdout}");
    assert!(stdout.contains("Staging on the spare root (partition 3"), "{stdout}");
    assert!(stdout.contains("nothing was changed"), "{stdout}");

    let big = case.dir.path().join("big");
    std::fs::create_dir_all(big.join("resin-data")).unwrap();
    sparse_file(&big.join("resin-data/huge"), 200_000_000);
    let out = args(&big).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("over the 162.12 MiB (170000000 bytes) limit"), "{stderr}");
    assert_eq!(
        stage_support::sha256_hex(&std::fs::read(&r.disk).unwrap()),
        before,
        "plan-image changed the disk"
    );
}

#[test]
fn a_raspberry_pi_boot_partition_without_room_for_the_kernel_is_refused() {
    // The migrator's commit copies the trial's kernel and initramfs to resin-boot: it must
    // have room for them. resin-boot is 40 MiB / 16 = 3 MiB here, holding the firmware,
    // kernel.img (400000 bytes) and dtbs of resinos1x_support::pi_boot_files.
    let profile = Profile::builtin("resinos1x-raspberry-pi").unwrap();
    let case = resinos1x_case(&profile, layout_for(&profile), 300_000, MIB);
    let err = plan_image::plan_with_initramfs(&case.request, plan::Bytes(3 * MIB)).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Refusal1x::BootPartitionFull { .. }), "{message}");
    assert!(
        message.contains("the boot partition resin-boot (partition 1) has 2.06 MiB"),
        "{message}"
    );
    assert!(message.contains("kernel 390.62 KiB + initramfs 3 MiB"), "{message}");
    // With a 1 MiB initramfs it plans.
    plan_image::plan_with_initramfs(&case.request, plan::Bytes(MIB)).unwrap();
}

#[test]
fn the_uefi_nuc_is_armed_by_the_firmware_with_kernel_and_initramfs_on_its_boot_partition() {
    // 1.x Intel NUC: poky's grub-efi of the 1.x era has no loadenv, so grubenv cannot make a
    // one-shot there; the plan arms a firmware boot option (BootNext) and leaves GRUB alone.
    let profile = Profile::builtin("resinos1x-intel-nuc").unwrap();
    let case = resinos1x_case(&profile, &[], 300_000, MIB);
    let p = plan_image::plan(&case.request).unwrap();
    assert_eq!(p.plan.grub.route, plan::GrubRoute::UefiBootNext);
    assert!(p.boot_edits.is_empty(), "no bootloader file is edited: {:?}", p.boot_edits);
    let created: Vec<&str> = p.plan.grub.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(created, ["/mnt/boot/swapover/vmlinuz", "/mnt/boot/swapover/initramfs.img"]);
    assert!(p.budget.kernel_on_boot);
    assert!(
        p.boot.args.contains(&"initrd=\\swapover\\initramfs.img".to_string()),
        "{:?}",
        p.boot.args
    );
    let text = stager::stage::resinos1x::planner::render(&p);
    assert!(text.contains("via a UEFI boot option armed for one boot with BootNext"), "{text}");
    assert!(text.contains("EFI/BOOT/grub.cfg is not changed"), "{text}");
    assert!(!text.contains("cannot be armed"), "{text}");
}

#[test]
fn a_uefi_kernel_without_an_efi_stub_is_refused() {
    let profile = Profile::builtin("resinos1x-intel-nuc").unwrap();
    let case = resinos1x_case(&profile, &[], 300_000, MIB);
    std::fs::write(&case.request.kernel, vec![0u8; 8192]).unwrap();
    let err = plan_image::plan(&case.request).unwrap_err();
    assert!(matches!(err, Refusal1x::KernelNotEfi(_)), "{err}");
    assert!(err.to_string().contains("CONFIG_EFI_STUB"), "{err}");
}
