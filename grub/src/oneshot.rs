//! Arm a one-shot boot (`grub-reboot`) or a permanent default
//! (`grub-set-default`) in a grubenv file, with an undo record that puts the
//! file back byte for byte.
//!
//! Semantics follow the scripts of GRUB 2.06 (`/usr/sbin/grub-reboot`,
//! `/usr/sbin/grub-set-default`):
//! - one-shot: if `prev_saved_entry` is set, move it to `saved_entry` and unset
//!   it; then `next_entry=ENTRY`. GRUB's 00_header boots `next_entry` once and
//!   clears it with `save_env`.
//! - permanent: unset `prev_saved_entry` and `next_entry`, set
//!   `saved_entry=ENTRY`. This only takes effect when grub.cfg says
//!   `set default="${saved_entry}"` (GRUB_DEFAULT=saved); check with
//!   [`crate::cfg_inspect`] first, otherwise re-arm the one-shot on every boot.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::env::{EnvError, GrubEnv};

#[derive(Debug, thiserror::Error)]
pub enum OneShotError {
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error("grubenv {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// What was in the grubenv file before we changed it. Persist it (it is
/// serde-serialisable) and call [`UndoRecord::restore`] to put the file back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoRecord {
    /// The grubenv file we changed.
    pub path: PathBuf,
    /// Its bytes before the change; `None` when the file did not exist.
    pub original: Option<Vec<u8>>,
    /// The bytes we wrote.
    pub written: Vec<u8>,
}

impl UndoRecord {
    /// Put the file back exactly as it was (or remove it if it did not exist).
    /// Idempotent: restoring twice is fine.
    pub fn restore(&self) -> Result<(), OneShotError> {
        let io_err = |source| OneShotError::Io { path: self.path.clone(), source };
        match &self.original {
            Some(bytes) => crate::atomic_file::replace(&self.path, bytes).map_err(io_err),
            None => match crate::atomic_file::remove(&self.path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(e)),
                _ => Ok(()),
            },
        }
    }

    /// Whether the file still holds exactly what we wrote (false once GRUB has
    /// consumed a one-shot `next_entry`, or someone else changed it).
    pub fn still_armed(&self) -> Result<bool, OneShotError> {
        match fs::read(&self.path) {
            Ok(bytes) => Ok(bytes == self.written),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(OneShotError::Io { path: self.path.clone(), source }),
        }
    }
}

/// Change `path` with `edit`, returning the undo record.
fn edit_env(
    path: &Path,
    edit: impl FnOnce(&mut GrubEnv) -> Result<(), EnvError>,
) -> Result<UndoRecord, OneShotError> {
    let original = match fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(source) => return Err(OneShotError::Io { path: path.to_owned(), source }),
    };
    let mut env = match &original {
        Some(bytes) => GrubEnv::from_bytes(bytes)?,
        None => GrubEnv::new(),
    };
    edit(&mut env)?;
    let written = env.to_bytes()?;
    crate::atomic_file::replace(path, &written)
        .map_err(|source| OneShotError::Io { path: path.to_owned(), source })?;
    log::info!("grubenv {} changed; undo record kept", path.display());
    Ok(UndoRecord { path: path.to_owned(), original, written })
}

/// `grub-reboot ENTRY` on a grubenv file.
pub struct OneShot;

impl OneShot {
    /// Apply grub-reboot's edits to `env` (pure; for previews and dry runs).
    pub fn apply(env: &mut GrubEnv, entry: &str) -> Result<(), EnvError> {
        if let Some(prev) = env.get("prev_saved_entry").map(str::to_owned) {
            env.set("saved_entry", &prev)?;
            env.unset("prev_saved_entry");
        }
        env.set("next_entry", entry)
    }

    /// Arm `entry` for the next boot only. Creates the file if missing.
    pub fn arm(path: &Path, entry: &str) -> Result<UndoRecord, OneShotError> {
        edit_env(path, |env| Self::apply(env, entry))
    }
}

/// `grub-set-default ENTRY` on a grubenv file.
pub struct PermanentDefault;

impl PermanentDefault {
    /// Apply grub-set-default's edits to `env` (pure).
    pub fn apply(env: &mut GrubEnv, entry: &str) -> Result<(), EnvError> {
        env.unset("prev_saved_entry");
        env.unset("next_entry");
        env.set("saved_entry", entry)
    }

    /// Make `entry` the default for every boot from now on. Creates the file if missing.
    pub fn set(path: &Path, entry: &str) -> Result<UndoRecord, OneShotError> {
        edit_env(path, |env| Self::apply(env, entry))
    }
}
