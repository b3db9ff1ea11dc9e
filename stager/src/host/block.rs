//! Block devices as sysfs describes them: `/sys/class/block/<name>/{dev,partition,start,size}`
//! and the parent disk (read by [`disk_layout::sysfs`], the reader the migrator uses too),
//! plus what the stager alone asks: what a device-mapper or md device really is (LVM, LUKS,
//! RAID), the disk's logical sector size, the devices under it.

use super::device_number::DeviceNumber;
use super::error::HostError;
use super::root::HostRoot;
use super::units::KernelSectors;
use disk_layout::sysfs::{BlockEntry, Sysfs};
use plan::Bytes;
use serde::Serialize;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub const CLASS_DIR: &str = "/sys/class/block";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "detail")]
pub enum BlockKind {
    Disk,
    Partition,
    /// A device-mapper volume whose `dm/uuid` starts with `LVM-`.
    Lvm,
    /// A device-mapper volume whose `dm/uuid` starts with `CRYPT-` (LUKS or plain dm-crypt).
    DmCrypt,
    /// Any other device-mapper volume; the `dm/uuid` prefix says what made it.
    DeviceMapper(String),
    /// Linux software RAID.
    Md,
    Loop,
}

impl std::fmt::Display for BlockKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlockKind::Disk => f.write_str("a whole disk"),
            BlockKind::Partition => f.write_str("a partition"),
            BlockKind::Lvm => f.write_str("an LVM logical volume"),
            BlockKind::DmCrypt => f.write_str("a LUKS/dm-crypt volume"),
            BlockKind::DeviceMapper(by) if by.is_empty() => f.write_str("a device-mapper volume"),
            BlockKind::DeviceMapper(by) => write!(f, "a device-mapper volume made by {by}"),
            BlockKind::Md => f.write_str("an md software RAID"),
            BlockKind::Loop => f.write_str("a loop device"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockDevice {
    /// Kernel name, e.g. `sda5`, `dm-0`, `md127`.
    pub name: String,
    pub device: DeviceNumber,
    pub kind: BlockKind,
    pub partition_number: Option<u32>,
    /// Where a partition starts on its disk.
    pub start: Option<KernelSectors>,
    pub size: KernelSectors,
    /// The whole disk a partition belongs to, e.g. `sda` for `sda5`.
    pub parent_disk: Option<String>,
    /// Logical sector size of the disk (`queue/logical_block_size`), which its partition
    /// table counts in.
    pub logical_sector_size: Bytes,
    /// Devices this one is built on (`slaves/`), e.g. the partitions under an LVM volume.
    pub slaves: Vec<String>,
}

impl BlockDevice {
    /// The node under `/dev` the kernel names it by.
    pub fn dev_path(&self) -> String {
        format!("/dev/{}", self.name)
    }
}

/// The host's sysfs, under `root`.
pub fn sysfs(root: &HostRoot) -> Sysfs {
    Sysfs::new(root.path("/sys"))
}

fn read_number(path: &Path) -> Result<u64, HostError> {
    let text = std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| HostError::Read { path: path.to_path_buf(), source })?;
    text.parse().map_err(|_| HostError::Invalid {
        path: path.to_path_buf(),
        problem: format!("`{text}` is not a number"),
    })
}

/// What a device that is not a partition is.
fn classify(dir: &Path, name: &str) -> BlockKind {
    if let Ok(uuid) = std::fs::read_to_string(dir.join("dm/uuid")) {
        let uuid = uuid.trim();
        return if uuid.starts_with("LVM-") {
            BlockKind::Lvm
        } else if uuid.starts_with("CRYPT-") {
            BlockKind::DmCrypt
        } else {
            BlockKind::DeviceMapper(uuid.split('-').next().unwrap_or_default().to_string())
        };
    }
    if name.starts_with("dm-") {
        return BlockKind::DeviceMapper(String::new());
    }
    if dir.join("md").exists() || name.starts_with("md") {
        return BlockKind::Md;
    }
    if name.starts_with("loop") {
        return BlockKind::Loop;
    }
    BlockKind::Disk
}

/// Reads `/sys/class/block/<name>`.
pub fn by_name(root: &HostRoot, name: &str) -> Result<BlockDevice, HostError> {
    Ok(describe(sysfs(root).entry(name)?))
}

/// The stager's view of a device the sysfs reader read.
pub(crate) fn describe(entry: BlockEntry) -> BlockDevice {
    let BlockEntry { name, dir, device, partition, size } = entry;
    let kind = if partition.is_some() { BlockKind::Partition } else { classify(&dir, &name) };
    let (partition_number, start, parent) = match partition {
        Some(p) => (Some(p.number), Some(p.start), p.disk),
        None => (None, None, None),
    };
    let disk_dir = parent.as_ref().map(|(_, dir)| dir.clone()).unwrap_or_else(|| dir.clone());
    let logical_sector_size = read_number(&disk_dir.join("queue/logical_block_size"))
        .map(Bytes)
        .unwrap_or(KernelSectors::UNIT);
    let mut slaves: Vec<String> = std::fs::read_dir(dir.join("slaves"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    slaves.sort();
    BlockDevice {
        name,
        device,
        kind,
        partition_number,
        start,
        size,
        parent_disk: parent.map(|(name, _)| name),
        logical_sector_size,
        slaves,
    }
}

/// Finds the block device with number `device` via `/sys/dev/block/MAJ:MIN`, or by
/// scanning `/sys/class/block/*/dev` when that link is missing.
pub fn by_device_number(root: &HostRoot, device: DeviceNumber) -> Result<BlockDevice, HostError> {
    Ok(describe(sysfs(root).by_device_number(device)?))
}

/// Finds the block device a host path names (`/dev/sda5`, `/dev/mapper/vg-swap`,
/// `/dev/disk/by-uuid/…`): by its device number when it is a device node, else by the
/// name the path resolves to.
pub fn by_dev_path(root: &HostRoot, host_path: &str) -> Result<BlockDevice, HostError> {
    let path = root.path(host_path);
    if let Ok(meta) = std::fs::metadata(&path) {
        if meta.file_type().is_block_device() {
            let rdev = meta.rdev();
            let device = DeviceNumber {
                major: u32::try_from(nix::sys::stat::major(rdev)).unwrap_or(u32::MAX),
                minor: u32::try_from(nix::sys::stat::minor(rdev)).unwrap_or(u32::MAX),
            };
            return by_device_number(root, device);
        }
    }
    let resolved = follow_links(path);
    let name = resolved.file_name().map(|n| n.to_string_lossy().into_owned()).ok_or_else(|| {
        HostError::Invalid {
            path: PathBuf::from(host_path),
            problem: "does not name a block device".to_string(),
        }
    })?;
    by_name(root, &name)
}

/// Follows symlinks by their text (at most 8), so that `/dev/mapper/x -> ../dm-1` names
/// `dm-1` even where the target node itself is not present.
fn follow_links(mut path: PathBuf) -> PathBuf {
    for _ in 0..8 {
        let Ok(target) = std::fs::read_link(&path) else {
            break;
        };
        path = match path.parent() {
            Some(parent) => parent.join(target),
            None => target,
        };
    }
    path
}
