//! Everything the checks need to know about the host, gathered once from a [`HostRoot`].
//!
//! A fact that could not be read is kept as `Err(message)` rather than failing the whole
//! gathering: the check that needs it then reports the message as what it found.

use super::block::{self, BlockDevice, BlockKind};
use super::boot_mode;
use super::fstab::{self, FstabEntry};
use super::grub::{self, GrubFacts};
use super::meminfo::{self, MemInfo};
use super::mountinfo::{self, MountInfoEntry};
use super::os_release::{self, OsRelease};
use super::partition_table::{self, PartitionTable};
use super::root::HostRoot;
use super::swap_header::{self, SwapHeader};
use super::swaps::{self, SwapArea, SwapKind};
use board_profiles::BootMode;
use serde::Serialize;
use std::fs::File;

/// A fact, or the one-line reason it could not be read.
///
/// The reason is text on purpose: it is only ever shown (a check's "found", a stage
/// refusal), one failure is shared by every fact that depends on it (so it must be
/// `Clone`, which `io::Error` is not), and `check --json` publishes it as a string.
pub type Fact<T> = Result<T, String>;

/// What the running process is, as opposed to what the root tree holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessFacts {
    pub euid: u32,
    /// `uname -m`, e.g. `x86_64`.
    pub arch: String,
    /// `$PATH`, to find `grub-editenv`.
    pub search_path: Option<String>,
}

impl ProcessFacts {
    pub fn current() -> Self {
        let arch = nix::sys::utsname::uname()
            .map(|u| u.machine().to_string_lossy().into_owned())
            .unwrap_or_else(|_| std::env::consts::ARCH.to_string());
        ProcessFacts {
            euid: nix::unistd::geteuid().as_raw(),
            arch,
            search_path: std::env::var("PATH").ok(),
        }
    }
}

/// A whole disk and its partition table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskFacts {
    /// Kernel name, e.g. `sda`.
    pub name: String,
    /// Host path, e.g. `/dev/sda`.
    pub path: String,
    pub table: PartitionTable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostFacts {
    pub euid: u32,
    pub arch: String,
    pub os_release: Fact<OsRelease>,
    pub boot_mode: BootMode,
    pub grub: GrubFacts,
    /// The mount at `/`.
    pub root_mount: Fact<MountInfoEntry>,
    /// The mount holding `/boot` (the root mount when /boot is not separate).
    pub boot_mount: Fact<MountInfoEntry>,
    /// The block device under `/`.
    pub root_device: Fact<BlockDevice>,
    /// The disk under the root partition, with its partition table.
    pub root_disk: Fact<DiskFacts>,
    pub swaps: Fact<Vec<SwapArea>>,
    /// The active swap partition chosen for staging (on the root disk when there are several).
    pub swap_device: Fact<BlockDevice>,
    /// The swap partition's own header (UUID, label).
    pub swap_header: Fact<SwapHeader>,
    pub memory: Fact<MemInfo>,
    pub fstab: Fact<Vec<FstabEntry>>,
    /// RESUME= / resume= settings of the old OS's initramfs ([`super::resume`]).
    pub resume: Vec<super::resume::ResumeSetting>,
}

/// Gathers facts from `root` for the running process.
pub fn gather(root: &HostRoot) -> HostFacts {
    gather_with(root, ProcessFacts::current())
}

pub fn gather_with(root: &HostRoot, process: ProcessFacts) -> HostFacts {
    let text = |e: super::HostError| e.to_string();
    let mounts = mountinfo::read(root).map_err(text);
    let root_mount = mount_at(&mounts, "/", false);
    let boot_mount = mount_at(&mounts, "/boot", true);
    let root_device =
        root_mount.as_ref().map_err(Clone::clone).and_then(|mount| device_of_mount(root, mount));
    let root_disk =
        root_device.as_ref().map_err(Clone::clone).and_then(|device| disk_of(root, device));
    let swaps = swaps::read(root).map_err(text);
    let swap_device = swaps
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|areas| choose_swap_device(root, areas, root_device.as_ref().ok()));
    let swap_header = swap_device
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|device| read_swap_header(root, device));
    HostFacts {
        euid: process.euid,
        arch: process.arch,
        os_release: os_release::read(root).map_err(text),
        boot_mode: boot_mode::detect(root),
        grub: grub::read(root, process.search_path.as_deref()),
        root_mount,
        boot_mount,
        root_device,
        root_disk,
        swaps,
        swap_device,
        swap_header,
        memory: meminfo::read(root).map_err(text),
        fstab: fstab::read(root).map_err(text),
        resume: super::resume::read(root),
    }
}

fn mount_at(
    mounts: &Fact<Vec<MountInfoEntry>>,
    path: &str,
    or_parent: bool,
) -> Fact<MountInfoEntry> {
    let mounts = mounts.as_ref().map_err(Clone::clone)?;
    let found = if or_parent {
        mountinfo::holding(mounts, path)
    } else {
        mountinfo::mounted_at(mounts, path)
    };
    found.cloned().ok_or_else(|| format!("{} lists no mount for {path}", mountinfo::PATH))
}

/// The block device of a mount: by its device number, or by its source path when the
/// number is anonymous (btrfs).
fn device_of_mount(root: &HostRoot, mount: &MountInfoEntry) -> Fact<BlockDevice> {
    let found = if mount.device.is_anonymous() {
        block::by_dev_path(root, &mount.source)
    } else {
        block::by_device_number(root, mount.device)
    };
    found.map_err(|e| {
        format!("block device of {} ({} {}): {e}", mount.mount_point, mount.device, mount.source)
    })
}

fn disk_of(root: &HostRoot, device: &BlockDevice) -> Fact<DiskFacts> {
    let name = device.parent_disk.clone().ok_or_else(|| {
        format!("{} is not a partition of a disk (it is {})", device.dev_path(), device.kind)
    })?;
    let path = format!("/dev/{name}");
    let table = partition_table::read(&root.path(&path), device.logical_sector_size)
        .map_err(|e| e.to_string())?;
    Ok(DiskFacts { name, path, table })
}

fn choose_swap_device(
    root: &HostRoot,
    areas: &[SwapArea],
    root_device: Option<&BlockDevice>,
) -> Fact<BlockDevice> {
    let on_devices: Vec<&SwapArea> =
        areas.iter().filter(|a| a.kind == SwapKind::Partition).collect();
    if on_devices.is_empty() {
        let files: Vec<&str> = areas.iter().map(|a| a.path.as_str()).collect();
        return Err(if files.is_empty() {
            "no swap area is active".to_string()
        } else {
            format!("only swap files are active ({}), no swap partition", files.join(", "))
        });
    }
    let mut resolved = Vec::new();
    let mut errors = Vec::new();
    for area in on_devices {
        match block::by_dev_path(root, &area.path) {
            Ok(device) => resolved.push(device),
            Err(e) => errors.push(format!("{}: {e}", area.path)),
        }
    }
    let root_disk = root_device.and_then(|d| d.parent_disk.clone());
    let same_disk_partition = resolved.iter().position(|d| {
        d.kind == BlockKind::Partition && d.parent_disk.is_some() && d.parent_disk == root_disk
    });
    match same_disk_partition {
        Some(index) => Ok(resolved.swap_remove(index)),
        None if !resolved.is_empty() => Ok(resolved.swap_remove(0)),
        None => Err(errors.join("; ")),
    }
}

fn read_swap_header(root: &HostRoot, device: &BlockDevice) -> Fact<SwapHeader> {
    // Read through the whole disk at the partition's start, so that fixture trees need only
    // a disk image; on a real host this is the same bytes as /dev/<partition>.
    let (path, offset) = match (&device.parent_disk, device.start) {
        (Some(disk), Some(start)) => (format!("/dev/{disk}"), start.bytes()),
        _ => (device.dev_path(), plan::Bytes(0)),
    };
    let mut file = File::open(root.path(&path)).map_err(|e| format!("cannot open {path}: {e}"))?;
    swap_header::read_at(&mut file, offset, swap_header::X86_PAGE_SIZE)
        .map_err(|e| format!("{}: {e}", device.dev_path()))
}
