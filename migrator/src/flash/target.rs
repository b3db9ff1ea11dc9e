//! Writing decoded bytes to the target: placement, extent, held-back head, resume skip,
//! zero-run rule, large aligned writes, hashing of what was written.

use super::digest::{ReadBackSum, ReadBackSummer};
use super::direct::AlignedBuf;
use super::error::FlashError;
use super::flash_target::FlashTarget;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// The image's first MiB (MBR, boot code, the gap GRUB-like loaders use): held back
/// and written last by [`super::commit_head`], so a half-flashed disk never looks bootable.
pub const HEAD_BYTES: u64 = 1024 * 1024;

/// Writes go out in pieces of this size, at image offsets that are multiples of it.
pub const WRITE_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// Granule for the zero-run rule (only used when the target is known to read as zero).
const ZERO_GRANULE_BYTES: usize = 64 * 1024;

/// The error for a failed write of `len` bytes at target byte `offset` (one attempt).
pub(crate) fn write_error<T: FlashTarget + ?Sized>(
    target: &T,
    offset: u64,
    len: usize,
    source: io::Error,
) -> FlashError {
    match super::retry::classify(&source) {
        super::retry::Fault::NoSpace => {
            FlashError::NoSpace { target: target.name(), offset, len: len as u64, source }
        }
        _ => FlashError::WriteTarget { target: target.name(), offset, attempts: 1, source },
    }
}

/// The error for a failed sync meant to make target bytes below `through` durable.
pub(crate) fn sync_error<T: FlashTarget + ?Sized>(
    target: &T,
    through: u64,
    source: io::Error,
) -> FlashError {
    FlashError::SyncTarget { target: target.name(), through, attempts: 1, source }
}

/// Where the image goes on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Target byte that receives image byte 0.
    pub target_offset_bytes: u64,
    /// The image may occupy at most this many bytes from `target_offset_bytes`
    /// (whatever lies behind, e.g. the staging partition, is never written).
    pub extent_bytes: u64,
}

impl Placement {
    pub(crate) fn target_byte(&self, image_offset: u64) -> u64 {
        self.target_offset_bytes + image_offset
    }
}

/// Image bytes `start..end` that a flash neither writes nor hashes: a partition written
/// after the flash, by the step that needs it (the partition holding the staging area of a
/// resinOS 1.x migration, written last; the boot partition the firmware loads the migration
/// kernel from). Like the head, held back; unlike the head, not kept in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldRange {
    pub start: u64,
    pub end: u64,
}

/// Why a list of ranges cannot be held back by one flash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeldRangesError {
    #[error("{0} held ranges; a flash holds back at most 2")]
    TooMany(usize),
    #[error("held range {}..{} is empty", .0.start, .0.end)]
    Empty(HeldRange),
    #[error("held ranges {}..{} and {}..{} overlap", .0.start, .0.end, .1.start, .1.end)]
    Overlap(HeldRange, HeldRange),
}

/// The ranges one flash holds back (at most two: a resinOS 1.x migration on UEFI holds back
/// both the partition written last and the boot partition the firmware loads the migration
/// kernel from), sorted and disjoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeldRanges {
    ranges: [Option<HeldRange>; 2],
}

impl HeldRanges {
    /// Nothing held back (besides the head).
    pub const NONE: HeldRanges = HeldRanges { ranges: [None, None] };

    /// `list` sorted; refused when ranges are empty, overlap, or more than two.
    pub fn new(list: &[HeldRange]) -> Result<HeldRanges, HeldRangesError> {
        let mut sorted = list.to_vec();
        sorted.sort_by_key(|r| r.start);
        if sorted.len() > 2 {
            return Err(HeldRangesError::TooMany(sorted.len()));
        }
        if let Some(empty) = sorted.iter().find(|r| r.start >= r.end) {
            return Err(HeldRangesError::Empty(*empty));
        }
        if let [a, b] = sorted.as_slice() {
            if b.start < a.end {
                return Err(HeldRangesError::Overlap(*a, *b));
            }
        }
        let mut ranges = [None, None];
        for (slot, range) in ranges.iter_mut().zip(sorted) {
            *slot = Some(range);
        }
        Ok(HeldRanges { ranges })
    }

    pub fn one(range: HeldRange) -> HeldRanges {
        HeldRanges { ranges: [Some(range), None] }
    }

    pub fn iter(&self) -> impl Iterator<Item = HeldRange> + '_ {
        self.ranges.iter().flatten().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges[0].is_none()
    }

    /// The parts of `len` bytes at image offset `offset` that lie outside every held
    /// range, as (index into the bytes, length) pairs in order; an empty part has length 0.
    pub fn outside(&self, offset: u64, len: usize) -> [(usize, usize); 3] {
        let end = offset + len as u64;
        let mut parts = [(0usize, 0usize); 3];
        let mut count = 0;
        let mut at = offset;
        for held in self.iter() {
            let (from, to) = (held.start.clamp(at, end), held.end.clamp(at, end));
            if from < to {
                parts[count] = ((at - offset) as usize, (from - at) as usize);
                count += 1;
                at = to;
            }
        }
        parts[count] = ((at - offset) as usize, (end - at) as usize);
        parts
    }
}

/// When may a run of zeros in the image be left unwritten?
///
/// The rule: only when something outside the image proves the target already reads as
/// zero there. Zeros in an image are not proof of anything (they may be data), and the
/// old root's blocks hold old data; a discard does not guarantee zeroes either. So the
/// default writes everything. A bmap (ranges the image maps as unused) is the other
/// valid proof; it is not supported yet, so there is no variant for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZeroRuns {
    /// Write every byte (always safe).
    #[default]
    Write,
    /// The caller guarantees the whole extent reads as zero (e.g. a freshly created
    /// sparse file, or a range zeroed with BLKZEROOUT and checked). All-zero 64 KiB
    /// granules are skipped; read-back verification still covers them.
    SkipTargetReadsZero,
}

/// Live counters shared by the decoding threads and the progress reporter.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub compressed_in: AtomicU64,
    pub decoded_out: AtomicU64,
    pub written: AtomicU64,
}

/// A written image range and the sum of its bytes, computed while writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedRange {
    pub image_offset: u64,
    pub len_bytes: u64,
    pub sum: ReadBackSum,
}

/// What a [`RangeWriter`] leaves behind.
pub(crate) struct RangeDone {
    pub range: Option<VerifiedRange>,
    /// Bytes below [`HEAD_BYTES`] that this range received (held back, not written).
    pub head_part: Vec<u8>,
}

/// How a range of the image is to be written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WritePolicy {
    pub placement: Placement,
    /// Length of the whole image: its last granule is always written, so a file
    /// target ends up as long as the image even when the image ends in zeros.
    pub image_bytes: u64,
    pub resume_from: u64,
    pub zero_runs: ZeroRuns,
    pub held: HeldRanges,
}

/// Receives the decoded bytes of one contiguous image range, in order, and writes them.
pub(crate) struct RangeWriter<'a, T: FlashTarget + ?Sized> {
    target: &'a T,
    policy: WritePolicy,
    counters: &'a Counters,
    start: u64,
    next: u64,
    /// Bytes gathered up to the next chunk boundary; aligned for direct writes.
    buf: Option<AlignedBuf>,
    buf_start: u64,
    summer: ReadBackSummer,
    head_part: Vec<u8>,
}

impl<'a, T: FlashTarget + ?Sized> RangeWriter<'a, T> {
    pub fn new(target: &'a T, policy: WritePolicy, counters: &'a Counters, start: u64) -> Self {
        RangeWriter {
            target,
            policy,
            counters,
            start,
            next: start,
            buf: None,
            buf_start: start,
            summer: ReadBackSummer::new(),
            head_part: Vec::new(),
        }
    }

    /// Image offset of the next byte expected.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Every image byte below this offset (and at or above [`HEAD_BYTES`]) has been
    /// handed to the target (not necessarily synced).
    pub fn written_through(&self) -> u64 {
        self.buf_start
    }

    pub fn push(&mut self, mut data: &[u8]) -> Result<(), FlashError> {
        let end = self.next + data.len() as u64;
        if end > self.policy.placement.extent_bytes {
            return Err(FlashError::ImageTooLarge {
                image_bytes: end,
                extent_bytes: self.policy.placement.extent_bytes,
            });
        }
        if self.next < HEAD_BYTES {
            let take = data.len().min((HEAD_BYTES - self.next) as usize);
            self.head_part.extend_from_slice(&data[..take]);
            self.next += take as u64;
            self.buf_start = self.next;
            data = &data[take..];
        }
        while !data.is_empty() {
            let chunk = WRITE_CHUNK_BYTES as u64;
            let boundary = (self.next / chunk + 1) * chunk;
            let room = (boundary - self.next) as usize;
            let take = data.len().min(room);
            let buffered = self.buf.as_ref().is_some_and(|b| !b.is_empty());
            if !buffered && take == WRITE_CHUNK_BYTES {
                // Aligned full chunk: write straight from the caller's buffer.
                self.hash(&data[..take], self.next);
                self.write_out(&data[..take], self.next)?;
                self.next += take as u64;
                self.buf_start = self.next;
            } else {
                self.buf
                    .get_or_insert_with(|| AlignedBuf::new(WRITE_CHUNK_BYTES))
                    .extend_from_slice(&data[..take]);
                self.next += take as u64;
                if take == room {
                    self.flush_buf()?;
                }
            }
            data = &data[take..];
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> Result<(), FlashError> {
        let Some(mut buf) = self.buf.take_if(|b| !b.is_empty()) else {
            return Ok(());
        };
        self.hash(buf.as_slice(), self.buf_start);
        let result = self.write_out(buf.as_slice(), self.buf_start);
        buf.clear();
        self.buf = Some(buf);
        self.buf_start = self.next;
        result
    }

    /// Hash the bytes of `data` (image bytes at `image_offset`) outside the held range.
    fn hash(&mut self, data: &[u8], image_offset: u64) {
        for (at, len) in self.policy.held.outside(image_offset, data.len()) {
            self.summer.update(&data[at..at + len]);
        }
    }

    /// Write `data` (image bytes at `image_offset`) except what the held range covers.
    fn write_out(&self, data: &[u8], image_offset: u64) -> Result<(), FlashError> {
        for (at, len) in self.policy.held.outside(image_offset, data.len()) {
            if len > 0 {
                self.write_part(&data[at..at + len], image_offset + at as u64)?;
            }
        }
        Ok(())
    }

    /// Write `data` (image bytes at `image_offset`), honouring resume and zero rules.
    fn write_part(&self, data: &[u8], image_offset: u64) -> Result<(), FlashError> {
        let skip =
            self.policy.resume_from.saturating_sub(image_offset).min(data.len() as u64) as usize;
        let (mut data, mut image_offset) = (&data[skip..], image_offset + skip as u64);
        while !data.is_empty() {
            let run = match self.policy.zero_runs {
                ZeroRuns::Write => data.len(),
                ZeroRuns::SkipTargetReadsZero => {
                    let granule = data.len().min(ZERO_GRANULE_BYTES);
                    let ends_image = image_offset + granule as u64 >= self.policy.image_bytes;
                    if !ends_image && data[..granule].iter().all(|b| *b == 0) {
                        data = &data[granule..];
                        image_offset += granule as u64;
                        continue;
                    }
                    let mut run = granule;
                    while run < data.len() {
                        let next = data.len().min(run + ZERO_GRANULE_BYTES);
                        if data[run..next].iter().all(|b| *b == 0) {
                            break;
                        }
                        run = next;
                    }
                    run
                }
            };
            let target_byte = self.policy.placement.target_byte(image_offset);
            self.target
                .write_all_at(&data[..run], target_byte)
                .map_err(|source| write_error(self.target, target_byte, run, source))?;
            self.counters.written.fetch_add(run as u64, Ordering::Relaxed);
            data = &data[run..];
            image_offset += run as u64;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<RangeDone, FlashError> {
        self.flush_buf()?;
        let body_start = self.start.max(HEAD_BYTES);
        let range = (self.next > body_start).then(|| VerifiedRange {
            image_offset: body_start,
            len_bytes: self.next - body_start,
            sum: self.summer.finish(),
        });
        Ok(RangeDone { range, head_part: self.head_part })
    }
}
