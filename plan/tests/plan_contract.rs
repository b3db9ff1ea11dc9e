//! The plan as the stager writes it and the migrator reads it: JSON round
//! trip, format versioning, and every consistency check.

use plan::*;

fn example() -> Plan {
    Plan::stem_example()
}

/// Validates a plan changed by `edit` and returns the error's message.
fn refused(edit: impl FnOnce(&mut Plan)) -> (PlanError, String) {
    let mut plan = example();
    edit(&mut plan);
    let err = plan.validate().expect_err("the edited plan must be refused");
    let message = err.to_string();
    (err, message)
}

#[test]
fn example_plan_is_valid() {
    example().validate().unwrap();
}

#[test]
fn json_round_trip_preserves_every_field() {
    let plan = example();
    let json = plan.to_json_pretty().unwrap();
    let back = Plan::from_json(&json).unwrap();
    assert_eq!(back, plan);
    // Sizes are plain integers in the file, not objects.
    assert!(json.contains("\"raw_size\": 864026624"), "{json}");
    assert!(json.contains("\"sector_size\": 512"), "{json}");
    assert!(json.contains("\"partuuid\": \"000ae07e-05\""), "{json}");
    assert!(json.contains("\"format_version\": 1"), "{json}");
}

#[test]
fn other_format_versions_are_refused_with_the_documented_message() {
    for version in [0u32, 2, 17] {
        let mut value: serde_json::Value =
            serde_json::from_str(&example().to_json_pretty().unwrap()).unwrap();
        value["format_version"] = serde_json::json!(version);
        // A future format may have other fields: the version check must come first.
        value["a_field_from_the_future"] = serde_json::json!(true);
        let err = Plan::from_json(&value.to_string()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("plan format {version} not supported by this migrator (supports 1); re-stage with a matching stager")
        );
    }
}

#[test]
fn a_plan_without_format_version_or_not_json_is_refused() {
    let err = Plan::from_json("{\"profile\": {}}").unwrap_err();
    assert!(matches!(err, PlanError::MissingFormatVersion), "{err}");
    let err = Plan::from_json("not json").unwrap_err();
    assert!(matches!(err, PlanError::Json(_)), "{err}");
    assert!(err.to_string().contains("re-stage"), "{err}");
}

#[test]
fn unknown_fields_in_a_version_1_plan_are_refused() {
    let mut value: serde_json::Value =
        serde_json::from_str(&example().to_json_pretty().unwrap()).unwrap();
    value["image"]["surprise"] = serde_json::json!(1);
    let err = Plan::from_json(&value.to_string()).unwrap_err();
    assert!(err.to_string().contains("unknown field `surprise`"), "{err}");
}

#[test]
fn from_json_also_validates() {
    let mut plan = example();
    plan.layout.partitions[1].disk_start = Sectors(8192); // onto resin-boot
    let json = serde_json::to_string(&plan).unwrap();
    assert!(matches!(Plan::from_json(&json).unwrap_err(), PlanError::PartitionOverlap { .. }));
}

#[test]
fn overlapping_target_partitions_are_refused() {
    let (err, msg) = refused(|p| p.layout.partitions[2].disk_start = Sectors(356 * 2048 - 1));
    assert!(matches!(err, PlanError::PartitionOverlap { .. }), "{msg}");
    assert_eq!(msg, "target partitions 'resin-rootA' and 'resin-rootB' overlap on disk");
}

#[test]
fn a_region_overlapping_staging_is_refused() {
    let (err, msg) = refused(|p| {
        // A 1.x-style plan has no old-root containment rule; staging must still be protected.
        p.profile.source_kind = SourceKind::Resinos1x;
        p.layout.region = Extent::new(Sectors(2048), Sectors(29_362_176 - 2048 + 1));
    });
    assert!(matches!(err, PlanError::RegionOverlapsStaging { .. }), "{msg}");
    assert!(msg.contains("would destroy the migration environment"), "{msg}");
}

#[test]
fn a_region_outside_the_old_root_is_refused_for_ubuntu_hosts() {
    let (err, msg) = refused(|p| p.layout.region = Extent::new(Sectors(0), Sectors(29_360_128)));
    assert!(matches!(err, PlanError::RegionOutsideOldRoot { .. }), "{msg}");
}

#[test]
fn a_partition_outside_the_region_is_refused() {
    let (err, msg) = refused(|p| p.layout.partitions[4].disk_start = Sectors(29_360_128 - 1000));
    assert!(
        matches!(err, PlanError::OutsideRegion { ref name, .. } if name == "resin-data"),
        "{msg}"
    );
}

#[test]
fn a_partition_past_the_image_end_is_refused() {
    let (err, msg) = refused(|p| p.image.raw_size = Bytes(800 * 1024 * 1024));
    assert!(
        matches!(err, PlanError::OutsideImage { ref name, .. } if name == "resin-data"),
        "{msg}"
    );
}

#[test]
fn zero_sizes_are_refused() {
    let (err, msg) = refused(|p| p.layout.partitions[0].size = Sectors(0));
    assert!(matches!(err, PlanError::ZeroSize { .. }), "{msg}");
    assert_eq!(msg, "target partition 'resin-boot' size must not be zero");
    let (err, _) = refused(|p| p.image.raw_size = Bytes(0));
    assert!(matches!(err, PlanError::ZeroSize { .. }));
    let (err, _) = refused(|p| p.image.compressed_size = Bytes(0));
    assert!(matches!(err, PlanError::ZeroSize { .. }));
    let (err, _) = refused(|p| p.source_disk.size = Sectors(0));
    assert!(matches!(err, PlanError::ZeroSize { .. }));
    let (err, _) = refused(|p| p.layout.region.len = Sectors(0));
    assert!(matches!(err, PlanError::ZeroSize { .. }));
    let (err, msg) = refused(|p| p.staging.partition.size = Sectors(0));
    assert!(matches!(err, PlanError::Identity { .. }), "{msg}");
}

#[test]
fn an_empty_layout_is_refused() {
    let (err, _) = refused(|p| p.layout.partitions.clear());
    assert!(matches!(err, PlanError::EmptyLayout));
}

#[test]
fn duplicate_names_and_roles_are_refused() {
    let (err, _) = refused(|p| p.layout.partitions[1].name = "resin-boot".into());
    assert!(matches!(err, PlanError::DuplicateName(ref n) if n == "resin-boot"));
    let (err, _) = refused(|p| p.layout.partitions[1].role = PartitionRole::Boot);
    assert!(matches!(err, PlanError::DuplicateRole(PartitionRole::Boot)));
}

#[test]
fn old_root_and_staging_must_not_overlap_and_must_be_on_the_disk() {
    let (err, _) = refused(|p| {
        p.staging.partition = PartitionIdentity::mbr(
            0x000a_e07e,
            5,
            Sectors(29_000_000),
            Sectors(4_190_208),
            SectorSize::S512,
        )
        .unwrap();
        p.layout.region = Extent::new(Sectors(2048), Sectors(2_000_000));
    });
    assert!(matches!(err, PlanError::RootOverlapsStaging { .. }), "{err}");
    let (err, msg) = refused(|p| p.source_disk.size = Sectors(33_000_000));
    assert!(matches!(err, PlanError::OutsideDisk { .. }), "{msg}");
}

#[test]
fn partitions_from_another_disk_or_sector_size_are_refused() {
    let (err, msg) = refused(|p| {
        p.staging.partition = PartitionIdentity::mbr(
            0x1234_5678,
            5,
            Sectors(29_362_176),
            Sectors(4_190_208),
            SectorSize::S512,
        )
        .unwrap();
    });
    assert!(matches!(err, PlanError::WrongDisk { .. }), "{msg}");
    assert!(msg.contains("MBR 0x12345678") && msg.contains("MBR 0x000ae07e"), "{msg}");
    let (err, _) = refused(|p| p.old_root.partition.sector_size = SectorSize::S4096);
    assert!(matches!(err, PlanError::SectorSizeMismatch { .. }));
}

#[test]
fn a_forged_partuuid_is_refused() {
    let (err, msg) = refused(|p| p.old_root.partition.partuuid = "000ae07e-05".into());
    assert!(matches!(err, PlanError::Identity { .. }), "{msg}");
    assert!(msg.starts_with("old root: partition 1 has PARTUUID '000ae07e-05'"), "{msg}");
}

#[test]
fn a_partition_not_a_whole_number_of_disk_sectors_is_refused() {
    let (err, msg) = refused(|p| {
        p.source_disk.sector_size = SectorSize::S4096;
        p.source_disk.size = Sectors(33_554_432 / 8);
        for part in [&mut p.old_root.partition, &mut p.staging.partition] {
            part.sector_size = SectorSize::S4096;
            part.start = Sectors(part.start.get() / 8);
            part.size = Sectors(part.size.get() / 8);
        }
        p.layout.region = p.old_root.partition.extent();
        for part in &mut p.layout.partitions {
            part.disk_start = Sectors(part.disk_start.get() / 8);
        }
        p.layout.partitions[3].size = Sectors(40_961); // 512-byte image sectors
    });
    assert!(matches!(err, PlanError::Units { .. }), "{msg}");
    assert!(msg.contains("resin-state") && msg.contains("round up or down explicitly"), "{msg}");
}

#[test]
fn a_4096_byte_sector_disk_plan_validates_when_aligned() {
    let mut p = example();
    p.source_disk.sector_size = SectorSize::S4096;
    p.source_disk.size = Sectors(33_554_432 / 8);
    for part in [&mut p.old_root.partition, &mut p.staging.partition] {
        part.sector_size = SectorSize::S4096;
        part.start = Sectors(part.start.get() / 8);
        part.size = Sectors(part.size.get() / 8);
    }
    p.layout.region = p.old_root.partition.extent();
    for part in &mut p.layout.partitions {
        part.disk_start = Sectors(part.disk_start.get() / 8);
    }
    p.validate().unwrap();
    let boot = &p.layout.partitions[0];
    assert_eq!(
        boot.disk_extent(&p.layout, SectorSize::S4096).unwrap(),
        Extent::new(Sectors(1024), Sectors(10240))
    );
}

#[test]
fn bad_digests_and_inconsistent_uncompressed_sizes_are_refused() {
    let (err, _) = refused(|p| p.image.raw_sha256 = Sha256Hex("ABC".into()));
    assert!(matches!(err, PlanError::BadSha256 { what: "raw image sha256", .. }));
    let (err, _) = refused(|p| p.image.compressed_sha256 = Sha256Hex("A".repeat(64)));
    assert!(matches!(err, PlanError::BadSha256 { .. }), "upper-case hex is not canonical");
    let (err, _) = refused(|p| p.image.compression = Compression::None);
    assert!(matches!(err, PlanError::UncompressedSizeMismatch { .. }));
}

#[test]
fn image_file_must_stay_inside_the_staging_dir() {
    for bad in ["/etc/passwd", "../image.xz", "a/../../b", ""] {
        let (err, _) = refused(|p| p.image.file = bad.into());
        assert!(matches!(err, PlanError::NotPlainRelative { .. }), "{bad}");
    }
}

#[test]
fn a_backup_over_the_limit_is_refused_not_truncated() {
    let (err, msg) = refused(|p| p.backup.limit = Some(Bytes(170 * 1000 * 1000 / 2)));
    assert!(matches!(err, PlanError::BackupTooLarge { .. }), "{msg}");
    assert!(msg.contains("never truncated"), "{msg}");
    let mut ok = example();
    ok.backup.limit = Some(Bytes(170 * 1000 * 1000));
    ok.validate().unwrap();
    assert_eq!(ok.backup.estimated_size().unwrap(), Bytes(100 * 1024 * 1024 + 20 * 1024));
}

#[test]
fn backup_entries_are_checked() {
    let (err, _) = refused(|p| p.backup.volumes[0].items.clear());
    assert!(matches!(err, PlanError::EmptyVolume(ref v) if v == "app-data"));
    let (err, _) = refused(|p| p.backup.volumes[0].items[0].source = "home/app".into());
    assert!(matches!(err, PlanError::NotAbsolute { .. }));
    let (err, _) = refused(|p| p.backup.volumes[0].items[0].target = "../escape".into());
    assert!(matches!(err, PlanError::NotPlainRelative { .. }));
    let (err, msg) = refused(|p| {
        p.layout.partitions.pop();
        p.finalize.partition = PartitionRole::State;
    });
    assert!(matches!(err, PlanError::MissingRole { role: PartitionRole::Data, .. }), "{msg}");
}

#[test]
fn names_paths_and_policies_are_checked() {
    let (err, _) = refused(|p| p.grub.entry_id = " ".into());
    assert!(matches!(err, PlanError::Empty { .. }));
    let (err, _) = refused(|p| p.staging.dir = "swapover".into());
    assert!(matches!(err, PlanError::NotAbsolute { .. }));
    let (err, _) = refused(|p| p.network.wpa_supplicant.push("wpa.conf".into()));
    assert!(matches!(err, PlanError::NotAbsolute { .. }));
    let (err, _) = refused(|p| p.finalize.reason.clear());
    assert!(matches!(err, PlanError::Empty { .. }));
    let (err, _) = refused(|p| p.config_json.restore_to.partition = PartitionRole::Config);
    assert!(matches!(err, PlanError::MissingRole { role: PartitionRole::Config, .. }));
    let (err, _) = refused(|p| {
        p.grub.files.push(FileChange {
            path: "/boot/grub/grub.cfg".into(),
            change: FileChangeKind::Modified {
                backup: "/swapover/grub.cfg.orig".into(),
                original_sha256: Sha256Hex("x".into()),
            },
        })
    });
    assert!(matches!(err, PlanError::BadSha256 { .. }));
}

#[test]
fn text_rendering_lists_partitions_writes_backup_and_grub_changes() {
    let text = example().render_text();
    for expected in [
        "Profile:  intel-nuc (device type intel-nuc, source ubuntu-grub-host)",
        "Disk:     MBR 0x000ae07e, mbr table, 16 GiB (33554432 sectors of 512 bytes)",
        "PARTUUID 000ae07e-01",
        "PARTUUID 000ae07e-05",
        "(was swap UUID 8e0c2a7b-6f3d-4b8e-9a51-0c7d2e4f6a83)",
        "written only inside sectors 2048..=29360127 (29358080 sectors) = 13.99 GiB:",
        "resin-boot     boot    vfat           8192        90111       40 MiB",
        "resin-data     data    ext4        1425408      1687551      128 MiB",
        "resin-rootA    312 MiB from image offset 46137344 to disk offset 46137344",
        "Backup:   estimated 100.01 MiB",
        "/etc/app -> etc (20 KiB) [only *.conf]",
        "create /boot/grub/custom.cfg",
        "set next_entry=swapover-migrate in /boot/grub/grubenv (was unset)",
        "Finalize: grow data partition over the staging area",
        "Failure:  3 attempts per step, 5 s apart; wait up to 30 s for the disk",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(example().to_string(), text);
}

#[test]
fn sha256_text_is_normalised_and_checked() {
    // sha256("") as printed by sha256sum, in upper case with a newline.
    let empty = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855\n";
    let digest = Sha256Hex::parse(empty).unwrap();
    assert_eq!(digest.0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert!(matches!(Sha256Hex::parse("e3b0c442"), Err(PlanError::BadSha256 { .. })));
    let bytes: Vec<u8> = (0u8..32).collect();
    let from_bytes = Sha256Hex::from_digest(&bytes);
    assert_eq!(from_bytes.0, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    assert!(from_bytes.is_well_formed());
}
