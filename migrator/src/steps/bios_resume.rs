//! Making every boot reach the migration environment before the first
//! destructive write, and undoing it when the migration gives up before flashing.
//!
//! Arm: save sectors `0 .. first partition start` to `mbr-gap.orig` on staging
//! (fsynced), then install the staged GRUB `boot.img` + `core.img` into the MBR
//! code area and the embedding gap (`grub::bootcode::install`; the partition
//! table is untouched). The core finds the staging file system by UUID and runs
//! its `grub.cfg`, which boots the migrator again.
//! Roll back: write `mbr-gap.orig` back byte for byte.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use disk_layout::PartitionTable;
use plan::{Bytes, SectorSize};

/// The saved boot area, in the staging directory.
pub const GAP_FILE: &str = "mbr-gap.orig";
pub const BOOT_IMG: &str = "grub/boot.img";
pub const CORE_IMG: &str = "grub/core.img";
const SECTOR: u64 = 512;

#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error("cannot install the resume boot code: {0}")]
    BootCode(#[from] grub::bootcode::BootCodeError),
    #[error("the disk has no MBR partition table: {0}")]
    NoTable(disk_layout::MbrError),
    #[error("the disk has no MBR partition table: no partitions")]
    NoPartitions,
    #[error("the first partition's start: {0}")]
    Units(#[from] plan::UnitError),
    #[error("saved boot area {path} is {found} bytes, expected {expected}; it is damaged, the old boot code cannot be restored automatically")]
    GapSize { path: PathBuf, found: u64, expected: u64 },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ResumeError {
    let path = path.to_path_buf();
    move |source| ResumeError::Io { action, path, source }
}

/// Bytes from the disk start to its first partition (the area boot code lives in).
pub fn gap_len<D: Read + Seek>(disk: &mut D) -> Result<Bytes, ResumeError> {
    let mut sector0 = [0u8; SECTOR as usize];
    disk.seek(SeekFrom::Start(0)).map_err(io_err("seek", Path::new("disk")))?;
    disk.read_exact(&mut sector0).map_err(io_err("read the MBR of", Path::new("disk")))?;
    let table = PartitionTable::read_primaries(&sector0).map_err(ResumeError::NoTable)?;
    let first = table.primaries.iter().map(|p| p.start).min().ok_or(ResumeError::NoPartitions)?;
    Ok(first.to_bytes(SectorSize::S512)?)
}

/// Save the boot area to `staging_dir/mbr-gap.orig` unless a complete copy exists
/// already (a second attempt must not save our own boot code as "original").
pub fn save_gap<D: Read + Seek>(disk: &mut D, staging_dir: &Path) -> Result<PathBuf, ResumeError> {
    let len = gap_len(disk)?;
    let path = staging_dir.join(GAP_FILE);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == len.get()) {
        log::info!("resume: {} already saved", path.display());
        return Ok(path);
    }
    let mut gap = vec![0u8; len.get() as usize];
    disk.seek(SeekFrom::Start(0)).map_err(io_err("seek", &path))?;
    disk.read_exact(&mut gap).map_err(io_err("read the boot area for", &path))?;
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io_err("create", &tmp))?;
    file.write_all(&gap).map_err(io_err("write", &tmp))?;
    file.sync_all().map_err(io_err("fsync", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
    File::open(staging_dir).and_then(|d| d.sync_all()).map_err(io_err("fsync", staging_dir))?;
    Ok(path)
}

/// Save the boot area, then install the staged GRUB boot code. `disk` is synced after.
pub fn arm(disk: &mut File, staging_dir: &Path) -> Result<(), ResumeError> {
    save_gap(disk, staging_dir)?;
    let boot_path = staging_dir.join(BOOT_IMG);
    let core_path = staging_dir.join(CORE_IMG);
    let boot = std::fs::read(&boot_path).map_err(io_err("read", &boot_path))?;
    let core = std::fs::read(&core_path).map_err(io_err("read", &core_path))?;
    let embedding = grub::bootcode::install(disk, &boot, &core)?;
    disk.sync_all().map_err(io_err("fsync", Path::new("disk")))?;
    log::info!(
        "resume: GRUB core in sectors 1..{} boots the migrator from staging",
        1 + embedding.core_sectors.0
    );
    Ok(())
}

/// Write `mbr-gap.orig` back over the boot area and sync: the disk boots as before arming.
pub fn rollback<D: Read + Write + Seek>(
    disk: &mut D,
    staging_dir: &Path,
) -> Result<(), ResumeError> {
    let path = staging_dir.join(GAP_FILE);
    let gap = std::fs::read(&path).map_err(io_err("read", &path))?;
    let expected = gap_len(disk)?;
    if gap.len() as u64 != expected.get() {
        return Err(ResumeError::GapSize {
            path,
            found: gap.len() as u64,
            expected: expected.get(),
        });
    }
    disk.seek(SeekFrom::Start(0)).map_err(io_err("seek", &path))?;
    disk.write_all(&gap).map_err(io_err("write back", &path))?;
    disk.flush().map_err(io_err("flush", &path))?;
    Ok(())
}

/// Whether a saved boot area exists (arm-resume was at least begun).
pub fn gap_saved(staging_dir: &Path) -> bool {
    staging_dir.join(GAP_FILE).exists()
}
