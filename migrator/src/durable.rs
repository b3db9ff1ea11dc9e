//! Writing files so that a power cut leaves either the old or the new contents: a
//! temporary file, fsync, rename, fsync of the directory. A leaf: the backup, the
//! relay, the resume records and the start counter all write through it.

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

/// Write `bytes` to `path` via a temporary file, fsync, rename, fsync the directory.
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), DurableError> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io_err("create", &tmp))?;
    file.write_all(bytes).map_err(io_err("write", &tmp))?;
    file.sync_all().map_err(io_err("fsync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err("rename", &tmp))?;
    sync_parent(path)
}
