//! Partitions written last (`plan.layout.written_last`): on a resinOS 1.x disk the staging
//! area (the spare root `resin-updt`) lies inside the 2.x image's `resin-rootB`. The flash
//! leaves that partition's bytes alone ([`crate::flash::HeldRange`]: neither written nor
//! verified); finalize writes them after restore, when nothing on staging is needed any
//! more, and before the image's first MiB (the commit point):
//!
//! 1. [`collect`] decodes the staged image once more, keeps the partition's non-zero 64 KiB
//!    granules in memory and checks the whole decoded stream against the plan's sha256;
//! 2. [`seal_staging`] stops every write to staging (log file detached, file system
//!    remounted read-only), so nothing the kernel flushes later lands in the new partition;
//! 3. [`write`] writes the partition (zeros included), syncs and reads it back.
//!
//! After step 2 the journal cannot be written: the step that follows is the head commit,
//! and the migrator reboots into resinOS without recording it.

use std::path::Path;

use plan::Plan;
use sha2::{Digest, Sha256};

use crate::flash::decoded::{self, ImageReadError};
use crate::flash::{FlashTarget, HeldRange, HeldRanges, HeldRangesError, HEAD_BYTES};

/// Granule in which the held partition is kept in memory (all-zero granules are not kept).
const GRANULE: usize = 64 * 1024;
/// At most this many non-zero bytes of the held partition are kept in memory.
pub const MAX_HELD_BYTES: u64 = 256 * 1024 * 1024;
const CHUNK: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WrittenLastError {
    #[error("written_last: {0}")]
    Plan(String),
    #[error("written_last: {0}")]
    HeldRanges(#[from] HeldRangesError),
    #[error("the written-last partition holds more than {limit} non-zero bytes, more than the migrator keeps in memory; use an image whose {name} is smaller or empty")]
    TooLarge { name: String, limit: u64 },
    #[error("the staged image decodes to sha256 {actual}, not the plan's {expected}; the staging partition is damaged, reflash the device")]
    RawDigest { expected: String, actual: String },
    #[error("{name} did not read back identical after it was written last (near disk byte {offset}); the disk is failing")]
    ReadBack { name: String, offset: u64 },
    #[error("cannot seal the staging file system {at}: {source}")]
    Seal { at: String, source: nix::Error },
    #[error(transparent)]
    Image(#[from] ImageReadError),
    #[error("cannot {action} the disk while writing the held partition: {source}")]
    Io { action: &'static str, source: std::io::Error },
}

fn io(action: &'static str) -> impl FnOnce(std::io::Error) -> WrittenLastError {
    move |source| WrittenLastError::Io { action, source }
}

/// The written-last partition's image byte range and name; `None` for plans without one.
pub fn held_range(plan: &Plan) -> Result<Option<(HeldRange, String)>, WrittenLastError> {
    let names = &plan.layout.written_last;
    if names.len() > 1 {
        return Err(WrittenLastError::Plan(format!(
            "{} partitions are written last ({}); the migrator holds back one",
            names.len(),
            names.join(", ")
        )));
    }
    let Some(name) = names.first() else {
        return Ok(None);
    };
    let part = plan
        .layout
        .by_name(name)
        .ok_or_else(|| WrittenLastError::Plan(format!("'{name}' is not a target partition")))?;
    let units = |e: plan::UnitError| WrittenLastError::Plan(format!("'{name}': {e}"));
    let start = part.image_offset(&plan.layout).map_err(units)?.get();
    let end = start + part.size_bytes(&plan.layout).map_err(units)?.get();
    // Image offset and disk offset coincide: the image is written from disk byte 0.
    let disk = part.disk_offset(plan.source_disk.sector_size).map_err(units)?.get();
    if disk != start || start < HEAD_BYTES {
        return Err(WrittenLastError::Plan(format!("'{name}' starts at image byte {start} but disk byte {disk}; the migrator writes the image from disk byte 0, after its first MiB")));
    }
    Ok(Some((HeldRange { start, end }, name.clone())))
}

/// The partition the firmware loads the migration kernel from (`grub.route =
/// uefi-boot-next`, `uboot-trial` or `pi-firmware-trial`: resin-boot, whose `swapover/` holds
/// it): held back from the flash and brought to its new contents by restore, which carry the
/// kernel on (written whole on UEFI, [`super::boot_image`]; file by file on U-Boot and the
/// Pi, [`super::boot_update`]).
/// `None` for every other route.
pub fn boot_range(plan: &Plan) -> Result<Option<(HeldRange, String)>, WrittenLastError> {
    if !resumes_from_boot_partition(plan.grub.route) {
        return Ok(None);
    }
    let boot = plan.layout.by_role(plan::PartitionRole::Boot).ok_or_else(|| {
        WrittenLastError::Plan("the layout has no boot partition to hold back".into())
    })?;
    let units = |e: plan::UnitError| WrittenLastError::Plan(format!("'{}': {e}", boot.name));
    let start = boot.image_offset(&plan.layout).map_err(units)?.get();
    let end = start + boot.size_bytes(&plan.layout).map_err(units)?.get();
    let disk = boot.disk_offset(plan.source_disk.sector_size).map_err(units)?.get();
    if disk != start || start < HEAD_BYTES {
        return Err(WrittenLastError::Plan(format!("'{}' starts at image byte {start} but disk byte {disk}; the migrator writes the image from disk byte 0, after its first MiB", boot.name)));
    }
    Ok(Some((HeldRange { start, end }, boot.name.clone())))
}

/// The routes whose committed resume boots the migrator from resin-boot after any reset.
fn resumes_from_boot_partition(route: plan::GrubRoute) -> bool {
    matches!(
        route,
        plan::GrubRoute::UefiBootNext
            | plan::GrubRoute::UbootTrial
            | plan::GrubRoute::PiFirmwareTrial
    )
}

/// Every range the flash leaves alone besides the head: the partition written last and,
/// on the UEFI route, the boot partition.
pub fn held_ranges(plan: &Plan) -> Result<HeldRanges, WrittenLastError> {
    let list: Vec<HeldRange> =
        held_range(plan)?.into_iter().chain(boot_range(plan)?).map(|(range, _)| range).collect();
    Ok(HeldRanges::new(&list)?)
}

/// Why the migrator refuses a plan when it reads it, before anything is written.
#[derive(Debug, thiserror::Error)]
pub enum PlanRefusal {
    #[error("target partition '{name}': {source}; re-stage")]
    TargetPartition { name: String, source: plan::UnitError },
    #[error("the staging partition ({staging}) overlaps the target partition '{name}' ({extent}), which is written before the migration is done; re-stage with a plan that writes it last or stages elsewhere")]
    StagingOverlap { staging: plan::Extent, name: String, extent: plan::Extent },
    #[error(transparent)]
    WrittenLast(#[from] WrittenLastError),
    #[error("the layout has no data partition to grow; re-stage with a resinOS image")]
    NoDataPartition,
    #[error("the layout's data partition '{data}' is not its last ('{after}' ends after it): finalize would grow '{after}' over the freed staging area instead; re-stage with a resinOS image whose data partition is last")]
    DataNotLast { data: String, after: String },
    #[error("it names no data partition to mount at {mount} for the backup (source_data); re-plan with this stager", mount = crate::mounts::SOURCE_DATA_MOUNT)]
    NoSourceData,
    #[error("backup volume '{volume}' is estimated at {estimated}, but staging is a FAT file system, which holds no file of {limit} or more (its archive is one file); re-stage with less data in it")]
    BackupTooLargeForFat { volume: String, estimated: plan::Bytes, limit: plan::Bytes },
    #[error("profile {profile} is a resinOS 1.x source whose migration environment is armed through {route:?}, which nothing starts again after a power cut; \
             only UEFI boards (route uefi-boot-next: the firmware's boot order brings the migrator back), U-Boot boards (route uboot-trial: the committed uEnv.txt does) and Raspberry Pis (route pi-firmware-trial: the committed config.txt does) are migrated from resinOS 1.x")]
    NotResumable { profile: String, route: plan::GrubRoute },
}

/// What the migrator must refuse when it reads the plan, before anything is written:
/// a staging partition that a partition written before the end would overwrite, and a
/// resinOS 1.x plan it could not resume after a power cut (boot-file routes) or whose
/// data partition it would not find.
pub fn check_plan(plan: &Plan) -> Result<(), PlanRefusal> {
    let staging = plan.staging.partition.extent();
    let sector = plan.source_disk.sector_size;
    for part in &plan.layout.partitions {
        let extent = part
            .disk_extent(&plan.layout, sector)
            .map_err(|source| PlanRefusal::TargetPartition { name: part.name.clone(), source })?;
        if extent.overlaps(&staging) && !plan.layout.written_last.contains(&part.name) {
            return Err(PlanRefusal::StagingOverlap { staging, name: part.name.clone(), extent });
        }
    }
    held_range(plan)?;
    backups_fit_staging(plan)?;
    if plan.finalize.grow_over_staging {
        data_ends_last(plan)?;
    }
    if plan.profile.source_kind == plan::SourceKind::Resinos1x {
        if plan.source_data.is_none() && !plan.backup.volumes.is_empty() {
            return Err(PlanRefusal::NoSourceData);
        }
        if !resumes_from_boot_partition(plan.grub.route) {
            // Boot-file routes: nothing brings the migrator back after a power cut (no boot
            // order, no committed uEnv.txt or config.txt), so the flash must not begin.
            return Err(PlanRefusal::NotResumable {
                profile: plan.profile.name.clone(),
                route: plan.grub.route,
            });
        }
    }
    Ok(())
}

/// FAT32's largest file (4 GiB - 1 byte, its size field is 32 bits): each backup volume is one
/// archive on staging, which is a FAT32 on the Raspberry Pi (contract §2.2, R11).
pub const FAT_FILE_LIMIT: plan::Bytes = plan::Bytes(1 << 32);

fn backups_fit_staging(plan: &Plan) -> Result<(), PlanRefusal> {
    if plan.staging.fs_type != plan::FsType::Vfat {
        return Ok(());
    }
    for volume in &plan.backup.volumes {
        let estimated = plan::Bytes(volume.items.iter().map(|i| i.estimated_size.get()).sum());
        if estimated >= FAT_FILE_LIMIT {
            return Err(PlanRefusal::BackupTooLargeForFat {
                volume: volume.name.clone(),
                estimated,
                limit: FAT_FILE_LIMIT,
            });
        }
    }
    Ok(())
}

/// Finalize grows the partition that ends last (and its extended partition) to the disk's
/// end, as resinOS's `resindataexpander` grows partitions 4 and 6 (extended, resin-data):
/// the two agree only when the data partition ends last.
fn data_ends_last(plan: &Plan) -> Result<(), PlanRefusal> {
    let data =
        plan.layout.by_role(plan::PartitionRole::Data).ok_or(PlanRefusal::NoDataPartition)?;
    let end = |p: &plan::TargetPartition| p.image_start.get().saturating_add(p.size.get());
    match plan.layout.partitions.iter().find(|p| end(p) > end(data)) {
        Some(after) => {
            Err(PlanRefusal::DataNotLast { data: data.name.clone(), after: after.name.clone() })
        }
        None => Ok(()),
    }
}

/// The held partition's bytes, as non-zero granules (disk byte offset, bytes).
#[derive(Debug)]
pub struct HeldBytes {
    pub range: HeldRange,
    pub name: String,
    granules: Vec<(u64, Vec<u8>)>,
}

impl HeldBytes {
    /// `len` bytes of the partition at image offset `offset` (zeros where no granule is kept).
    fn fill(&self, offset: u64, buf: &mut [u8]) {
        buf.fill(0);
        let end = offset + buf.len() as u64;
        let first = self.granules.partition_point(|(at, g)| at + g.len() as u64 <= offset);
        for (at, granule) in self.granules[first..].iter().take_while(|(at, _)| *at < end) {
            let from = offset.max(*at);
            let to = end.min(at + granule.len() as u64);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&granule[(from - at) as usize..(to - at) as usize]);
        }
    }
}

impl HeldBytes {
    /// `bytes` (the whole range, from its start) as non-zero granules.
    pub fn from_bytes(
        range: HeldRange,
        name: &str,
        bytes: &[u8],
    ) -> Result<HeldBytes, WrittenLastError> {
        if bytes.len() as u64 != range.end - range.start {
            return Err(WrittenLastError::Plan(format!(
                "{name}: {} bytes for a range of {}",
                bytes.len(),
                range.end - range.start
            )));
        }
        let granules = bytes
            .chunks(GRANULE)
            .enumerate()
            .filter(|(_, g)| g.iter().any(|b| *b != 0))
            .map(|(i, g)| (range.start + (i * GRANULE) as u64, g.to_vec()))
            .collect();
        Ok(HeldBytes { range, name: name.to_string(), granules })
    }

    /// The granules as one byte stream: per granule its image offset (u64 LE), length
    /// (u32 LE) and bytes.
    pub fn encode_granules(&self) -> Vec<u8> {
        let total: usize = self.granules.iter().map(|(_, g)| 12 + g.len()).sum();
        let mut out = Vec::with_capacity(total);
        for (at, granule) in &self.granules {
            out.extend_from_slice(&at.to_le_bytes());
            out.extend_from_slice(&(granule.len() as u32).to_le_bytes());
            out.extend_from_slice(granule);
        }
        out
    }

    /// Inverse of [`HeldBytes::encode_granules`]; every granule must lie inside `range`.
    pub fn decode_granules(
        range: HeldRange,
        name: &str,
        mut bytes: &[u8],
    ) -> Result<HeldBytes, WrittenLastError> {
        let bad = |why: &str| {
            WrittenLastError::Plan(format!("{name}: the saved bytes are damaged ({why})"))
        };
        let mut granules: Vec<(u64, Vec<u8>)> = Vec::new();
        while !bytes.is_empty() {
            let (header, rest) = bytes.split_at_checked(12).ok_or_else(|| bad("short header"))?;
            let mut at = [0u8; 8];
            at.copy_from_slice(&header[..8]);
            let mut len = [0u8; 4];
            len.copy_from_slice(&header[8..]);
            let (at, len) = (u64::from_le_bytes(at), u32::from_le_bytes(len) as usize);
            let (granule, rest) = rest.split_at_checked(len).ok_or_else(|| bad("short granule"))?;
            let after_last = granules.last().map_or(range.start, |(a, g)| a + g.len() as u64);
            if at < after_last || at + len as u64 > range.end {
                return Err(bad("granule out of order or outside the range"));
            }
            granules.push((at, granule.to_vec()));
            bytes = rest;
        }
        Ok(HeldBytes { range, name: name.to_string(), granules })
    }
}

/// Decode the whole staged image, keep the held partition's non-zero granules, check the
/// decoded stream's sha256 against the plan. Reads staging only.
pub fn collect(
    plan: &Plan,
    image_path: &Path,
    range: HeldRange,
    name: &str,
) -> Result<HeldBytes, WrittenLastError> {
    let mut reader = decoded::decoded_reader(image_path)?;
    let mut hasher = Sha256::new();
    let mut granules = Vec::new();
    let mut kept = 0u64;
    let mut offset = 0u64;
    let mut buf = vec![0u8; GRANULE];
    loop {
        let n = resin_image::read_full(&mut reader, &mut buf)
            .map_err(decoded::io_err("decode", image_path))?;
        if n == 0 {
            break;
        }
        let data = &buf[..n];
        hasher.update(data);
        let (from, to) = (
            range.start.clamp(offset, offset + n as u64),
            range.end.clamp(offset, offset + n as u64),
        );
        let held = &data[(from - offset) as usize..(to - offset) as usize];
        if held.iter().any(|b| *b != 0) {
            kept += held.len() as u64;
            if kept > MAX_HELD_BYTES {
                return Err(WrittenLastError::TooLarge {
                    name: name.to_string(),
                    limit: MAX_HELD_BYTES,
                });
            }
            granules.push((from, held.to_vec()));
        }
        offset += n as u64;
    }
    let actual = plan::Sha256Hex::from_digest(&hasher.finalize());
    if actual != plan.image.raw_sha256 {
        return Err(WrittenLastError::RawDigest {
            expected: plan.image.raw_sha256.0.clone(),
            actual: actual.0,
        });
    }
    log::info!(
        "finalize: {name} ({} bytes, {kept} of them non-zero) decoded for the last write",
        range.end - range.start
    );
    Ok(HeldBytes { range, name: name.to_string(), granules })
}

/// Stop every write to staging: when `staging_root` is a mount point, the log file is
/// detached (synced) and the file system remounted read-only (which flushes it). Plain
/// directories (the steps run on trees in tests) are only synced.
pub fn seal_staging(staging_root: &Path) -> Result<(), WrittenLastError> {
    use nix::mount::{mount, MsFlags};
    use std::os::unix::fs::MetadataExt;
    let dev = |path: &Path| std::fs::metadata(path).map(|m| m.dev());
    let mount_point = match (dev(staging_root), dev(&staging_root.join(".."))) {
        (Ok(own), Ok(parent)) => own != parent,
        _ => true,
    };
    if !mount_point {
        crate::logging::flush();
        nix::unistd::sync();
        return Ok(());
    }
    crate::logging::detach_file();
    nix::unistd::sync();
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    mount(None::<&str>, staging_root, None::<&str>, flags, None::<&str>).map_err(|source| {
        WrittenLastError::Seal { at: staging_root.display().to_string(), source }
    })?;
    log::info!(
        "finalize: staging {} sealed read-only; nothing more is written there",
        staging_root.display()
    );
    Ok(())
}

/// Write the held partition (zeros included), sync, read back from the medium and compare.
pub fn write<T: FlashTarget + ?Sized>(disk: &T, held: &HeldBytes) -> Result<(), WrittenLastError> {
    let HeldRange { start, end } = held.range;
    let mut buf = vec![0u8; CHUNK];
    let mut offset = start;
    while offset < end {
        let piece = &mut buf[..((end - offset) as usize).min(CHUNK)];
        held.fill(offset, piece);
        disk.write_all_at(piece, offset).map_err(io("write"))?;
        if offset == start {
            // The partition's first piece (a staging file system's superblock) is on the
            // medium before anything else: from then on, the next boot sees the staged file
            // system gone (another UUID) and finishes from the relay, never from a staging
            // area that is half written over.
            disk.sync().map_err(io("sync"))?;
        }
        offset += piece.len() as u64;
    }
    disk.sync().map_err(io("sync"))?;
    if let Err(e) = disk.drop_cache(start, end - start) {
        log::warn!("finalize: cannot drop cached pages of {} before read-back ({e})", held.name);
    }
    let mut back = vec![0u8; CHUNK];
    let mut offset = start;
    while offset < end {
        let len = ((end - offset) as usize).min(CHUNK);
        held.fill(offset, &mut buf[..len]);
        disk.read_exact_at(&mut back[..len], offset).map_err(io("read back"))?;
        if back[..len] != buf[..len] {
            return Err(WrittenLastError::ReadBack { name: held.name.clone(), offset });
        }
        offset += len as u64;
    }
    log::info!(
        "finalize: {} written last ({} bytes) and read back identical",
        held.name,
        end - start
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_splits_around_the_held_ranges() {
        let one = HeldRanges::one(HeldRange { start: 100, end: 200 });
        assert_eq!(HeldRanges::NONE.outside(0, 50), [(0, 50), (0, 0), (0, 0)]);
        assert_eq!(one.outside(0, 50), [(0, 50), (0, 0), (0, 0)], "before");
        assert_eq!(one.outside(250, 50), [(0, 50), (0, 0), (0, 0)], "after");
        assert_eq!(one.outside(50, 100), [(0, 50), (100, 0), (0, 0)], "into");
        assert_eq!(one.outside(150, 100), [(0, 0), (50, 50), (0, 0)], "out of");
        assert_eq!(one.outside(50, 200), [(0, 50), (150, 50), (0, 0)], "across");
        assert_eq!(one.outside(120, 50), [(0, 0), (50, 0), (0, 0)], "inside");
        let two = HeldRanges::new(&[
            HeldRange { start: 300, end: 400 },
            HeldRange { start: 100, end: 200 },
        ])
        .unwrap();
        assert_eq!(two.iter().map(|r| r.start).collect::<Vec<_>>(), [100, 300], "sorted");
        assert_eq!(two.outside(0, 500), [(0, 100), (200, 100), (400, 100)], "across both");
        assert_eq!(
            two.outside(150, 200),
            [(0, 0), (50, 100), (200, 0)],
            "out of one into the other"
        );
        assert!(
            HeldRanges::new(&[
                HeldRange { start: 100, end: 200 },
                HeldRange { start: 150, end: 250 }
            ])
            .is_err(),
            "overlap"
        );
        assert!(HeldRanges::new(&[HeldRange { start: 100, end: 100 }]).is_err(), "empty");
    }

    #[test]
    fn granules_survive_their_encoding_and_damage_is_refused() {
        let range = HeldRange { start: 1 << 20, end: (1 << 20) + 3 * GRANULE as u64 + 100 };
        let mut bytes = vec![0u8; (range.end - range.start) as usize];
        bytes[5] = 1;
        bytes[2 * GRANULE + 7] = 2;
        bytes[3 * GRANULE + 99] = 3;
        let held = HeldBytes::from_bytes(range, "p", &bytes).unwrap();
        assert_eq!(held.granules.len(), 3, "the all-zero granule is not kept");
        let encoded = held.encode_granules();
        let back = HeldBytes::decode_granules(range, "p", &encoded).unwrap();
        let mut filled = vec![9u8; bytes.len()];
        back.fill(range.start, &mut filled);
        assert_eq!(filled, bytes);
        assert!(
            HeldBytes::decode_granules(range, "p", &encoded[..encoded.len() - 1]).is_err(),
            "truncated"
        );
        let shifted = HeldRange { start: range.start + 1, end: range.end };
        assert!(HeldBytes::decode_granules(shifted, "p", &encoded).is_err(), "outside the range");
        assert!(HeldBytes::from_bytes(range, "p", &bytes[1..]).is_err(), "wrong length");
    }

    #[test]
    fn fill_puts_granules_back_with_zeros_between() {
        let held = HeldBytes {
            range: HeldRange { start: 0, end: 40 },
            name: "p".into(),
            granules: vec![(4, vec![1; 4]), (20, vec![2; 8])],
        };
        let mut buf = [9u8; 20];
        held.fill(6, &mut buf);
        let mut expected = [0u8; 20];
        expected[..2].fill(1);
        expected[14..20].fill(2);
        assert_eq!(buf, expected);
    }
}
