//! The new boot partition on the UEFI route (`grub.route = uefi-boot-next`): the flash holds
//! resin-boot back, because the firmware loads the migration kernel from its `swapover/`.
//! Restore builds the new partition on staging — the image's resin-boot with config.json,
//! the NetworkManager keyfiles, and the old partition's `swapover/` (kernel and initramfs)
//! added — then writes it in place and reads it back. From then on a power cut still finds
//! the migration kernel at the same path, now in the new file system.
//!
//! Building is done once (written to a temporary name, synced, renamed); a repeated restore
//! writes the same bytes again.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::uefi_resume::BOOT_DIR;
use super::written_last::{self, HeldBytes};
use crate::fatboot::{self, FatFile, PartitionSlice};
use crate::flash::decoded::{decoded_reader, ImageReadError};
use crate::flash::HeldRange;

/// The built partition on staging.
pub const NEW_BOOT_FILE: &str = "resin-boot.new";

#[derive(Debug, thiserror::Error)]
pub enum BootImageError {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("the old boot partition has no {BOOT_DIR}/ with the migration kernel; it was changed since staging, re-stage")]
    NoMigrationKernel,
    #[error(transparent)]
    Image(#[from] ImageReadError),
    #[error(transparent)]
    WrittenLast(#[from] written_last::WrittenLastError),
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BootImageError {
    let path = path.to_path_buf();
    move |source| BootImageError::Io { action, path, source }
}

/// Build `<staging>/resin-boot.new` unless an earlier attempt did: the image's bytes for
/// `range`, plus `files`, plus every file of `swapover/` on the old boot partition
/// (`old_boot` on `disk`, not yet overwritten: the flash held it back).
pub fn build(
    image_path: &Path,
    range: HeldRange,
    disk: &File,
    old_boot: (plan::Bytes, plan::Bytes),
    files: &[FatFile],
    staging_dir: &Path,
) -> Result<PathBuf, BootImageError> {
    let path = staging_dir.join(NEW_BOOT_FILE);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == range.end - range.start) {
        log::info!("restore: the new boot partition was built by an earlier attempt");
        return Ok(path);
    }
    let bytes = image_bytes(image_path, range)?;
    let carried = migration_kernel_files(disk, old_boot)?;
    let mut all: Vec<FatFile> = files.to_vec();
    all.extend(carried);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &bytes).map_err(io("write", &tmp))?;
    drop(bytes);
    let out =
        std::fs::OpenOptions::new().read(true).write(true).open(&tmp).map_err(io("open", &tmp))?;
    let len = plan::Bytes(range.end - range.start);
    fatboot::write_files(PartitionSlice::new(&out, plan::Bytes(0), len), &all)
        .map_err(io("write files into", &tmp))?;
    out.sync_all().map_err(io("sync", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("rename", &tmp))?;
    log::info!(
        "restore: new boot partition built ({} file(s) added: {})",
        all.len(),
        all.iter().map(|f| f.path.as_str()).collect::<Vec<_>>().join(", ")
    );
    Ok(path)
}

/// The staged image's bytes for `range` (its boot partition), decoded.
pub fn image_bytes(image_path: &Path, range: HeldRange) -> Result<Vec<u8>, BootImageError> {
    let mut reader = decoded_reader(image_path)?;
    std::io::copy(&mut (&mut reader).take(range.start), &mut std::io::sink())
        .map_err(io("decode", image_path))?;
    let mut bytes = Vec::new();
    reader
        .take(range.end - range.start)
        .read_to_end(&mut bytes)
        .map_err(io("decode", image_path))?;
    if bytes.len() as u64 != range.end - range.start {
        return Err(BootImageError::Io {
            action: "decode",
            path: image_path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the image ends inside its boot partition",
            ),
        });
    }
    Ok(bytes)
}

/// Every file of a FAT volume (`/`-separated paths from its root), directories walked.
pub fn all_files<V: std::io::Read + std::io::Write + std::io::Seek>(
    volume: V,
) -> std::io::Result<Vec<FatFile>> {
    let fs = fatfs::FileSystem::new(volume, fatfs::FsOptions::new())?;
    let mut files = Vec::new();
    let mut pending = vec![(String::new(), fs.root_dir())];
    while let Some((prefix, dir)) = pending.pop() {
        for entry in dir.iter() {
            let entry = entry?;
            let name = entry.file_name();
            if name == "." || name == ".." {
                continue;
            }
            let path = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
            if entry.is_dir() {
                pending.push((path, entry.to_dir()));
            } else {
                let mut contents = Vec::new();
                entry.to_file().read_to_end(&mut contents)?;
                files.push(FatFile { path, contents });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Every file of `swapover/` on the old boot partition.
fn migration_kernel_files(
    disk: &File,
    (start, len): (plan::Bytes, plan::Bytes),
) -> Result<Vec<FatFile>, BootImageError> {
    let disk_path = Path::new("the old boot partition");
    let mut volume = PartitionSlice::new(disk, start, len);
    let fs = fatfs::FileSystem::new(&mut volume, fatfs::FsOptions::new())
        .map_err(io("read", disk_path))?;
    let dir = fs.root_dir().open_dir(BOOT_DIR).map_err(|_| BootImageError::NoMigrationKernel)?;
    let mut files = Vec::new();
    for entry in dir.iter() {
        let entry = entry.map_err(io("list", disk_path))?;
        if !entry.is_file() {
            continue;
        }
        let mut contents = Vec::new();
        entry.to_file().read_to_end(&mut contents).map_err(io("read", disk_path))?;
        files.push(FatFile { path: format!("{BOOT_DIR}/{}", entry.file_name()), contents });
    }
    if files.is_empty() {
        return Err(BootImageError::NoMigrationKernel);
    }
    Ok(files)
}

/// Before anything is destroyed: the boot partition at the image's resin-boot place must
/// be the FAT that holds the migration kernel (the firmware's way back after a power cut,
/// and what restore carries into the new resin-boot).
pub fn check_old_boot(disk: &File, range: HeldRange) -> Result<(), BootImageError> {
    let files = migration_kernel_files(
        disk,
        (plan::Bytes(range.start), plan::Bytes(range.end - range.start)),
    )?;
    log::info!(
        "arm-resume: the boot partition holds the migration kernel ({} file(s) in {BOOT_DIR}/)",
        files.len()
    );
    Ok(())
}

/// Write the built partition over `range` of the disk, sync, read it back.
pub fn write(
    disk: &File,
    range: HeldRange,
    built: &Path,
    name: &str,
) -> Result<(), BootImageError> {
    let bytes = std::fs::read(built).map_err(io("read", built))?;
    let held = HeldBytes::from_bytes(range, name, &bytes).map_err(BootImageError::WrittenLast)?;
    written_last::write(disk, &held)?;
    Ok(())
}
