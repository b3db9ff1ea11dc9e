//! Restore backup archives into the new data file system, keeping ownership,
//! modes, mtimes, symlinks, hard links and xattrs, and make the result durable.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use plan::{PartitionRole, Plan};

use crate::backup::{archive_path, BACKUP_DIR};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error("backup volume '{volume}' is to be restored onto {role}, but only resin-data is supported; fix the board profile")]
    UnsupportedRole { volume: String, role: PartitionRole },
    #[error("restore path '{0}' leaves the data file system; fix the board profile")]
    BadPath(String),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RestoreError {
    let path = path.to_path_buf();
    move |source| RestoreError::Io { action, path, source }
}

/// `root` joined with the absolute or relative `path`, refusing `..`.
pub fn under(root: &Path, path: &str) -> Result<PathBuf, RestoreError> {
    let relative = path.trim_start_matches('/');
    if relative.split('/').any(|c| c == "..") {
        return Err(RestoreError::BadPath(path.to_string()));
    }
    Ok(root.join(relative))
}

/// Unpack `archive` under `dest` (created if needed), overwriting what a previous
/// attempt left. Returns the number of entries.
pub fn extract(archive: &Path, dest: &Path) -> Result<usize, RestoreError> {
    std::fs::create_dir_all(dest).map_err(io_err("create", dest))?;
    let count = {
        let file = File::open(archive).map_err(io_err("open", archive))?;
        let mut reader = tar::Archive::new(io::BufReader::new(file));
        reader.entries().map_err(io_err("read", archive))?.count()
    };
    let file = File::open(archive).map_err(io_err("open", archive))?;
    let mut reader = tar::Archive::new(io::BufReader::new(file));
    reader.set_preserve_permissions(true);
    reader.set_preserve_ownerships(true);
    reader.set_preserve_mtime(true);
    reader.set_unpack_xattrs(true);
    reader.set_overwrite(true);
    reader.unpack(dest).map_err(io_err("unpack", archive))?;
    Ok(count)
}

/// Flush the whole file system holding `path` (syncfs).
pub fn sync_fs(path: &Path) -> Result<(), RestoreError> {
    let dir = File::open(path).map_err(io_err("open", path))?;
    nix::unistd::syncfs(&dir).map_err(|e| RestoreError::Io { action: "syncfs", path: path.to_path_buf(), source: e.into() })
}

/// Where the migration log and the plan go on resin-data.
pub const LOG_DIR_ON_DATA: &str = "swapover";

/// Restore every volume of `plan` from `staging_dir/backup` onto the data file
/// system mounted at `data_root`; then copy the log and plan for diagnosis; syncfs.
pub fn restore_data(plan: &Plan, staging_dir: &Path, data_root: &Path) -> Result<usize, RestoreError> {
    let mut total = 0;
    for volume in &plan.backup.volumes {
        if volume.restore_to.partition != PartitionRole::Data {
            return Err(RestoreError::UnsupportedRole { volume: volume.name.clone(), role: volume.restore_to.partition });
        }
        let dest = under(data_root, &volume.restore_to.path)?;
        let archive = archive_path(&staging_dir.join(BACKUP_DIR), &volume.name);
        let count = extract(&archive, &dest)?;
        log::info!("restore: volume {} ({count} entries) into {}", volume.name, volume.restore_to.path);
        total += count;
    }
    copy_diagnostics(staging_dir, data_root)?;
    sync_fs(data_root)?;
    Ok(total)
}

/// Copy `migration.log` and `plan.json` from staging to `<data>/swapover/`.
pub fn copy_diagnostics(staging_dir: &Path, data_root: &Path) -> Result<(), RestoreError> {
    let dir = data_root.join(LOG_DIR_ON_DATA);
    std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
    crate::logging::flush();
    for name in ["migration.log", "plan.json"] {
        let from = staging_dir.join(name);
        if from.exists() {
            let to = dir.join(name);
            std::fs::copy(&from, &to).map_err(io_err("copy", &from))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_paths_stay_under_the_root() {
        assert_eq!(under(Path::new("/mnt/data"), "/resin-data/app").unwrap(), PathBuf::from("/mnt/data/resin-data/app"));
        assert_eq!(under(Path::new("/mnt/data"), "/").unwrap(), PathBuf::from("/mnt/data/"));
        assert!(under(Path::new("/mnt/data"), "/resin-data/../../etc").is_err());
    }
}
