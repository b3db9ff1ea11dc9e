//! Finding a disk and a partition again by identity — the partition table's identifier
//! (MBR signature or GPT disk GUID) and the partition's start and size — whatever
//! `/dev/sdX` name the kernel gave them on this boot (names follow probe order, which can
//! change from one boot to the next).

use super::block::{self, BlockDevice, BlockKind};
use super::partition_table;
use super::root::HostRoot;
use disk_layout::sysfs::SysfsError;
use plan::{Bytes, DiskId, PartitionIdentity};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error("cannot list the block devices in {path}: {source}")]
    List { path: PathBuf, source: std::io::Error },
    #[error("no attached disk has the identifier {disk} (disks seen: {seen}); attach the disk that was staged")]
    NoDisk { disk: DiskId, seen: String },
    #[error("{names} all have the identifier {disk}; detach the copies so that the staged disk is unambiguous")]
    Ambiguous { disk: DiskId, names: String },
    #[error("disk {name} ({disk}) has no partition at {start_bytes} bytes with {size_bytes} bytes; its partition table changed since staging")]
    NoPartition { name: String, disk: DiskId, start_bytes: u64, size_bytes: u64 },
    #[error("the recorded partition identity is inconsistent: {0}")]
    Identity(String),
    #[error(transparent)]
    Sysfs(SysfsError),
}

impl From<SysfsError> for LocateError {
    fn from(e: SysfsError) -> Self {
        match e {
            SysfsError::Read { path, source } => LocateError::List { path, source },
            other => LocateError::Sysfs(other),
        }
    }
}

/// Whole disks in `/sys/class/block`, sorted by name.
fn whole_disks(root: &HostRoot) -> Result<Vec<BlockDevice>, LocateError> {
    let sysfs = block::sysfs(root);
    Ok(sysfs
        .names()?
        .iter()
        .filter_map(|name| sysfs.entry(name).ok())
        .map(block::describe)
        .filter(|device| device.kind == BlockKind::Disk)
        .collect())
}

/// The one attached disk whose partition table carries `disk`. Disks whose table cannot be
/// read (an empty CD drive, a blank disk) are skipped; two disks with the same identifier
/// are refused, never guessed between.
pub fn find_disk(root: &HostRoot, disk: &DiskId) -> Result<BlockDevice, LocateError> {
    let disks = whole_disks(root)?;
    let seen = disks.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ");
    let mut matching: Vec<BlockDevice> = disks
        .into_iter()
        .filter(|device| {
            partition_table::read(&root.path(device.dev_path()), device.logical_sector_size)
                .is_ok_and(|table| &table.id == disk)
        })
        .collect();
    match matching.len() {
        0 => Err(LocateError::NoDisk {
            disk: disk.clone(),
            seen: if seen.is_empty() { "none".into() } else { seen },
        }),
        1 => Ok(matching.remove(0)),
        _ => Err(LocateError::Ambiguous {
            disk: disk.clone(),
            names: matching.iter().map(|d| d.dev_path()).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// The partition `identity` names, under whatever name it has now: its disk by identifier,
/// then the partition of that disk (sysfs) with exactly the recorded start and size.
pub fn find_partition(
    root: &HostRoot,
    identity: &PartitionIdentity,
) -> Result<BlockDevice, LocateError> {
    let start = identity.start_bytes().map_err(|e| LocateError::Identity(e.to_string()))?.get();
    let size = identity.size_bytes().map_err(|e| LocateError::Identity(e.to_string()))?.get();
    let disk = find_disk(root, &identity.disk)?;
    block::sysfs(root)
        .partition_at(&disk.name, Bytes(start), Bytes(size))?
        .map(block::describe)
        .ok_or(LocateError::NoPartition {
            name: disk.dev_path(),
            disk: identity.disk.clone(),
            start_bytes: start,
            size_bytes: size,
        })
}
