//! Crash-safe replacement of a small file: temp file in the same directory,
//! fsync, rename over the target, fsync the directory.
//!
//! Why not overwrite in place like `grub-editenv` (which opens with `O_TRUNC`
//! and rewrites)? A power cut between the truncate and the write leaves an
//! empty or half-written `grubenv`; GRUB then ignores it and boots its plain
//! default. During a migration that default may be the OS we are overwriting,
//! so the write must be all-or-nothing. GRUB's `save_env` writes through the
//! file's blocklist, which it resolves afresh at every boot from the
//! filesystem, so a new inode is fine as long as the file keeps its size and
//! is not fragmented: a 1024-byte file occupies a single filesystem block
//! (blocks are >= 1 KiB), so it cannot be fragmented, and we always write the
//! full block with real (non-sparse) data. `grub-editenv create` itself writes
//! `FILE.new` and renames it, so the rename route is one GRUB uses too.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode for a file that did not exist before (what grub-editenv gets with umask 022).
const NEW_FILE_MODE: u32 = 0o644;

fn temp_path_for(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{} has no file name", path.display()))
    })?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(".swapover-tmp");
    Ok(path.with_file_name(temp_name))
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replace `path` with exactly `bytes`, atomically and durably.
/// The original file's permission bits are kept.
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mode = match fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o7777,
        Err(e) if e.kind() == io::ErrorKind::NotFound => NEW_FILE_MODE,
        Err(e) => return Err(e),
    };
    let temp = temp_path_for(path)?;
    match fs::remove_file(&temp) {
        Ok(()) => log::warn!("removed stale temp file {}", temp.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&temp)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        sync_dir(parent_dir(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Remove `path` durably (the directory entry removal is fsynced).
pub fn remove(path: &Path) -> io::Result<()> {
    fs::remove_file(path)?;
    sync_dir(parent_dir(path))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
