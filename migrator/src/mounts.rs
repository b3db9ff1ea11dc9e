//! How the steps reach file systems: a small trait, with the kernel-mount
//! implementation the migrator uses as PID 1 and a plain-directories one for
//! running the steps on trees that are already reachable (tests, diagnosis).

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use plan::{FsType, PartitionRole, Plan};

use crate::disk::{BlockRoots, FoundDisk};
use crate::partdev::{TempPartition, FIRST_TEMP_NUMBER};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("cannot mount {device} ({fstype}) at {at}: {source}; check that the {fstype} module is in the initramfs")]
    Mount { device: PathBuf, fstype: String, at: PathBuf, source: nix::Error },
    #[error("cannot unmount {at}: {source}")]
    Unmount { at: PathBuf, source: nix::Error },
    #[error(transparent)]
    Disk(#[from] crate::disk::DiskError),
    #[error(transparent)]
    PartDev(#[from] crate::partdev::PartDevError),
    #[error("the plan's layout has no {0} partition")]
    NoPartition(PartitionRole),
    #[error("{0}")]
    Units(#[from] plan::UnitError),
}

/// The file systems the steps need, each opened and closed explicitly.
pub trait FileSystems {
    /// Make the old root readable (read-only) and return its directory.
    fn open_old_root(&mut self) -> Result<PathBuf, MountError>;
    fn close_old_root(&mut self) -> Result<(), MountError>;
    /// Make resinOS's data file system writable and return its directory.
    fn open_data(&mut self) -> Result<PathBuf, MountError>;
    fn close_data(&mut self) -> Result<(), MountError>;
    /// Make the disk's boot partition (resin-boot, FAT) writable and return its directory:
    /// the U-Boot route changes files there by rename, the one atomic step FAT has
    /// (a directory-entry write).
    fn open_boot(&mut self) -> Result<PathBuf, MountError>;
    fn close_boot(&mut self) -> Result<(), MountError>;
}

/// Trees already reachable as directories (nothing to mount).
#[derive(Debug, Clone)]
pub struct Directories {
    pub old_root: PathBuf,
    pub data: PathBuf,
    /// The boot partition's tree.
    pub boot: PathBuf,
}

impl FileSystems for Directories {
    fn open_old_root(&mut self) -> Result<PathBuf, MountError> {
        Ok(self.old_root.clone())
    }
    fn close_old_root(&mut self) -> Result<(), MountError> {
        Ok(())
    }
    fn open_data(&mut self) -> Result<PathBuf, MountError> {
        Ok(self.data.clone())
    }
    fn close_data(&mut self) -> Result<(), MountError> {
        Ok(())
    }
    fn open_boot(&mut self) -> Result<PathBuf, MountError> {
        Ok(self.boot.clone())
    }
    fn close_boot(&mut self) -> Result<(), MountError> {
        Ok(())
    }
}

/// Mount `device` (`fstype`) at `at`, creating the directory.
pub fn mount_fs(device: &Path, at: &Path, fstype: &str, read_only: bool) -> Result<(), MountError> {
    let _ = std::fs::create_dir_all(at);
    let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    mount(Some(device), at, Some(fstype), flags, None::<&str>).map_err(|source| MountError::Mount {
        device: device.to_path_buf(),
        fstype: fstype.to_string(),
        at: at.to_path_buf(),
        source,
    })
}

/// Unmount `at`; not mounted (EINVAL) counts as done.
pub fn unmount(at: &Path) -> Result<(), MountError> {
    match umount2(at, MntFlags::empty()) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(source) => Err(MountError::Unmount { at: at.to_path_buf(), source }),
    }
}

/// Where a source data partition (resinOS 1.x `resin-data`) is mounted, below the old root.
pub const SOURCE_DATA_MOUNT: &str = "/mnt/data";

/// The real thing: the old root's partition from the disk's table, resin-data
/// through a temporary kernel partition (BLKPG) over the not yet committed layout.
pub struct KernelMounts {
    pub roots: BlockRoots,
    pub disk: FoundDisk,
    pub plan: Plan,
    pub old_root_at: PathBuf,
    pub data_at: PathBuf,
    pub boot_at: PathBuf,
    data_device: Option<TempPartition>,
}

impl KernelMounts {
    pub fn new(roots: BlockRoots, disk: FoundDisk, plan: Plan) -> Self {
        KernelMounts {
            roots,
            disk,
            plan,
            old_root_at: PathBuf::from("/mnt/old-root"),
            data_at: PathBuf::from("/mnt/resin-data"),
            boot_at: PathBuf::from("/mnt/resin-boot"),
            data_device: None,
        }
    }
}

fn fs_name(fs: FsType) -> String {
    fs.to_string()
}

impl FileSystems for KernelMounts {
    /// The old root, read-only; with a source data partition (resinOS 1.x) that too,
    /// read-only at the old root's `/mnt/data`, where the 1.x system mounted it.
    fn open_old_root(&mut self) -> Result<PathBuf, MountError> {
        let node = self.roots.partition_node(&self.disk, &self.plan.old_root.partition)?;
        // A failed earlier attempt in this boot may have left them mounted.
        self.close_old_root()?;
        mount_fs(&node, &self.old_root_at, &fs_name(self.plan.old_root.fs_type), true)?;
        if let Some(data) = &self.plan.source_data {
            let mounted = self
                .roots
                .partition_node(&self.disk, &data.partition)
                .map_err(MountError::from)
                .and_then(|data_node| {
                    let at = self.old_root_at.join(SOURCE_DATA_MOUNT.trim_start_matches('/'));
                    mount_fs(&data_node, &at, &fs_name(data.fs_type), true)?;
                    log::info!(
                        "backup: data partition {} ({}) mounted read-only at {}",
                        data_node.display(),
                        data.fs_type,
                        at.display()
                    );
                    Ok(())
                });
            if let Err(e) = mounted {
                let _ = unmount(&self.old_root_at);
                return Err(e);
            }
        }
        Ok(self.old_root_at.clone())
    }

    fn close_old_root(&mut self) -> Result<(), MountError> {
        if self.plan.source_data.is_some() {
            unmount(&self.old_root_at.join(SOURCE_DATA_MOUNT.trim_start_matches('/')))?;
        }
        unmount(&self.old_root_at)
    }

    fn open_data(&mut self) -> Result<PathBuf, MountError> {
        self.open_data_with(false)
    }

    fn close_data(&mut self) -> Result<(), MountError> {
        unmount(&self.data_at)?;
        if let Some(device) = self.data_device.take() {
            device.remove()?;
        }
        Ok(())
    }

    /// The disk's own partition at the layout's boot place (resinOS 1.x and 2.x put
    /// resin-boot at the same 4 MiB, 40 MiB: contract §2.5), mounted vfat read-write.
    /// Its table entry is the same before and after finalize, so the kernel's partition
    /// device is used (no temporary partition).
    fn open_boot(&mut self) -> Result<PathBuf, MountError> {
        let layout = &self.plan.layout;
        let boot = layout
            .by_role(PartitionRole::Boot)
            .ok_or(MountError::NoPartition(PartitionRole::Boot))?;
        let sector = self.plan.source_disk.sector_size;
        let node =
            self.roots.partition_node_at(&self.disk, boot.disk_extent(layout, sector)?, sector)?;
        unmount(&self.boot_at)?;
        mount_fs(&node, &self.boot_at, "vfat", false)?;
        Ok(self.boot_at.clone())
    }

    fn close_boot(&mut self) -> Result<(), MountError> {
        nix::unistd::sync();
        unmount(&self.boot_at)
    }
}

impl KernelMounts {
    /// resinOS's data partition through a temporary kernel partition, read-only when only
    /// looked at (whatever lies there before the flash is not ours to change).
    pub fn open_data_with(&mut self, read_only: bool) -> Result<PathBuf, MountError> {
        let layout = &self.plan.layout;
        let data = layout
            .by_role(PartitionRole::Data)
            .ok_or(MountError::NoPartition(PartitionRole::Data))?;
        let start = data.disk_offset(self.plan.source_disk.sector_size)?;
        let len = data.size_bytes(layout)?;
        unmount(&self.data_at)?;
        if let Some(left) = self.data_device.take() {
            left.remove()?;
        }
        let device = TempPartition::add(
            &self.roots,
            &self.disk.node,
            &self.disk.entry.name,
            FIRST_TEMP_NUMBER,
            start,
            len,
        )?;
        log::info!("restore: {} is {} at byte {start} ({len})", data.name, device.node().display());
        let mounted = mount_fs(device.node(), &self.data_at, &fs_name(data.fs), read_only);
        if let Err(e) = mounted {
            let _ = device.remove();
            return Err(e);
        }
        self.data_device = Some(device);
        Ok(self.data_at.clone())
    }
}
