//! A temporary kernel partition device for a byte range of a disk (BLKPG), for
//! mounting resinOS's data partition before its partition table is committed.
//! Kernel partitions of the old table that overlap it (the old root) are removed
//! from the kernel's view first; the on-disk table is never touched.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use plan::Bytes;

use crate::blkpg::{self, BlkpgError};
use crate::disk::{self, BlockRoots, DiskError};

/// Partition numbers used for temporary devices: far above what MBR tables use.
pub const FIRST_TEMP_NUMBER: u32 = 60;

#[derive(Debug, thiserror::Error)]
pub enum PartDevError {
    #[error(transparent)]
    Blkpg(#[from] BlkpgError),
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error("cannot open {0}: {1}")]
    Open(PathBuf, std::io::Error),
    #[error("kernel partition {number} of {disk} did not appear in sysfs within 5 s")]
    NotVisible { disk: String, number: u32 },
}

/// A kernel partition that exists until [`TempPartition::remove`].
#[derive(Debug)]
pub struct TempPartition {
    disk: File,
    disk_name: String,
    number: u32,
    node: PathBuf,
}

impl TempPartition {
    /// Add partition `number` for `start..start+len` (bytes) of the disk `disk_name`
    /// (whose node is `disk_node`). Overlapping kernel partitions are deleted first.
    pub fn add(
        roots: &BlockRoots,
        disk_node: &Path,
        disk_name: &str,
        number: u32,
        start: Bytes,
        len: Bytes,
    ) -> Result<TempPartition, PartDevError> {
        let disk = blkpg::open_disk(disk_node)
            .map_err(|e| PartDevError::Open(disk_node.to_path_buf(), e))?;
        // A leftover from an earlier attempt in this boot: remove it first.
        if sysfs_partition(roots, disk_name, number).is_some() {
            blkpg::delete_partition(&disk, disk_name, number)?;
        }
        for entry in roots.sysfs.scan() {
            let (Some(p), Some(parent)) = (entry.partition.as_ref(), entry.parent()) else {
                continue;
            };
            let (p_start, p_end) = (p.start.0 * 512, (p.start.0 + entry.size.0) * 512);
            if parent == disk_name && p_start < start.get() + len.get() && start.get() < p_end {
                log::info!("partdev: removing kernel partition {} ({}) from the kernel's view; the disk's table is unchanged", entry.name, p.number);
                blkpg::delete_partition(&disk, disk_name, p.number)?;
            }
        }
        blkpg::add_partition(&disk, disk_name, number, start, len)?;
        let started = Instant::now();
        let entry = loop {
            if let Some(entry) = sysfs_partition(roots, disk_name, number) {
                break entry;
            }
            if started.elapsed() > Duration::from_secs(5) {
                return Err(PartDevError::NotVisible { disk: disk_name.into(), number });
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let node = roots.node(&entry)?;
        Ok(TempPartition { disk, disk_name: disk_name.to_string(), number, node })
    }

    pub fn node(&self) -> &Path {
        &self.node
    }

    pub fn number(&self) -> u32 {
        self.number
    }

    /// Delete the kernel partition again.
    pub fn remove(self) -> Result<(), PartDevError> {
        blkpg::delete_partition(&self.disk, &self.disk_name, self.number)?;
        Ok(())
    }
}

fn sysfs_partition(roots: &BlockRoots, disk_name: &str, number: u32) -> Option<disk::BlockEntry> {
    roots.sysfs.scan().into_iter().find(|e| {
        e.parent() == Some(disk_name) && e.partition.as_ref().is_some_and(|p| p.number == number)
    })
}
