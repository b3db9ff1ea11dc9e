//! The one reader of the kernel's block devices as sysfs shows them
//! (`<sysfs>/class/block/<name>/{dev,partition,start,size}`, the parent disk of a
//! partition, `<sysfs>/dev/block/MAJ:MIN`), used by the stager (`stager::host::block`) and
//! the migrator (`migrator::disk`). [`Sysfs`] takes the sysfs root, so tests point it at a
//! fixture tree.

use plan::Bytes;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A block device number `major:minor`, as mountinfo and sysfs `dev` files write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceNumber {
    pub major: u32,
    pub minor: u32,
}

impl DeviceNumber {
    /// Anonymous devices (major 0) are what btrfs, tmpfs, overlayfs report: not a disk.
    pub fn is_anonymous(self) -> bool {
        self.major == 0
    }
}

impl fmt::Display for DeviceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

impl Serialize for DeviceNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A text that is not `major:minor`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a major:minor device number")]
pub struct BadDeviceNumber(pub String);

impl FromStr for DeviceNumber {
    type Err = BadDeviceNumber;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadDeviceNumber(s.to_string());
        let (major, minor) = s.trim().split_once(':').ok_or_else(bad)?;
        let parse = |n: &str| n.parse::<u32>().map_err(|_| bad());
        Ok(DeviceNumber { major: parse(major)?, minor: parse(minor)? })
    }
}

/// A count or offset in the kernel's 512-byte units, as sysfs `start` and `size` report
/// them whatever the disk's logical sector size is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct KernelSectors(pub u64);

impl KernelSectors {
    pub const UNIT: Bytes = Bytes(512);
    /// The byte offset or size (saturating: sysfs counts far below 2^55 sectors).
    pub const fn bytes(self) -> Bytes {
        Bytes(self.0.saturating_mul(Self::UNIT.0))
    }
}

/// What is wrong with a sysfs value.
#[derive(Debug, thiserror::Error)]
pub enum SysfsProblem {
    #[error("`{0}` is not a number")]
    NotANumber(String),
    #[error("partition number {0} is out of range")]
    PartitionNumber(u64),
    #[error(transparent)]
    DeviceNumber(#[from] BadDeviceNumber),
    #[error("no block device has number {0}")]
    NoDevice(DeviceNumber),
}

#[derive(Debug, thiserror::Error)]
pub enum SysfsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: SysfsProblem },
}

/// Where a partition lies on its disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysfsPartition {
    /// The kernel's partition number (`partition`).
    pub number: u32,
    /// Where it starts on its disk (`start`).
    pub start: KernelSectors,
    /// The whole disk's kernel name and sysfs directory: the partition directory's real
    /// parent, when that is a block device itself (has a `dev` file).
    pub disk: Option<(String, PathBuf)>,
}

/// One block device as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockEntry {
    /// Kernel name (`sda`, `sda1`, `vda5`, `dm-0`, `loop0p60`).
    pub name: String,
    /// Its directory, `<sysfs>/class/block/<name>`.
    pub dir: PathBuf,
    pub device: DeviceNumber,
    /// For partitions (a `partition` file exists): number, start and disk.
    pub partition: Option<SysfsPartition>,
    pub size: KernelSectors,
}

impl BlockEntry {
    /// The whole disk's kernel name, for a partition.
    pub fn parent(&self) -> Option<&str> {
        self.partition.as_ref()?.disk.as_ref().map(|(name, _)| name.as_str())
    }
}

/// A sysfs tree: `/sys` or a fixture copy of its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysfs {
    root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Sysfs::new("/sys")
    }
}

fn read_trimmed(path: &Path) -> Result<String, SysfsError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| SysfsError::Read { path: path.to_path_buf(), source })
}

fn read_number(path: &Path) -> Result<u64, SysfsError> {
    let text = read_trimmed(path)?;
    text.parse().map_err(|_| SysfsError::Invalid {
        path: path.to_path_buf(),
        problem: SysfsProblem::NotANumber(text),
    })
}

/// The disk a partition's sysfs directory sits in: its real path's parent, when that is a
/// block device itself (has a `dev` file).
fn parent_disk(dir: &Path) -> Option<(String, PathBuf)> {
    let real = std::fs::canonicalize(dir).ok()?;
    let parent = real.parent()?;
    if !parent.join("dev").exists() {
        return None;
    }
    Some((parent.file_name()?.to_string_lossy().into_owned(), parent.to_path_buf()))
}

impl Sysfs {
    /// The tree mounted (or copied) at `root`, e.g. `/sys`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Sysfs { root: root.into() }
    }

    /// `<sysfs>/class/block`.
    pub fn class_block(&self) -> PathBuf {
        self.root.join("class/block")
    }

    /// The names in `<sysfs>/class/block`, sorted.
    pub fn names(&self) -> Result<Vec<String>, SysfsError> {
        let dir = self.class_block();
        let entries = std::fs::read_dir(&dir)
            .map_err(|source| SysfsError::Read { path: dir.clone(), source })?;
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Reads `<sysfs>/class/block/<name>`: `dev`, then for a partition `partition` and
    /// `start` and its disk, then `size`.
    pub fn entry(&self, name: &str) -> Result<BlockEntry, SysfsError> {
        let dir = self.class_block().join(name);
        let dev_file = dir.join("dev");
        let device = read_trimmed(&dev_file)?.parse().map_err(|e: BadDeviceNumber| {
            SysfsError::Invalid { path: dev_file, problem: e.into() }
        })?;
        let partition = if dir.join("partition").exists() {
            let number_file = dir.join("partition");
            let number = read_number(&number_file)?;
            let number = u32::try_from(number).map_err(|_| SysfsError::Invalid {
                path: number_file,
                problem: SysfsProblem::PartitionNumber(number),
            })?;
            let start = KernelSectors(read_number(&dir.join("start"))?);
            Some(SysfsPartition { number, start, disk: parent_disk(&dir) })
        } else {
            None
        };
        let size = KernelSectors(read_number(&dir.join("size"))?);
        Ok(BlockEntry { name: name.to_string(), dir, device, partition, size })
    }

    /// The file the loop device `name` reads from (`<sysfs>/class/block/<name>/loop/backing_file`),
    /// without the " (deleted)" the kernel adds once the file is unlinked; `None` when `name`
    /// is not a set-up loop device.
    pub fn loop_backing_file(&self, name: &str) -> Option<PathBuf> {
        let text = std::fs::read_to_string(self.class_block().join(name).join("loop/backing_file"))
            .ok()?;
        let path = text.trim_end_matches('\n');
        Some(PathBuf::from(path.strip_suffix(" (deleted)").unwrap_or(path)))
    }

    /// Every block device that reads completely, sorted by name; an unreadable directory
    /// gives none.
    pub fn scan(&self) -> Vec<BlockEntry> {
        let names = self.names().unwrap_or_default();
        names.iter().filter_map(|name| self.entry(name).ok()).collect()
    }

    /// The block device with number `device`, via `<sysfs>/dev/block/MAJ:MIN`, or by
    /// the `dev` files of `<sysfs>/class/block` when that link is missing.
    pub fn by_device_number(&self, device: DeviceNumber) -> Result<BlockEntry, SysfsError> {
        let link = self.root.join("dev/block").join(device.to_string());
        if let Ok(real) = std::fs::canonicalize(&link) {
            if let Some(name) = real.file_name() {
                return self.entry(&name.to_string_lossy());
            }
        }
        let class_dir = self.class_block();
        for name in self.names()? {
            let matches = read_trimmed(&class_dir.join(&name).join("dev"))
                .ok()
                .and_then(|text| text.parse::<DeviceNumber>().ok())
                .is_some_and(|found| found == device);
            if matches {
                return self.entry(&name);
            }
        }
        Err(SysfsError::Invalid { path: class_dir, problem: SysfsProblem::NoDevice(device) })
    }

    /// The partition of disk `disk` (kernel name) that starts at `start` and is `size` long
    /// (both in bytes), among the devices that read completely.
    pub fn partition_at(
        &self,
        disk: &str,
        start: Bytes,
        size: Bytes,
    ) -> Result<Option<BlockEntry>, SysfsError> {
        Ok(self.names()?.iter().filter_map(|name| self.entry(name).ok()).find(|e| {
            e.parent() == Some(disk)
                && e.partition.as_ref().is_some_and(|p| p.start.bytes() == start)
                && e.size.bytes() == size
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_major_minor() {
        let dev: DeviceNumber = "253:0\n".parse().unwrap();
        assert_eq!(dev, DeviceNumber { major: 253, minor: 0 });
        assert_eq!(dev.to_string(), "253:0");
        assert!("8".parse::<DeviceNumber>().is_err());
        assert!("0:27".parse::<DeviceNumber>().unwrap().is_anonymous());
        assert_eq!(
            "8".parse::<DeviceNumber>().unwrap_err().to_string(),
            "`8` is not a major:minor device number"
        );
    }

    #[test]
    fn kernel_sectors_are_512_bytes_whatever_the_disk() {
        assert_eq!(KernelSectors(2048).bytes(), Bytes(1024 * 1024));
    }

    /// A fixture tree: `sda` with partition `sda1`, as the kernel links them.
    #[test]
    fn reads_a_fixture_tree() {
        let root = tempfile::tempdir().unwrap();
        let devices = root.path().join("devices/pci0/sda");
        let write = |dir: &Path, name: &str, text: &str| {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(name), text).unwrap();
        };
        write(&devices, "dev", "8:0\n");
        write(&devices, "size", "8388608\n");
        let part = devices.join("sda1");
        write(&part, "dev", "8:1\n");
        write(&part, "partition", "1\n");
        write(&part, "start", "2048\n");
        write(&part, "size", "4096\n");
        let class = root.path().join("class/block");
        std::fs::create_dir_all(&class).unwrap();
        std::os::unix::fs::symlink(&devices, class.join("sda")).unwrap();
        std::os::unix::fs::symlink(&part, class.join("sda1")).unwrap();
        let sysfs = Sysfs::new(root.path());

        let entries = sysfs.scan();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name, "sda");
        assert!(entries[0].partition.is_none());
        assert_eq!(entries[1].parent(), Some("sda"));
        assert_eq!(entries[1].partition.as_ref().map(|p| p.start), Some(KernelSectors(2048)));
        let found = sysfs.partition_at("sda", Bytes(2048 * 512), Bytes(4096 * 512)).unwrap();
        assert_eq!(found.map(|e| e.name).as_deref(), Some("sda1"));
        let shifted = sysfs.partition_at("sda", Bytes(2049 * 512), Bytes(4096 * 512)).unwrap();
        assert!(shifted.is_none());
        let by_number = sysfs.by_device_number(DeviceNumber { major: 8, minor: 1 }).unwrap();
        assert_eq!(by_number.name, "sda1");
        let missing = sysfs.by_device_number(DeviceNumber { major: 9, minor: 9 }).unwrap_err();
        assert!(missing.to_string().ends_with("no block device has number 9:9"), "{missing}");

        let looped = root.path().join("devices/virtual/block/loop3");
        write(&looped.join("loop"), "backing_file", "/var/tmp/disk image.img (deleted)\n");
        std::os::unix::fs::symlink(&looped, class.join("loop3")).unwrap();
        let backing = sysfs.loop_backing_file("loop3");
        assert_eq!(backing.as_deref(), Some(Path::new("/var/tmp/disk image.img")));
        assert_eq!(sysfs.loop_backing_file("sda"), None);

        write(&part, "start", "x\n");
        let err = sysfs.entry("sda1").unwrap_err();
        assert!(err.to_string().ends_with("start: `x` is not a number"), "{err}");
    }
}
