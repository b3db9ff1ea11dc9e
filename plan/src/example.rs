//! A complete, valid plan for the Project STEM example disk (16 GiB, MBR
//! `0x000ae07e`, sda1 ext4 root 2048..29360127, sda5 swap 29362176..33552383)
//! receiving a resinOS 2.x intel-nuc image with the 2.x reference layout
//! (boot 40 MiB at 4 MiB, rootA/rootB 312 MiB, state 20 MiB at 672 MiB, data
//! at 696 MiB). For tests and documentation of the format.

use crate::identity::{DiskId, PartitionIdentity};
use crate::kinds::{Compression, FsType, PartitionRole, SourceKind, TableKind};
use crate::plan::*;
use crate::units::{Bytes, SectorSize, Sectors};

const MIB_SECTORS: u64 = 2048;

/// The resinOS 2.x reference partitions, identical in the image and on the disk
/// because the old root starts below 4 MiB: (name, role, fs, start MiB, size MiB).
const LAYOUT: [(&str, PartitionRole, FsType, u64, u64); 5] = [
    ("resin-boot", PartitionRole::Boot, FsType::Vfat, 4, 40),
    ("resin-rootA", PartitionRole::RootA, FsType::Ext4, 44, 312),
    ("resin-rootB", PartitionRole::RootB, FsType::Ext4, 356, 312),
    ("resin-state", PartitionRole::State, FsType::Ext4, 672, 20),
    ("resin-data", PartitionRole::Data, FsType::Ext4, 696, 128),
];

impl Plan {
    /// The Project STEM example plan (see the module documentation). Valid as built.
    pub fn stem_example() -> Plan {
        let signature = 0x000a_e07e;
        let sector = SectorSize::S512;
        let identity = |number, start, size| {
            // Constant, in-range numbers: construction cannot fail.
            PartitionIdentity::mbr(signature, number, Sectors(start), Sectors(size), sector)
                .unwrap_or_else(|e| unreachable!("example identity: {e}"))
        };
        let old_root = identity(1, 2048, 29_358_080);
        let staging = identity(5, 29_362_176, 4_190_208);
        let partitions = LAYOUT
            .iter()
            .map(|&(name, role, fs, start_mib, size_mib)| TargetPartition {
                name: name.to_string(),
                role,
                fs,
                image_start: Sectors(start_mib * MIB_SECTORS),
                size: Sectors(size_mib * MIB_SECTORS),
                disk_start: Sectors(start_mib * MIB_SECTORS),
            })
            .collect();
        Plan {
            format_version: FORMAT_VERSION,
            stager_version: env!("CARGO_PKG_VERSION").to_string(),
            profile: ProfileRef {
                name: "intel-nuc".into(),
                device_type: "intel-nuc".into(),
                source_kind: SourceKind::UbuntuGrubHost,
            },
            source_disk: SourceDisk {
                id: DiskId::Mbr { signature },
                table: TableKind::Mbr,
                size: Sectors(33_554_432),
                sector_size: sector,
            },
            layout: TargetLayout {
                table: TableKind::Mbr,
                image_sector_size: SectorSize::S512,
                region: old_root.extent(),
                partitions,
                written_last: Vec::new(),
            },
            old_root: FsPartition {
                partition: old_root,
                fs_uuid: "2f1ad0d4-7c53-4c1e-9e8b-3b1c6d1d7a10".into(),
                fs_type: FsType::Ext4,
            },
            source_data: None,
            staging: Staging {
                partition: staging,
                fs_uuid: "5b0c6a3e-0d5e-4f0c-8a54-2d6f4f1e9c21".into(),
                fs_type: FsType::Ext4,
                dir: "/swapover".into(),
                original_swap_uuid: Some("8e0c2a7b-6f3d-4b8e-9a51-0c7d2e4f6a83".into()),
            },
            image: TargetImage {
                file: "resin-intel-nuc.img.xz".into(),
                compression: Compression::Xz,
                compressed_size: Bytes(157_286_400),
                raw_size: Bytes(824 * 1024 * 1024),
                compressed_sha256: Sha256Hex("a".repeat(64)),
                raw_sha256: Sha256Hex("b".repeat(64)),
            },
            backup: BackupSet {
                volumes: vec![BackupVolume {
                    name: "app-data".into(),
                    restore_to: RestoreLocation {
                        partition: PartitionRole::Data,
                        path: "/resin-data/app".into(),
                    },
                    items: vec![
                        BackupItem {
                            source: "/home/app/data".into(),
                            target: "data".into(),
                            filters: vec![],
                            excludes: vec![],
                            estimated_size: Bytes(100 * 1024 * 1024),
                        },
                        BackupItem {
                            source: "/etc/app".into(),
                            target: "etc".into(),
                            filters: vec!["*.conf".into()],
                            excludes: vec![],
                            estimated_size: Bytes(20 * 1024),
                        },
                    ],
                }],
                limit: None,
            },
            network: NetworkSources {
                networkmanager: vec!["/etc/NetworkManager/system-connections".into()],
                wpa_supplicant: vec!["/etc/wpa_supplicant/wpa_supplicant.conf".into()],
                ifupdown: vec!["/etc/network/interfaces".into()],
                connman: vec![],
                config_json_network: false,
            },
            config_json: ConfigJson {
                staged_at: "/swapover/config.json".into(),
                restore_to: RestoreLocation {
                    partition: PartitionRole::Boot,
                    path: "/config.json".into(),
                },
            },
            hostname: Some("stem-device-17".into()),
            modules: ModuleLoad {
                order_file: "/etc/swapover/modules.order".into(),
                modules: ["ahci", "sd_mod", "ext4", "vfat", "nls_cp437", "nls_iso8859_1"]
                    .iter()
                    .map(|m| m.to_string())
                    .collect(),
            },
            grub: GrubChanges {
                entry_id: "swapover-migrate".into(),
                entry_title: "swapover: migrate to resinOS".into(),
                route: GrubRoute::CustomCfg,
                files: vec![FileChange {
                    path: "/boot/grub/custom.cfg".into(),
                    change: FileChangeKind::Created,
                }],
                env: vec![EnvChange {
                    file: "/boot/grub/grubenv".into(),
                    key: "next_entry".into(),
                    previous: None,
                    value: "swapover-migrate".into(),
                }],
                pi: None,
                uboot: None,
            },
            finalize: FinalizePolicy {
                grow_over_staging: true,
                partition: PartitionRole::Data,
                reason: "the staging partition directly follows resin-data and is no longer needed"
                    .into(),
            },
            failure: FailurePolicy {
                step_retries: 3,
                retry_delay_secs: 5,
                disk_wait_secs: 30,
                watchdog: None,
            },
        }
    }
}
