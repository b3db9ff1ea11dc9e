//! resinOS 1.x plans: staging on the spare root `resin-updt`, which lies inside the 2.x
//! image's `resin-rootB`; that partition is flashed last (`layout.written_last`).
//! Ubuntu plans without the field keep reading and validating as before.

use plan::*;

const MIB: u64 = 2048;

/// The STEM example turned into a 1.x plan: 1.x root at 44 MiB (312 MiB), resin-updt at
/// 356 MiB (312 MiB, exactly 2.x rootB), the image written over the whole disk start.
fn resinos1x_plan() -> Plan {
    let mut plan = Plan::stem_example();
    plan.profile.name = "resinos1x-raspberrypi3".into();
    plan.profile.source_kind = SourceKind::Resinos1x;
    let signature = 0x000a_e07e;
    let sector = SectorSize::S512;
    plan.old_root.partition =
        PartitionIdentity::mbr(signature, 2, Sectors(44 * MIB), Sectors(312 * MIB), sector)
            .unwrap();
    plan.old_root.fs_type = FsType::Ext3;
    plan.staging.partition =
        PartitionIdentity::mbr(signature, 3, Sectors(356 * MIB), Sectors(312 * MIB), sector)
            .unwrap();
    plan.staging.original_swap_uuid = None;
    plan.layout.region = Extent::new(Sectors::ZERO, Sectors(824 * MIB));
    plan.layout.written_last = vec!["resin-rootB".into()];
    plan.backup.limit = Some(Bytes(170_000_000));
    plan
}

#[test]
fn staging_inside_a_partition_written_last_is_accepted_and_round_trips() {
    let plan = resinos1x_plan();
    plan.validate().unwrap();
    assert!(plan.staging_inside_written_last(SectorSize::S512));
    let json = plan.to_json_pretty().unwrap();
    assert!(json.contains("\"written_last\": [\n      \"resin-rootB\"\n    ]"), "{json}");
    assert_eq!(Plan::from_json(&json).unwrap(), plan);
    assert!(plan.render_text().contains("resin-rootB written last"), "{}", plan.render_text());
}

#[test]
fn without_written_last_the_same_plan_overlaps_staging() {
    let mut plan = resinos1x_plan();
    plan.layout.written_last.clear();
    let err = plan.validate().unwrap_err();
    assert!(matches!(err, PlanError::RegionOverlapsStaging { .. }), "{err}");
}

#[test]
fn staging_reaching_into_root_a_is_refused_even_with_root_b_written_last() {
    let mut plan = resinos1x_plan();
    // A 1.x root smaller than 2.x rootA puts resin-updt partly over rootA.
    plan.old_root.partition = PartitionIdentity::mbr(
        0x000a_e07e,
        2,
        Sectors(44 * MIB),
        Sectors(200 * MIB),
        SectorSize::S512,
    )
    .unwrap();
    plan.staging.partition = PartitionIdentity::mbr(
        0x000a_e07e,
        3,
        Sectors(244 * MIB),
        Sectors(312 * MIB),
        SectorSize::S512,
    )
    .unwrap();
    let err = plan.validate().unwrap_err();
    assert!(matches!(err, PlanError::RegionOverlapsStaging { .. }), "{err}");
}

#[test]
fn written_last_must_name_a_partition_and_belong_to_a_1x_plan() {
    let mut plan = resinos1x_plan();
    plan.layout.written_last = vec!["resin-rootC".into()];
    assert!(
        matches!(plan.validate().unwrap_err(), PlanError::UnknownWrittenLast(name) if name == "resin-rootC")
    );

    let mut ubuntu = Plan::stem_example();
    ubuntu.layout.written_last = vec!["resin-rootB".into()];
    let err = ubuntu.validate().unwrap_err();
    assert!(matches!(err, PlanError::WrittenLastForSource(SourceKind::UbuntuGrubHost)), "{err}");
}

#[test]
fn an_ubuntu_plan_written_before_the_field_existed_still_reads() {
    let plan = Plan::stem_example();
    let json = plan.to_json_pretty().unwrap();
    assert!(!json.contains("written_last"), "empty lists are left out: {json}");
    assert_eq!(Plan::from_json(&json).unwrap().layout.written_last, Vec::<String>::new());
}

#[test]
fn boot_files_route_serialises_in_kebab_case() {
    let mut plan = resinos1x_plan();
    plan.grub.route = GrubRoute::BootFiles;
    plan.grub.env.clear();
    let json = plan.to_json_pretty().unwrap();
    assert!(json.contains("\"route\": \"boot-files\""), "{json}");
    assert_eq!(Plan::from_json(&json).unwrap(), plan);
}

/// The 1.x data partition (btrfs resin-data, at 824 MiB) that the migrator mounts for the backup.
fn data_partition(start_mib: u64) -> FsPartition {
    FsPartition {
        partition: PartitionIdentity::mbr(
            0x000a_e07e,
            6,
            Sectors(start_mib * MIB),
            Sectors(1024 * MIB),
            SectorSize::S512,
        )
        .unwrap(),
        fs_uuid: "5b1e2c3d-0000-4000-8000-00000000d474".into(),
        fs_type: FsType::Btrfs,
    }
}

#[test]
fn source_data_round_trips_for_1x_and_is_absent_from_ubuntu_plans() {
    let mut plan = resinos1x_plan();
    plan.source_data = Some(data_partition(824));
    plan.validate().unwrap();
    let json = plan.to_json_pretty().unwrap();
    assert!(json.contains("\"source_data\""), "{json}");
    assert_eq!(Plan::from_json(&json).unwrap(), plan);
    assert!(!Plan::stem_example().to_json_pretty().unwrap().contains("source_data"));
}

#[test]
fn source_data_is_refused_on_ubuntu_plans_and_over_the_root_or_staging() {
    let mut ubuntu = Plan::stem_example();
    ubuntu.source_data = Some(data_partition(824));
    assert!(matches!(
        ubuntu.validate().unwrap_err(),
        PlanError::SourceDataForSource(SourceKind::UbuntuGrubHost)
    ));
    let mut plan = resinos1x_plan();
    plan.source_data = Some(data_partition(400));
    let err = plan.validate().unwrap_err();
    assert!(matches!(err, PlanError::SourceDataOverlap { what: "staging partition", .. }), "{err}");
    plan.source_data = Some(data_partition(100));
    let err = plan.validate().unwrap_err();
    assert!(matches!(err, PlanError::SourceDataOverlap { what: "old root", .. }), "{err}");
}
