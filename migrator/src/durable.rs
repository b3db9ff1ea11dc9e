//! Writing files so that a power cut leaves either the old or the new contents: a
//! temporary file, fsync, rename, fsync of the directory, fsync of the renamed file. A leaf:
//! the backup, the relay, the resume records and the start counter all write through it.
//!
//! The last fsync is for vfat (the Raspberry Pi's staging is a FAT32, contract R11): Linux's
//! `vfat_rename` (fs/fat/namei_vfat.c) writes the new directory entry with size 0 and no
//! first cluster and leaves the real ones to the inode's next write-back; an fsync of the
//! directory does not write the inode. Found by `qemu-tests/tests/resinos1x_pi_migration.rs`:
//! after a power cut the backup archive's entry read 0 bytes and restore carried no data.
//! fsync of the file writes its entry (`fat_file_fsync` → `sync_inode_metadata`); on ext4 it
//! costs nothing, the rename having been journaled.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A write or fsync that failed, with the path it was for.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {path}: {source}")]
pub struct DurableError {
    pub action: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DurableError {
    let path = path.to_path_buf();
    move |source| DurableError { action, path, source }
}

/// fsync the directory holding `path`.
pub fn sync_parent(path: &Path) -> Result<(), DurableError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("fsync directory", dir))
}

/// Rename the fsynced `tmp` over `path`, fsync the directory, then fsync `path` itself (its
/// directory entry on vfat: see the module text).
pub fn rename_durably(tmp: &Path, path: &Path) -> Result<(), DurableError> {
    std::fs::rename(tmp, path).map_err(io_err("rename", tmp))?;
    sync_parent(path)?;
    File::open(path).and_then(|f| f.sync_all()).map_err(io_err("fsync", path))
}

/// Write `bytes` to `path` via a temporary file, fsync, rename, fsync the directory and the
/// file.
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), DurableError> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io_err("create", &tmp))?;
    file.write_all(bytes).map_err(io_err("write", &tmp))?;
    file.sync_all().map_err(io_err("fsync", &tmp))?;
    drop(file);
    rename_durably(&tmp, path)
}
