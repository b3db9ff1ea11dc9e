//! Changing files on a mounted FAT (resin-boot) so that a power cut leaves the old or the new
//! file, never a mix: write `X.swapover-new`, fsync it, rename over `X`, fsync the directory,
//! syncfs. The kernel's vfat writes the renamed directory entry in one sector. Shared by the
//! U-Boot route ([`super::uboot_resume`]), the Raspberry Pi route ([`super::pi_resume`]) and
//! the file-by-file update of resin-boot ([`super::boot_update`]).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// The suffix of a file written next to the one it replaces, before the rename.
pub const NEW_SUFFIX: &str = ".swapover-new";

/// A file operation on the boot partition that failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {path}: {source}")]
pub struct FatReplaceError {
    pub action: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
}

pub fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FatReplaceError {
    let path = path.to_path_buf();
    move |source| FatReplaceError { action, path, source }
}

/// `path` with [`NEW_SUFFIX`] appended.
pub fn with_suffix(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(NEW_SUFFIX);
    name.into()
}

/// Replace `dir/name` with `bytes`: `name.swapover-new` written and fsynced, renamed over
/// `name`, the directory fsynced and the file system synced. An identical file is left alone.
pub fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), FatReplaceError> {
    let path = dir.join(name);
    if std::fs::read(&path).is_ok_and(|now| now == bytes) {
        return Ok(());
    }
    let new = with_suffix(&path);
    write_synced(&new, bytes)?;
    rename_synced(&new, &path)
}

/// Write `path` and fsync it.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), FatReplaceError> {
    use std::io::Write;
    let mut file = File::create(path).map_err(io_err("create", path))?;
    file.write_all(bytes).map_err(io_err("write", path))?;
    file.sync_all().map_err(io_err("fsync", path))
}

/// Rename `from` over `to`, then fsync the directory and sync the file system.
pub fn rename_synced(from: &Path, to: &Path) -> Result<(), FatReplaceError> {
    std::fs::rename(from, to).map_err(io_err("rename", from))?;
    sync_dir(to.parent().unwrap_or(Path::new("/")))
}

/// fsync a directory and sync its file system (on vfat the directory's fsync also writes
/// the FAT; syncfs makes sure of it).
pub fn sync_dir(dir: &Path) -> Result<(), FatReplaceError> {
    let handle = File::open(dir).map_err(io_err("open", dir))?;
    handle.sync_all().map_err(io_err("fsync", dir))?;
    nix::unistd::syncfs(&handle).map_err(|e| FatReplaceError {
        action: "syncfs",
        path: dir.to_path_buf(),
        source: e.into(),
    })
}

/// Remove `path` if it is there (a file), then sync its directory.
pub fn remove_synced(path: &Path) -> Result<(), FatReplaceError> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("/"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}

/// Remove the directory `path` and everything in it if it is there, then sync its parent.
pub fn remove_dir_synced(path: &Path) -> Result<(), FatReplaceError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("/"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}
