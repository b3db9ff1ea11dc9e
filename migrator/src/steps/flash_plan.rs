//! The flash, verify and commit steps around `migrator::flash`: where the image
//! goes (disk offset 0, never past the layout limit), how progress is journaled,
//! and how a resumed run gets back the write hashes and the held-back head that
//! only existed in memory (by decoding the image again without writing).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::flash::{
    self, FlashRequest, FlashTarget, HeldRanges, Placement, Progress, Sha256Digest, WrittenImage,
};
use disk_layout::units::Sectors512;
use disk_layout::{units as lu, HostDisk, PartitionTable};
use plan::{Plan, SectorSize};

#[derive(Debug, thiserror::Error)]
pub enum FlashStepError {
    #[error(transparent)]
    Flash(#[from] flash::FlashError),
    #[error(transparent)]
    Layout(#[from] disk_layout::LayoutError),
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error("the plan's disk uses {0}; the migrator writes 512-byte-sector MBR disks only")]
    SectorSize(SectorSize),
    #[error("plan sha256 '{0}' is malformed; re-stage")]
    BadDigest(String),
    #[error("the plan's layout region (sectors {start} + {len}) reaches past the end of any disk ({source}); re-stage")]
    Region { start: u64, len: u64, source: plan::UnitError },
    #[error("the journal says {journal} image bytes were written, the staged image has {image}; the image changed since flashing began, re-stage is impossible now: reflash the device")]
    ImageChanged { journal: u64, image: u64 },
    #[error("cannot record flash progress in the journal: {0}")]
    Journal(#[source] migration_journal::JournalError),
    #[error("staged image {path} is {bytes} bytes with sha256 {actual}, not what the plan says; the staging partition is damaged, re-stage")]
    StagedImage { path: PathBuf, bytes: u64, actual: String },
    #[error("the committed head did not read back identical; the disk is failing")]
    HeadMismatch,
    #[error(transparent)]
    WrittenLast(#[from] super::written_last::WrittenLastError),
    #[error(transparent)]
    Image(#[from] flash::decoded::ImageReadError),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FlashStepError {
    let path = path.to_path_buf();
    move |source| FlashStepError::Io { action, path, source }
}

/// Where the image goes, and the range (a partition written last) the flash leaves alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashPlace {
    pub placement: Placement,
    pub held: HeldRanges,
}

/// Where the image may go: from disk byte 0 up to the first of the layout
/// region's end and the limit the disk's own table puts before staging. With a
/// partition written last (the staging area lies inside it), up to the region's end,
/// that partition held back.
pub fn placement<D: io::Read + io::Seek>(
    plan: &Plan,
    disk: &mut D,
) -> Result<FlashPlace, FlashStepError> {
    if plan.source_disk.sector_size != SectorSize::S512 {
        return Err(FlashStepError::SectorSize(plan.source_disk.sector_size));
    }
    let region = plan.layout.region;
    let region_end = region.end().map_err(|source| FlashStepError::Region {
        start: region.start.get(),
        len: region.len.get(),
        source,
    })?;
    let held = super::written_last::held_range(plan)?;
    let end = match &held {
        Some((range, name)) => {
            log::info!(
                "flash: image may occupy disk sectors 0..{}; {name} (bytes {}..{}) is written last",
                region_end.get(),
                range.start,
                range.end
            );
            region_end.get()
        }
        None => {
            let host_table = PartitionTable::read(disk)?;
            let host = HostDisk::from_table(
                &host_table,
                lu::Sectors(plan.old_root.partition.start.get()),
                lu::Sectors(plan.staging.partition.start.get()),
                lu::Sectors(plan.source_disk.size.get()),
            )?;
            let (limit, what) = host.limit();
            let end = limit.0.min(region_end.get());
            log::info!("flash: image may occupy disk sectors 0..{end} (limit: {what} at {}, layout region ends at {})", limit.0, region_end.get());
            end
        }
    };
    let placement =
        Placement { target_offset_bytes: 0, extent_bytes: lu::Sectors(end).bytes_512().0 };
    let held = super::written_last::held_ranges(plan)?;
    Ok(FlashPlace { placement, held })
}

/// The staged image's expected compressed sha256.
pub fn expected_digest(plan: &Plan) -> Result<Sha256Digest, FlashStepError> {
    Sha256Digest::from_hex(&plan.image.compressed_sha256.0)
        .ok_or_else(|| FlashStepError::BadDigest(plan.image.compressed_sha256.0.clone()))
}

/// Write the image (all but its first MiB and the held range), resuming at `resume_from`;
/// `checkpoint` is called with every newly durable image offset (journal it).
pub fn write<T: FlashTarget + ?Sized>(
    image_path: &Path,
    target: &T,
    place: FlashPlace,
    expected: Sha256Digest,
    resume_from: u64,
    sync_every: u64,
    checkpoint: &mut dyn FnMut(u64) -> Result<(), migration_journal::JournalError>,
) -> Result<WrittenImage, FlashStepError> {
    let image = File::open(image_path).map_err(io_err("open", image_path))?;
    let mut request = FlashRequest::new(place.placement);
    request.held = place.held;
    request.resume_from_image_offset = resume_from;
    request.expected_image_sha256 = Some(expected);
    request.sync_every_bytes = sync_every;
    let mut recorded = resume_from;
    let mut journal_error = None;
    let mut last_percent = None;
    let mut on_progress = |p: &Progress| {
        if let Some(total) = p.image_bytes_total.filter(|t| *t > 0) {
            let percent = p.image_bytes_out * 100 / total;
            if last_percent.is_none_or(|last| percent >= last + 10) {
                log::info!(
                    "flash: {percent}% ({} of {} image bytes decoded, {} written)",
                    p.image_bytes_out,
                    total,
                    p.bytes_written
                );
                last_percent = Some(percent);
            }
        }
        if p.durable_image_offset > recorded && journal_error.is_none() {
            match checkpoint(p.durable_image_offset) {
                Ok(()) => recorded = p.durable_image_offset,
                Err(e) => journal_error = Some(e),
            }
        }
    };
    let written = flash::write_image(&image, target, &request, &mut on_progress)?;
    if let Some(e) = journal_error {
        return Err(FlashStepError::Journal(e));
    }
    log::info!(
        "flash: {} image bytes in {:.1} s ({:?})",
        written.image_bytes,
        written.write_time.as_secs_f64(),
        written.mode
    );
    Ok(written)
}

/// Decode the image again without writing anything, to get the hashes and the
/// head of an image written by an earlier boot.
pub fn replay<T: FlashTarget + ?Sized>(
    image_path: &Path,
    target: &T,
    place: FlashPlace,
    expected: Sha256Digest,
    image_bytes: u64,
) -> Result<WrittenImage, FlashStepError> {
    log::info!("flash: decoding the image again (no writes) to recover its hashes");
    let written =
        write(image_path, target, place, expected, image_bytes, u64::MAX / 2, &mut |_| Ok(()))?;
    if written.image_bytes != image_bytes {
        return Err(FlashStepError::ImageChanged {
            journal: image_bytes,
            image: written.image_bytes,
        });
    }
    Ok(written)
}

/// The staged image file's sha256 and size must be the plan's before anything
/// destructive happens (flashing checks it again while decoding, but only at the end).
pub fn check_staged_image(plan: &Plan, image_path: &Path) -> Result<(), FlashStepError> {
    let expected = expected_digest(plan)?;
    let mut file = File::open(image_path).map_err(io_err("open", image_path))?;
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let mut buf = vec![0u8; 1024 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io_err("read", image_path))?;
        if n == 0 {
            break;
        }
        sha2::Digest::update(&mut hasher, &buf[..n]);
        bytes += n as u64;
    }
    let actual = Sha256Digest(sha2::Digest::finalize(hasher).into());
    if bytes != plan.image.compressed_size.get() || actual != expected {
        return Err(FlashStepError::StagedImage {
            path: image_path.to_path_buf(),
            bytes,
            actual: actual.to_string(),
        });
    }
    log::info!(
        "flash: staged image {} verified ({bytes} bytes, sha256 {actual})",
        image_path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use plan::{Extent, Sectors};

    /// A region whose end overflows is named as such, not as a malformed sha256.
    #[test]
    fn an_overflowing_layout_region_is_reported_as_the_region() {
        let mut plan = Plan::stem_example();
        plan.layout.region = Extent::new(Sectors(u64::MAX - 10), Sectors(100));
        let mut disk = io::Cursor::new(vec![0u8; 4096]);
        let error = placement(&plan, &mut disk).unwrap_err();
        assert!(matches!(error, FlashStepError::Region { .. }), "{error:?}");
        let line = error.to_string();
        assert!(!line.contains("sha256") && line.contains("layout region"), "{line}");
    }
}
