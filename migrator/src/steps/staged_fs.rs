//! Before anything is destroyed: the staged image's partitions that restore and finalize
//! open as file systems must hold the file system they expect.
//!
//! Restore writes config.json and the network keyfiles into the boot partition (FAT, with
//! `fatfs`) and mounts the data partition (backups, the log; finalize's relay); an image
//! whose data partition holds nothing (a flasher's, whose state and data partitions carry
//! no file system) would otherwise be written over the old root and then fail restore with
//! the old OS gone. The first [`FS_PROBE_BYTES`] of each such partition are decoded from the
//! staged image ([`crate::flash::window`]) and recognised by their superblock or boot sector
//! (`resin_image::detect_fs`, the one the stager uses on the image at stage time).

use std::fs::File;
use std::path::{Path, PathBuf};

use plan::{FsType, PartitionRole, Plan, TableKind, TargetPartition};

use resin_image::{detect_fs, FS_PROBE_BYTES};

use crate::flash::window::{read_windows, Window};
use crate::flash::FlashError;

#[derive(Debug, thiserror::Error)]
pub enum StagedFsError {
    #[error("the staged image's {name} ({number}) holds {holds} where restore {verb} {expects}: the image is not a bootable resinOS image; run `stager abort` on the old OS and stage the resinOS image (not a flasher)")]
    Mismatch {
        name: String,
        number: PartitionNumber,
        holds: Holds,
        verb: &'static str,
        expects: FsType,
    },
    #[error("the staged image ends before its {name} ({number}) at byte {offset}: the image is truncated or not the one planned; run `stager abort` on the old OS and stage the image again")]
    Missing { name: String, number: PartitionNumber, offset: u64 },
    #[error(
        "the plan's layout has no {0} partition for restore; stage again with this stager's plan"
    )]
    NoPartition(PartitionRole),
    #[error("cannot read the staged image {path} to check its file systems: {source}")]
    Read { path: PathBuf, source: FlashError },
    #[error("cannot open the staged image {path}: {source}; check the staging partition")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("the plan's layout is malformed ({0}); stage again")]
    Units(#[from] plan::UnitError),
}

/// What a partition's first bytes hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holds(pub Option<FsType>);

impl std::fmt::Display for Holds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(fs) => write!(f, "{fs}"),
            None => f.write_str("no file system"),
        }
    }
}

/// A partition's number in the image's table (`partition 6`), or its image offset when the
/// table does not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionNumber(pub Option<u32>, pub u64);

impl std::fmt::Display for PartitionNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "partition {n}"),
            None => write!(f, "partition at image byte {}", self.1),
        }
    }
}

/// The partitions restore and finalize open, with how they use them: config.json's
/// partition (FAT, written with `fatfs`), resin-data (always mounted: the log and relay go
/// there) and every backup volume's.
pub fn opened_partitions(
    plan: &Plan,
) -> Result<Vec<(&TargetPartition, &'static str)>, StagedFsError> {
    let mut roles = vec![plan.config_json.restore_to.partition, PartitionRole::Data];
    roles.extend(plan.backup.volumes.iter().map(|v| v.restore_to.partition));
    let mut out: Vec<(&TargetPartition, &'static str)> = Vec::new();
    for role in roles {
        let part = plan.layout.by_role(role).ok_or(StagedFsError::NoPartition(role))?;
        if out.iter().all(|(p, _)| p.name != part.name) {
            let verb = if role == PartitionRole::Data { "mounts" } else { "writes into" };
            out.push((part, verb));
        }
    }
    out.sort_by_key(|(p, _)| p.image_start);
    Ok(out)
}

/// Check that each partition restore and finalize open holds the file system the plan says.
pub fn check(plan: &Plan, image_path: &Path) -> Result<(), StagedFsError> {
    let parts = opened_partitions(plan)?;
    let image = File::open(image_path)
        .map_err(|source| StagedFsError::Open { path: image_path.to_path_buf(), source })?;
    let mut windows = vec![Window { offset: 0, len: 512 }];
    for (part, _) in &parts {
        windows
            .push(Window { offset: part.image_offset(&plan.layout)?.get(), len: FS_PROBE_BYTES });
    }
    let read = read_windows(&image, &windows)
        .map_err(|source| StagedFsError::Read { path: image_path.to_path_buf(), source })?;
    let mbr = read.first().map(Vec::as_slice).unwrap_or_default();
    for ((part, verb), bytes) in parts.iter().zip(read.iter().skip(1)) {
        let offset = part.image_offset(&plan.layout)?.get();
        let number = PartitionNumber(partition_number(plan, part, mbr), offset);
        if bytes.is_empty() {
            return Err(StagedFsError::Missing { name: part.name.clone(), number, offset });
        }
        let holds = detect_fs(bytes);
        if !mountable_as(holds, part.fs) {
            return Err(StagedFsError::Mismatch {
                name: part.name.clone(),
                number,
                holds: Holds(holds),
                verb,
                expects: part.fs,
            });
        }
        log::info!(
            "arm-resume: the staged image's {} holds {} ({} expected)",
            part.name,
            Holds(holds),
            part.fs
        );
    }
    Ok(())
}

/// Whether a file system found can be opened as `expects`: the same, or an older ext (the
/// kernel's ext4 driver mounts ext2 and ext3; ext3's mounts ext2).
pub fn mountable_as(found: Option<FsType>, expects: FsType) -> bool {
    let ext_level = |fs| match fs {
        FsType::Ext2 => Some(2),
        FsType::Ext3 => Some(3),
        FsType::Ext4 => Some(4),
        _ => None,
    };
    match (found, ext_level(expects)) {
        (Some(found), Some(want)) => ext_level(found).is_some_and(|level| level <= want),
        (Some(found), None) => found == expects,
        (None, _) => false,
    }
}

/// The partition's number in the image's table: for GPT its place in the plan's list; for
/// MBR the primary entry starting where it does, else a logical (5, 6, ... in start order).
fn partition_number(plan: &Plan, part: &TargetPartition, mbr: &[u8]) -> Option<u32> {
    let place = |p: &TargetPartition| plan.layout.partitions.iter().position(|q| q.name == p.name);
    if plan.layout.table == TableKind::Gpt {
        return place(part).and_then(|i| u32::try_from(i + 1).ok());
    }
    let primaries: Vec<u64> = (0..4)
        .filter_map(|i| {
            let entry = mbr.get(446 + 16 * i..446 + 16 * (i + 1))?;
            let mut lba = [0u8; 4];
            lba.copy_from_slice(&entry[8..12]);
            Some(u64::from(u32::from_le_bytes(lba)))
        })
        .collect();
    if primaries.len() != 4 {
        return None;
    }
    if let Some(i) = primaries.iter().position(|s| *s != 0 && *s == part.image_start.get()) {
        return u32::try_from(i + 1).ok();
    }
    let mut logicals: Vec<u64> = plan
        .layout
        .partitions
        .iter()
        .map(|p| p.image_start.get())
        .filter(|s| !primaries.contains(s))
        .collect();
    logicals.sort_unstable();
    let i = logicals.iter().position(|s| *s == part.image_start.get())?;
    u32::try_from(i + 5).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_ext_mounts_as_newer_and_nothing_else_crosses() {
        assert!(mountable_as(Some(FsType::Ext2), FsType::Ext4));
        assert!(mountable_as(Some(FsType::Ext4), FsType::Ext4));
        assert!(!mountable_as(Some(FsType::Ext4), FsType::Ext3));
        assert!(!mountable_as(None, FsType::Ext4));
        assert!(!mountable_as(Some(FsType::Vfat), FsType::Ext4));
        assert!(mountable_as(Some(FsType::Vfat), FsType::Vfat));
        assert!(!mountable_as(Some(FsType::Btrfs), FsType::Vfat));
    }

    #[test]
    fn an_mbr_is_not_a_fat_boot_sector() {
        let mut mbr = vec![0u8; FS_PROBE_BYTES];
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        assert_eq!(detect_fs(&mbr), None);
    }
}
