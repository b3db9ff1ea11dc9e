//! Restore backup archives into the new data file system, keeping ownership,
//! modes, mtimes, symlinks, hard links and xattrs, and make the result durable.
//!
//! The data file system is the image's own resin-data (a real image's holds the preloaded
//! supervisor under `docker/`), mounted as flashed: never formatted or emptied. Each volume
//! is unpacked under its restore location only; there, a path the backup also holds takes
//! the backup's bytes and metadata (the customer's data is what is migrated) and every other
//! file of the image stays. Outside the restore locations the migrator adds only
//! `swapover/` (log, plan) and, on the 1.x UEFI route, `swapover-relay/`. Not handled: an
//! image holding a file where the backup has a directory of the same path (or the reverse),
//! or a symlink leading out of the restore location; restore then fails with the path.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use plan::{PartitionRole, Plan};

use super::backup_data::{archive_path, BACKUP_DIR};

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
/// attempt left. Returns the number of entries. The tar crate unpacks files,
/// directories, symlinks and hard links; device nodes and fifos are made here, and
/// directory mtimes are set last (after their contents stopped changing them).
pub fn extract(archive: &Path, dest: &Path) -> Result<usize, RestoreError> {
    std::fs::create_dir_all(dest).map_err(io_err("create", dest))?;
    let file = File::open(archive).map_err(io_err("open", archive))?;
    let mut reader = tar::Archive::new(io::BufReader::new(file));
    reader.set_preserve_permissions(true);
    reader.set_preserve_ownerships(true);
    reader.set_preserve_mtime(true);
    reader.set_unpack_xattrs(true);
    reader.set_overwrite(true);
    let mut count = 0;
    let mut dir_times = Vec::new();
    for entry in reader.entries().map_err(io_err("read", archive))? {
        let mut entry = entry.map_err(io_err("read", archive))?;
        count += 1;
        let kind = entry.header().entry_type();
        if kind.is_fifo() || kind.is_character_special() || kind.is_block_special() {
            let relative = safe_relative(&entry.path_bytes())?;
            make_special(&dest.join(relative), entry.header())?;
            continue;
        }
        let target = dest.join(safe_relative(&entry.path_bytes())?);
        if kind.is_dir() {
            dir_times.push((target, entry.header().mtime().unwrap_or(0)));
        } else if std::fs::symlink_metadata(&target).is_ok_and(|m| !m.is_dir()) {
            // A previous attempt's copy: replaced (the tar crate refuses to re-link over it).
            std::fs::remove_file(&target).map_err(io_err("replace", &target))?;
        }
        entry.unpack_in(dest).map_err(io_err("unpack", archive))?;
    }
    for (dir, mtime) in dir_times.iter().rev() {
        set_times(dir, *mtime)?;
    }
    Ok(count)
}

/// An archive member name as a relative path without `..` or root components.
fn safe_relative(name: &[u8]) -> Result<PathBuf, RestoreError> {
    use std::os::unix::ffi::OsStrExt;
    let path = Path::new(std::ffi::OsStr::from_bytes(name));
    let plain = path
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
    if !plain {
        return Err(RestoreError::BadPath(String::from_utf8_lossy(name).into_owned()));
    }
    Ok(path.to_path_buf())
}

fn set_times(path: &Path, mtime: u64) -> Result<(), RestoreError> {
    // time_t is 32 bits on 32-bit ARM glibc: a time past 2038 is kept as its latest.
    let secs = libc::time_t::try_from(mtime).unwrap_or(libc::time_t::MAX);
    let time = nix::sys::time::TimeVal::new(secs, 0);
    nix::sys::stat::lutimes(path, &time, &time).map_err(|e| RestoreError::Io {
        action: "set the times of",
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// A fifo or device node as the header describes it (replacing what is there).
fn make_special(path: &Path, header: &tar::Header) -> Result<(), RestoreError> {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    let kind = header.entry_type();
    let bad = |what: &str| RestoreError::Io {
        action: "read the header of",
        path: path.to_path_buf(),
        source: io::Error::other(what.to_string()),
    };
    let mode = header.mode().map_err(|_| bad("mode"))?;
    let uid = header.uid().map_err(|_| bad("uid"))?;
    let gid = header.gid().map_err(|_| bad("gid"))?;
    let major = header.device_major().ok().flatten().unwrap_or(0);
    let minor = header.device_minor().ok().flatten().unwrap_or(0);
    let flag = if kind.is_fifo() {
        SFlag::S_IFIFO
    } else if kind.is_block_special() {
        SFlag::S_IFBLK
    } else {
        SFlag::S_IFCHR
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    }
    if std::fs::symlink_metadata(path).is_ok() {
        std::fs::remove_file(path).map_err(io_err("replace", path))?;
    }
    let sys = |action: &'static str| {
        move |e: nix::Error| RestoreError::Io { action, path: path.to_path_buf(), source: e.into() }
    };
    mknod(
        path,
        flag,
        Mode::from_bits_truncate(mode & 0o777),
        makedev(u64::from(major), u64::from(minor)),
    )
    .map_err(sys("create"))?;
    let owner = |id: u64| u32::try_from(id).ok();
    std::os::unix::fs::lchown(path, owner(uid), owner(gid))
        .map_err(io_err("set the owner of", path))?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode & 0o7777))
        .map_err(io_err("set the mode of", path))?;
    set_times(path, header.mtime().unwrap_or(0))
}

/// Flush the whole file system holding `path` (syncfs).
pub fn sync_fs(path: &Path) -> Result<(), RestoreError> {
    let dir = File::open(path).map_err(io_err("open", path))?;
    nix::unistd::syncfs(&dir).map_err(|e| RestoreError::Io {
        action: "syncfs",
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// Where the migration log and the plan go on resin-data.
pub const LOG_DIR_ON_DATA: &str = "swapover";

/// Restore every volume of `plan` from `staging_dir/backup` onto the data file
/// system mounted at `data_root`; then copy the log and plan for diagnosis; syncfs.
pub fn restore_data(
    plan: &Plan,
    staging_dir: &Path,
    data_root: &Path,
) -> Result<usize, RestoreError> {
    let mut total = 0;
    for volume in &plan.backup.volumes {
        if volume.restore_to.partition != PartitionRole::Data {
            return Err(RestoreError::UnsupportedRole {
                volume: volume.name.clone(),
                role: volume.restore_to.partition,
            });
        }
        let dest = under(data_root, &volume.restore_to.path)?;
        let archive = archive_path(&staging_dir.join(BACKUP_DIR), &volume.name);
        let count = extract(&archive, &dest)?;
        log::info!(
            "restore: volume {} ({count} entries) into {}",
            volume.name,
            volume.restore_to.path
        );
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
        assert_eq!(
            under(Path::new("/mnt/data"), "/resin-data/app").unwrap(),
            PathBuf::from("/mnt/data/resin-data/app")
        );
        assert_eq!(under(Path::new("/mnt/data"), "/").unwrap(), PathBuf::from("/mnt/data/"));
        assert!(under(Path::new("/mnt/data"), "/resin-data/../../etc").is_err());
    }
}
