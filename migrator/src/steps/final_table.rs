//! The end of a flash: the final partition table (the image's, grown over staging when
//! the plan says so) and the head that commits it, written at disk byte 0 and read back.
//! Used by the `finalize` step and by a finish from the relay.

use std::fs::File;
use std::io;
use std::path::Path;

use disk_layout::units as lu;
use disk_layout::PartitionTable;
use plan::Plan;

use super::flash_plan::FlashStepError;
use super::written_last;
use crate::flash::FlashTarget;

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FlashStepError {
    let path = path.to_path_buf();
    move |source| FlashStepError::Io { action, path, source }
}

/// Write `head` at disk byte 0 (the commit point), sync, drop the cache, read back.
pub fn commit_head<T: FlashTarget + ?Sized>(target: &T, head: &[u8]) -> Result<(), FlashStepError> {
    target.write_all_at(head, 0).map_err(io_err("write the image head to", Path::new("disk")))?;
    target.sync().map_err(io_err("sync", Path::new("disk")))?;
    if let Err(e) = target.drop_cache(0, head.len() as u64) {
        log::warn!("finalize: cannot drop cached head before read-back ({e})");
    }
    let mut back = vec![0u8; head.len()];
    target.read_exact_at(&mut back, 0).map_err(io_err("read back", Path::new("disk")))?;
    if back != head {
        return Err(FlashStepError::HeadMismatch);
    }
    Ok(())
}

/// The pristine EBR sectors of the image's logical partitions, saved on staging
/// before finalize patches them, so that a repeated finalize starts from the image.
pub const IMAGE_EBRS_FILE: &str = "image-ebrs.orig";
const EBR_RECORD: usize = 8 + 512;

fn restore_or_save_ebrs(
    disk: &mut File,
    head: &[u8],
    staging_dir: &Path,
) -> Result<(), FlashStepError> {
    let path = staging_dir.join(IMAGE_EBRS_FILE);
    let disk_path = Path::new("disk");
    match std::fs::read(&path) {
        Ok(saved) if saved.len() % EBR_RECORD == 0 => {
            for record in saved.chunks_exact(EBR_RECORD) {
                let mut lba = [0u8; 8];
                lba.copy_from_slice(&record[..8]);
                let offset = u64::from_le_bytes(lba) * 512;
                FlashTarget::write_all_at(&*disk, &record[8..], offset)
                    .map_err(io_err("restore an image EBR on", disk_path))?;
            }
            disk.sync_data().map_err(io_err("sync", disk_path))?;
            Ok(())
        }
        _ => {
            let table = PartitionTable::read(&mut disk_layout::HeadOverlay::new(head, &mut *disk))?;
            let mut saved = Vec::new();
            for ebr in table.logicals.iter().filter_map(|p| p.ebr) {
                let mut sector = [0u8; 512];
                FlashTarget::read_exact_at(&*disk, &mut sector, ebr.0 * 512)
                    .map_err(io_err("read an image EBR from", disk_path))?;
                saved.extend_from_slice(&ebr.0.to_le_bytes());
                saved.extend_from_slice(&sector);
            }
            crate::durable::write_durably(&path, &saved).map_err(|e| FlashStepError::Io {
                action: "save image EBRs to",
                path: path.clone(),
                source: io::Error::other(e.to_string()),
            })
        }
    }
}

/// Finalize: the image's table (grown over staging when the plan says so)
/// written with the held-back head. Returns the final table. Repeatable: the
/// image's EBRs are put back from `staging_dir` before they are patched again.
/// `last`: the partition written last and the staging file system's mount point, which
/// is sealed before that partition is written, right before the head.
pub fn finalize(
    plan: &Plan,
    disk: &mut File,
    head: &[u8],
    staging_dir: &Path,
    last: Option<(&written_last::HeldBytes, &Path)>,
) -> Result<disk_layout::FinalTable, FlashStepError> {
    let (table, head) = final_head(plan, disk, head, staging_dir)?;
    if let Some((held, staging_root)) = last {
        seal_and_write_last(disk, held, staging_root)?;
    }
    commit_head(&*disk, &head)?;
    Ok(table)
}

/// The final partition table: the image's EBRs written (patched for growth) and the
/// head that commits them, not written yet. Repeatable (the image's EBRs are put back from
/// `staging_dir` first).
pub fn final_head(
    plan: &Plan,
    disk: &mut File,
    head: &[u8],
    staging_dir: &Path,
) -> Result<(disk_layout::FinalTable, Vec<u8>), FlashStepError> {
    restore_or_save_ebrs(disk, head, staging_dir)?;
    let image_table = PartitionTable::read(&mut disk_layout::HeadOverlay::new(head, &mut *disk))?;
    let growth = if plan.finalize.grow_over_staging {
        disk_layout::DataGrowth::OverStaging
    } else {
        disk_layout::DataGrowth::Keep
    };
    let table =
        disk_layout::final_table(&image_table, lu::Sectors(plan.source_disk.size.get()), growth)?;
    let mut head = head.to_vec();
    disk_layout::write_growth(&table, &mut head, disk)?;
    disk.sync_data().map_err(io_err("sync", Path::new("disk")))?;
    match table.growth {
        Some(g) => log::info!(
            "finalize: partition {} grows from sector {} to {}",
            g.number,
            g.old_end.0,
            g.new_end.0
        ),
        None => {
            log::info!("finalize: keeping the image's partition table ({})", plan.finalize.reason)
        }
    }
    Ok((table, head))
}

/// Seal staging, then write the partition held back for last over it.
pub fn seal_and_write_last(
    disk: &File,
    held: &written_last::HeldBytes,
    staging_root: &Path,
) -> Result<(), FlashStepError> {
    written_last::seal_staging(staging_root)?;
    Ok(written_last::write(disk, held)?)
}
