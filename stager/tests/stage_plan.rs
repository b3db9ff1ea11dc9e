//! Planning on a whole fixture host and a real xz-compressed image: identities, layout,
//! sizes and sha256s as the real tools see them; `--dry-run` through the binary changes
//! nothing.

#[path = "stage_support/mod.rs"]
mod stage_support;

use plan::{PartitionRole, Sectors};
use stage_support::*;
use stager::stage::{image_probe, plan_stage, run_stage, StageOutcome};
use std::process::Command;

#[test]
fn the_plan_pins_partitions_image_and_grub_changes() {
    let host = StageHost::new();
    let backup_dir = host.host.path("/srv/app");
    std::fs::create_dir_all(&backup_dir).unwrap();
    std::fs::write(backup_dir.join("db.sqlite"), vec![7u8; 10_000]).unwrap();
    let mut request = host.request();
    request.backups = vec!["/srv/app".into()];
    let sp = plan_stage(&request).unwrap();
    let plan = &sp.plan;
    plan.validate().unwrap();

    assert_eq!(plan.source_disk.size, Sectors(DISK_SECTORS));
    assert_eq!(plan.old_root.partition.partuuid, "1234abcd-01");
    assert_eq!(
        (plan.old_root.partition.start, plan.old_root.partition.size),
        (Sectors(ROOT_START), Sectors(ROOT_SECTORS))
    );
    assert_eq!(plan.old_root.fs_uuid, ROOT_UUID);
    assert_eq!(plan.staging.partition.partuuid, "1234abcd-05");
    assert_eq!(
        (plan.staging.partition.start, plan.staging.partition.size),
        (Sectors(SWAP_START), Sectors(SWAP_SECTORS))
    );
    assert_eq!(plan.staging.original_swap_uuid.as_deref(), Some(SWAP_UUID));

    // The image's own table, as sfdisk wrote it, with the profile's names by order.
    let names: Vec<(&str, PartitionRole, u64, u64)> = plan
        .layout
        .partitions
        .iter()
        .map(|p| (p.name.as_str(), p.role, p.image_start.get(), p.size.get()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("resin-boot", PartitionRole::Boot, 4 * 2048, 8 * 2048),
            ("resin-rootA", PartitionRole::RootA, 12 * 2048, 16 * 2048),
            ("resin-rootB", PartitionRole::RootB, 28 * 2048, 16 * 2048),
            ("resin-state", PartitionRole::State, 48 * 2048, 4 * 2048),
            ("resin-data", PartitionRole::Data, 56 * 2048, 8 * 2048),
        ]
    );
    assert!(plan.layout.partitions.iter().all(|p| p.disk_start == p.image_start));

    // Both digests as sha256sum and `xz -dc | sha256sum` compute them.
    let xz_bytes = std::fs::read(host.image()).unwrap();
    assert_eq!(plan.image.compressed_sha256.0, sha256_hex(&xz_bytes));
    let raw = Command::new("xz").arg("-dc").arg(host.image()).output().unwrap().stdout;
    assert_eq!(plan.image.raw_sha256.0, sha256_hex(&raw));
    assert_eq!(plan.image.raw_size.get(), raw.len() as u64);

    let volume = &plan.backup.volumes[0];
    assert_eq!(volume.restore_to.path, "/resin-data/1234");
    assert_eq!(volume.items[0].source, "/srv/app");
    assert_eq!(volume.items[0].estimated_size.get(), 512 + 512 + 10_240);
    assert_eq!(plan.network.ifupdown, vec!["/etc/network/interfaces".to_string()]);
    assert_eq!(plan.hostname.as_deref(), Some("stem-device-17"));
    assert_eq!(plan.grub.env[0].previous, None);
    assert_eq!(plan.modules.order_file, "/etc/swapover/modules.load");
    for module in ["ext4", "jbd2", "crc32c_generic", "vfat", "nls_utf8"] {
        assert!(
            plan.modules.modules.contains(&module.to_string()),
            "{module} in {:?}",
            plan.modules.modules
        );
    }
    assert!(sp.notes.iter().any(|n| n.contains("nvme")), "{:?}", sp.notes);
    assert!(
        sp.custom_cfg.contains("--id 'swapover-migrate'")
            || sp.custom_cfg.contains("--id swapover-migrate"),
        "{}",
        sp.custom_cfg
    );
    assert!(sp.custom_cfg.contains(&plan.staging.fs_uuid));
    assert!(sp.core_img_config.contains(&format!("--set=root {}", plan.staging.fs_uuid)));

    // custom.cfg passes GRUB's own syntax check.
    let cfg = host.write_input("custom.cfg", sp.custom_cfg.as_bytes());
    assert!(Command::new("grub-script-check").arg(&cfg).status().unwrap().success());
    let staging_cfg = host.write_input("staging-grub.cfg", sp.staging_grub_cfg.as_bytes());
    assert!(Command::new("grub-script-check").arg(&staging_cfg).status().unwrap().success());
}

#[test]
fn the_probe_reads_device_type_and_logical_partitions_from_one_pass() {
    let host = StageHost::new();
    let facts = image_probe::probe(&host.image()).unwrap();
    assert_eq!(facts.device_type.as_deref(), Ok(DEVICE_TYPE));
    assert_eq!(facts.compression, plan::Compression::Xz);
    let numbers: Vec<u32> = facts.table.all().map(|p| p.number).collect();
    assert_eq!(numbers, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(facts.table.end().0, 64 * 2048);
    // The same image uncompressed gives the same raw facts.
    let plain = image_probe::probe(&host.input("resin.img")).unwrap();
    assert_eq!((plain.raw_sha256, plain.raw_size), (facts.raw_sha256, facts.raw_size));
    assert_eq!(plain.compression, plan::Compression::None);
}

#[test]
fn dry_run_prints_plan_and_steps_and_changes_nothing() {
    let host = StageHost::new();
    let (files, disk) = (host.files(), host.disk_whole());
    let mut request = host.request();
    request.dry_run = true;
    let mut system = stager::stage::engine::system::FixtureSystem::default();
    let outcome = run_stage(&request, &mut system).unwrap();
    let StageOutcome::DryRun { text, .. } = outcome else { panic!("not a dry run: {outcome:?}") };
    for needle in [
        "Target layout",
        "resin-rootB",
        "swapoff /dev/sda5",
        "mkfs.ext4 -L swapover-stage",
        "next_entry=swapover-migrate",
        "Staging space",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(system.calls.is_empty());
    assert_eq!((host.files(), host.disk_whole()), (files, disk));
    assert!(!host.host.path("/var/lib/swapover").exists());
}

#[test]
fn dry_run_through_the_binary_exits_0_and_changes_nothing() {
    let host = StageHost::new();
    let (files, disk) = (host.files(), host.disk_whole());
    let migrator = host.write_input("migrator", b"pretend migrator");
    let sha = sha256_hex(&std::fs::read(host.image()).unwrap());
    let output = Command::new(env!("CARGO_BIN_EXE_stager"))
        .args([
            "stage",
            "--profile",
            "intel-nuc",
            "--dry-run",
            "--no-reboot",
            "--kernel-release",
            KERNEL,
            "--sha256",
            &sha,
        ])
        .arg("--image")
        .arg(host.image())
        .arg("--config")
        .arg(host.input("config.json"))
        .arg("--migrator")
        .arg(&migrator)
        .arg("--root")
        .arg(host.host.root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("Dry run: nothing was changed.") && stdout.contains("swapover plan"),
        "{stdout}"
    );
    assert_eq!((host.files(), host.disk_whole()), (files, disk));
}
