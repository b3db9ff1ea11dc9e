//! Finding the plan's disk and partitions by identity, never by `/dev/sdX` name:
//! the whole disk whose MBR signature (bytes 440..444) is the plan's disk id,
//! and its partitions by start sector and size as sysfs reports them (read by
//! [`disk_layout::sysfs`], the reader the stager uses too).

#[cfg(test)]
use plan::Sectors;
use plan::{DiskId, Extent, PartitionIdentity, SectorSize};
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// sysfs reports `start` and `size` in 512-byte units whatever the disk's sector size.
const SYSFS_SECTOR: SectorSize = SectorSize::S512;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("no disk with identifier {id} appeared within {waited_secs} s (seen: {seen}); check that the disk driver module is in the initramfs")]
    DiskNotFound { id: String, waited_secs: u64, seen: String },
    #[error("partition at {extent} not found on {disk}; the partition table changed since staging, re-run the stager")]
    PartitionNotFound { disk: String, extent: Extent },
    #[error(
        "plan disk id {0} is not an MBR signature; GPT disks are not supported by this migrator"
    )]
    UnsupportedDiskId(String),
    #[error("cannot create device node {path}: {source}")]
    Mknod { path: PathBuf, source: nix::Error },
    #[error("{what}: {source}")]
    Units { what: &'static str, source: plan::UnitError },
}

/// A block device as sysfs shows it, read by the one sysfs reader.
pub use disk_layout::sysfs::{BlockEntry, KernelSectors, Sysfs};

/// The extent in sysfs units (512-byte sectors).
fn to_512(extent: Extent, sector_size: SectorSize) -> Result<(u64, u64), DiskError> {
    let units = |source| DiskError::Units { what: "partition extent", source };
    let start = extent
        .start
        .to_bytes(sector_size)
        .map_err(units)?
        .to_sectors(SYSFS_SECTOR)
        .map_err(units)?;
    let len =
        extent.len.to_bytes(sector_size).map_err(units)?.to_sectors(SYSFS_SECTOR).map_err(units)?;
    Ok((start.get(), len.get()))
}

/// Find, in `sysfs`, the partition of `disk` covering exactly `extent`.
pub fn find_partition(
    sysfs: &Sysfs,
    disk: &str,
    extent: Extent,
    sector_size: SectorSize,
) -> Result<BlockEntry, DiskError> {
    let (start, len) = to_512(extent, sector_size)?;
    sysfs
        .partition_at(disk, KernelSectors(start).bytes(), KernelSectors(len).bytes())
        .ok()
        .flatten()
        .ok_or_else(|| DiskError::PartitionNotFound { disk: disk.to_string(), extent })
}

/// The MBR disk signature, as the one MBR model reads it.
pub use disk_layout::mbr_signature;

/// A found disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundDisk {
    pub entry: BlockEntry,
    /// Device node, e.g. `/dev/sda`.
    pub node: PathBuf,
}

/// Where the kernel's block devices are seen.
#[derive(Debug, Clone)]
pub struct BlockRoots {
    pub sysfs: Sysfs,
    pub dev: PathBuf,
}

impl Default for BlockRoots {
    fn default() -> Self {
        BlockRoots { sysfs: Sysfs::default(), dev: PathBuf::from("/dev") }
    }
}

impl BlockRoots {
    /// The device node of `entry`, created (mknod) when devtmpfs lacks it.
    pub fn node(&self, entry: &BlockEntry) -> Result<PathBuf, DiskError> {
        let path = self.dev.join(&entry.name);
        if path.exists() {
            return Ok(path);
        }
        let dev =
            nix::sys::stat::makedev(u64::from(entry.device.major), u64::from(entry.device.minor));
        nix::sys::stat::mknod(
            &path,
            nix::sys::stat::SFlag::S_IFBLK,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            dev,
        )
        .map_err(|source| DiskError::Mknod { path: path.clone(), source })?;
        Ok(path)
    }

    /// One look for the whole disk with MBR signature `signature` and `size_bytes`
    /// (a copy of the disk, e.g. a cloned stick, has the signature but rarely the size;
    /// one with both is refused by the partition checks that follow).
    pub fn find_disk_once(
        &self,
        signature: u32,
        size_bytes: u64,
    ) -> Result<Option<FoundDisk>, DiskError> {
        for entry in self.sysfs.scan().into_iter().filter(|e| e.partition.is_none() && e.size.0 > 0)
        {
            let node = self.node(&entry)?;
            let mut sector0 = [0u8; 512];
            let read = std::fs::File::open(&node).and_then(|mut f| f.read_exact(&mut sector0));
            if read.is_ok() && mbr_signature(&sector0) == Some(signature) {
                if entry.size.0.saturating_mul(512) != size_bytes {
                    log::warn!("{} has the disk identifier but {} bytes, not {size_bytes}; not the planned disk", node.display(), entry.size.0 * 512);
                    continue;
                }
                return Ok(Some(FoundDisk { entry, node }));
            }
        }
        Ok(None)
    }

    /// Wait up to `wait` for the disk with `id` and `size_bytes` to appear.
    pub fn wait_for_disk(
        &self,
        id: &DiskId,
        size_bytes: plan::Bytes,
        wait: Duration,
    ) -> Result<FoundDisk, DiskError> {
        let DiskId::Mbr { signature } = id else {
            return Err(DiskError::UnsupportedDiskId(id.to_string()));
        };
        let started = Instant::now();
        loop {
            if let Some(found) = self.find_disk_once(*signature, size_bytes.get())? {
                log::info!(
                    "disk {id} is {} ({} sectors of 512 B) after {:.1} s",
                    found.node.display(),
                    found.entry.size.0,
                    started.elapsed().as_secs_f64()
                );
                return Ok(found);
            }
            if started.elapsed() >= wait {
                let seen: Vec<String> = self.sysfs.scan().into_iter().map(|e| e.name).collect();
                return Err(DiskError::DiskNotFound {
                    id: id.to_string(),
                    waited_secs: wait.as_secs(),
                    seen: seen.join(" "),
                });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The device node of the partition `identity` on `disk` (found by start and size).
    pub fn partition_node(
        &self,
        disk: &FoundDisk,
        identity: &PartitionIdentity,
    ) -> Result<PathBuf, DiskError> {
        self.partition_node_at(disk, identity.extent(), identity.sector_size)
    }

    /// The device node of the partition at `extent` on `disk`.
    pub fn partition_node_at(
        &self,
        disk: &FoundDisk,
        extent: plan::Extent,
        sector_size: SectorSize,
    ) -> Result<PathBuf, DiskError> {
        let entry = find_partition(&self.sysfs, &disk.entry.name, extent, sector_size)?;
        self.node(&entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real sysfs of this machine: every partition found by the scan is found
    /// again by its own start and size, under its own parent.
    #[test]
    fn real_sysfs_partitions_are_found_by_start_and_size() {
        let sysfs = Sysfs::default();
        let entries = sysfs.scan();
        assert!(!entries.is_empty(), "this machine has block devices");
        for part in entries.iter().filter(|e| e.partition.is_some()) {
            let p = part.partition.clone().unwrap();
            let parent = part.parent().expect("partition has a parent disk").to_string();
            let extent = Extent::new(Sectors(p.start.0), Sectors(part.size.0));
            let found = find_partition(&sysfs, &parent, extent, SectorSize::S512).unwrap();
            assert_eq!(found.name, part.name);
            let shifted = Extent::new(Sectors(p.start.0 + 1), Sectors(part.size.0));
            assert!(find_partition(&sysfs, &parent, shifted, SectorSize::S512).is_err());
        }
        let disk = entries.iter().find(|e| e.partition.is_none()).unwrap();
        let dev_text =
            std::fs::read_to_string(format!("/sys/class/block/{}/dev", disk.name)).unwrap();
        assert_eq!(dev_text.trim(), disk.device.to_string());
    }
}
