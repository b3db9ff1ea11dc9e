//! Finding the plan's disk and partitions by identity, never by `/dev/sdX` name:
//! the whole disk whose MBR signature (bytes 440..444) is the plan's disk id,
//! and its partitions by start sector and size as sysfs reports them.

#[cfg(test)]
use plan::Sectors;
use plan::{DiskId, Extent, PartitionIdentity, SectorSize};
use std::io::Read;
use std::path::{Path, PathBuf};
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

/// A block device as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockEntry {
    /// Kernel name (`sda`, `sda1`, `vda5`, `loop0p60`).
    pub name: String,
    pub major: u32,
    pub minor: u32,
    /// For partitions: number, and start/size in 512-byte units.
    pub partition: Option<SysfsPartition>,
    /// For partitions: the whole disk's kernel name.
    pub parent: Option<String>,
    /// Size in 512-byte units.
    pub size_512: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysfsPartition {
    pub number: u32,
    pub start_512: u64,
}

/// Read `/sys/class/block` (or a copy of its shape at `class_block`).
pub fn scan(class_block: &Path) -> Vec<BlockEntry> {
    let Ok(dir) = std::fs::read_dir(class_block) else {
        return Vec::new();
    };
    let mut entries: Vec<BlockEntry> =
        dir.filter_map(Result::ok).filter_map(|e| read_entry(&e.path())).collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}

fn read_value(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok().map(|s| s.trim().to_string())
}

fn read_entry(path: &Path) -> Option<BlockEntry> {
    let name = path.file_name()?.to_str()?.to_string();
    let (major, minor) = read_value(path, "dev")?
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))?;
    let size_512 = read_value(path, "size")?.parse().ok()?;
    let partition = match (read_value(path, "partition"), read_value(path, "start")) {
        (Some(number), Some(start)) => {
            Some(SysfsPartition { number: number.parse().ok()?, start_512: start.parse().ok()? })
        }
        _ => None,
    };
    // /sys/class/block/sda1 -> ../../devices/.../sda/sda1: the parent directory is the disk.
    let parent = partition.and_then(|_| {
        let real = std::fs::canonicalize(path).ok()?;
        Some(real.parent()?.file_name()?.to_str()?.to_string())
    });
    Some(BlockEntry { name, major, minor, partition, parent, size_512 })
}

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

/// Find, among `entries`, the partition of `disk` covering exactly `extent`.
pub fn find_partition<'a>(
    entries: &'a [BlockEntry],
    disk: &str,
    extent: Extent,
    sector_size: SectorSize,
) -> Result<&'a BlockEntry, DiskError> {
    let (start, len) = to_512(extent, sector_size)?;
    entries
        .iter()
        .find(|e| {
            e.parent.as_deref() == Some(disk)
                && e.partition.is_some_and(|p| p.start_512 == start)
                && e.size_512 == len
        })
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
    pub class_block: PathBuf,
    pub dev: PathBuf,
}

impl Default for BlockRoots {
    fn default() -> Self {
        BlockRoots { class_block: PathBuf::from("/sys/class/block"), dev: PathBuf::from("/dev") }
    }
}

impl BlockRoots {
    /// The device node of `entry`, created (mknod) when devtmpfs lacks it.
    pub fn node(&self, entry: &BlockEntry) -> Result<PathBuf, DiskError> {
        let path = self.dev.join(&entry.name);
        if path.exists() {
            return Ok(path);
        }
        let dev = nix::sys::stat::makedev(u64::from(entry.major), u64::from(entry.minor));
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
        for entry in
            scan(&self.class_block).into_iter().filter(|e| e.partition.is_none() && e.size_512 > 0)
        {
            let node = self.node(&entry)?;
            let mut sector0 = [0u8; 512];
            let read = std::fs::File::open(&node).and_then(|mut f| f.read_exact(&mut sector0));
            if read.is_ok() && mbr_signature(&sector0) == Some(signature) {
                if entry.size_512.saturating_mul(512) != size_bytes {
                    log::warn!("{} has the disk identifier but {} bytes, not {size_bytes}; not the planned disk", node.display(), entry.size_512 * 512);
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
                    found.entry.size_512,
                    started.elapsed().as_secs_f64()
                );
                return Ok(found);
            }
            if started.elapsed() >= wait {
                let seen: Vec<String> =
                    scan(&self.class_block).into_iter().map(|e| e.name).collect();
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
        let entries = scan(&self.class_block);
        let entry =
            find_partition(&entries, &disk.entry.name, identity.extent(), identity.sector_size)?;
        self.node(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real sysfs of this machine: every partition found by `scan` is found
    /// again by its own start and size, under its own parent.
    #[test]
    fn real_sysfs_partitions_are_found_by_start_and_size() {
        let entries = scan(Path::new("/sys/class/block"));
        assert!(!entries.is_empty(), "this machine has block devices");
        for part in entries.iter().filter(|e| e.partition.is_some()) {
            let p = part.partition.unwrap();
            let parent = part.parent.clone().expect("partition has a parent disk");
            let extent = Extent::new(Sectors(p.start_512), Sectors(part.size_512));
            let found = find_partition(&entries, &parent, extent, SectorSize::S512).unwrap();
            assert_eq!(found.name, part.name);
            let shifted = Extent::new(Sectors(p.start_512 + 1), Sectors(part.size_512));
            assert!(find_partition(&entries, &parent, shifted, SectorSize::S512).is_err());
        }
        let disk = entries.iter().find(|e| e.partition.is_none()).unwrap();
        let dev_text =
            std::fs::read_to_string(format!("/sys/class/block/{}/dev", disk.name)).unwrap();
        assert_eq!(dev_text.trim(), format!("{}:{}", disk.major, disk.minor));
    }
}
