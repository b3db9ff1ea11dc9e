//! Streaming flash engine: decode the staged image, write it into place, read it back.
//!
//! The path is built from small adapters, one per module (after coreos-installer's
//! `src/io/`): [`crate::sha256::HashingReader`] (sha256 of the compressed stream as read),
//! [`format::ImageFormat`] (peek at the magic), [`xz_index`] (block map from the xz
//! index), [`xz_stream::XzReader`] (in-process streaming xz decoding, no child
//! process), [`limit::LimitReader`] (never more than the extent), and
//! [`target::RangeWriter`] (placement, extent, held-back head, resume skip, zero rule,
//! 4 MiB aligned writes, a CRC-64 of what was written: [`digest::ReadBackSum`]).
//!
//! Order of events in a flash, and what the caller journals:
//! 1. [`write_image`]: everything except the image's first MiB is written, with an
//!    fsync every [`FlashRequest::sync_every_bytes`] and at the end. [`Progress`]
//!    carries `durable_image_offset`; journal it to resume after a power cut. A
//!    transient write or fsync error (EIO, ...) runs the pass again from the last
//!    durable offset, a bounded number of times; ENOSPC fails at once (see [`retry`]).
//! 2. [`verify_written`]: the written range is re-read from the medium (page cache
//!    dropped first) and its CRC-64 compared with the one computed while writing.
//!    A mismatch is [`FlashError::VerifyMismatch`], never a log line.
//! 3. [`commit_head`]: the held-back first MiB (partition table, boot code) is
//!    written last, synced and read back. This is the commit point.
//!
//! Resume: decoding always starts at the beginning of the image (an xz stream cannot
//! be entered in the middle, and the head and the verification hashes need every
//! byte); writes below [`FlashRequest::resume_from_image_offset`] are skipped. That is
//! the simplest correct approach: the bytes skipped were fsynced by an earlier attempt
//! (the journal only records synced offsets) and verification re-reads them anyway.
//!
//! Decoder choice (measured here, 300 MiB slice of the bench image, user CPU seconds to
//! decode: xz2 0.1.7's bundled liblzma 5.2 3.2 s, Debian's `xz` 5.4.1 2.8 s, the `liblzma`
//! crate 0.4 (the maintained fork of xz2, same API, bundles xz 5.8) 2.45 s). xz2 has
//! no threaded decoder, so multi-block images are decoded block-parallel here (see
//! `parallel`). On the single-block path two things close the gap to `xz -dc | dd`:
//! liblzma's table CRC64 is replaced by our own check of each block (`block_check`,
//! PCLMULQDQ), and aligned pieces are written with O_DIRECT ([`direct::DirectTarget`]),
//! so the kernel's page-cache copy and writeback stop competing with the decoder.
//! Switching the dependency to `liblzma` would still bring the faster decoder and
//! upstream's `lzma_stream_decoder_mt`; xz2 is the user's choice, so that waits for them.
//!
//! Memory stays bounded whatever the image size: a few 4 MiB chunks, 1 MiB of held
//! head, and per decoder thread the xz dictionary (8 MiB at the default preset).

mod block_check;
pub mod decoded;
pub mod digest;
pub mod direct;
pub mod error;
pub mod flash_target;
pub mod format;
mod image_hash;
pub mod limit;
mod parallel;
pub mod positional;
pub mod progress;
pub mod progress_log;
pub mod retry;
mod sequential;
pub mod target;
pub mod window;
pub mod xz_index;
pub mod xz_stream;

pub use crate::sha256::Sha256Digest;
pub use direct::DirectTarget;
pub use error::{FlashError, XzError};
pub use flash_target::FlashTarget;
pub use format::ImageFormat;
pub use progress::Progress;
pub use retry::{WRITE_RETRIES, WRITE_RETRY_DELAY};
pub use target::{
    HeldRange, HeldRanges, HeldRangesError, Placement, VerifiedRange, ZeroRuns, HEAD_BYTES,
};

use std::fs::File;
use std::time::{Duration, Instant};
use target::{Counters, RangeDone, WritePolicy};

/// Parallel decoding is used only when this many dictionaries fit (threads × dict).
const PARALLEL_DICT_BUDGET_BYTES: u64 = 40 * 1024 * 1024;
const VERIFY_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// What to flash where, and how.
#[derive(Debug, Clone)]
pub struct FlashRequest {
    pub placement: Placement,
    /// Image bytes below this offset are decoded but not written (already written and
    /// fsynced by an earlier attempt, per the journal). 0 for a fresh flash.
    pub resume_from_image_offset: u64,
    pub zero_runs: ZeroRuns,
    /// Decoder threads for multi-block xz images (1 = sequential).
    pub decode_threads: usize,
    /// fsync after this many bytes, so the journal can record progress.
    pub sync_every_bytes: u64,
    /// If given, the compressed file's sha256 must match or the flash fails before
    /// verification (and the head is never returned).
    pub expected_image_sha256: Option<Sha256Digest>,
    /// Passes run again after a transient write or fsync error (see [`retry`]).
    pub write_retries: u32,
    /// Pause before each of those passes.
    pub write_retry_delay: Duration,
    /// Image bytes neither written nor verified (a partition written last); `None` writes all.
    pub held: HeldRanges,
}

impl FlashRequest {
    /// A fresh flash: write everything, 2 decoder threads, fsync every 256 MiB,
    /// [`WRITE_RETRIES`] retries [`WRITE_RETRY_DELAY`] apart.
    pub fn new(placement: Placement) -> Self {
        FlashRequest {
            placement,
            resume_from_image_offset: 0,
            zero_runs: ZeroRuns::Write,
            decode_threads: 2,
            sync_every_bytes: 256 * 1024 * 1024,
            expected_image_sha256: None,
            write_retries: WRITE_RETRIES,
            write_retry_delay: WRITE_RETRY_DELAY,
            held: HeldRanges::NONE,
        }
    }
}

/// How the image was decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeMode {
    Raw,
    XzSequential,
    XzParallel { threads: usize, blocks: usize },
}

/// The image's first [`HEAD_BYTES`] (or less for a tiny image), held back from the target.
#[derive(Clone, PartialEq, Eq)]
pub struct HeldHead {
    bytes: Vec<u8>,
}

impl HeldHead {
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Debug for HeldHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HeldHead({} bytes, sha256 {})", self.bytes.len(), Sha256Digest::of(&self.bytes))
    }
}

/// The result of [`write_image`]: everything but the head is written and synced.
#[derive(Debug, Clone)]
pub struct WrittenImage {
    pub placement: Placement,
    /// The held range this flash left unwritten (and out of `ranges`' hashes).
    pub held: HeldRanges,
    pub head: HeldHead,
    pub image_bytes: u64,
    pub compressed_sha256: Sha256Digest,
    pub compressed_bytes: u64,
    /// The written ranges (everything from `HEAD_BYTES` to the end), with the sum
    /// ([`digest::ReadBackSum`]) of the bytes handed to the target. One range, or one per xz block.
    pub ranges: Vec<VerifiedRange>,
    pub mode: DecodeMode,
    pub write_time: Duration,
}

/// [`flash_image`]'s result: written and verified; the head still waits for [`commit_head`].
#[derive(Debug, Clone)]
pub struct FlashReport {
    pub written: WrittenImage,
    pub verify_time: Duration,
}

/// Write and verify. The caller then journals and calls [`commit_head`].
pub fn flash_image<T: FlashTarget + ?Sized>(
    image: &File,
    target: &T,
    request: &FlashRequest,
    progress: &mut dyn FnMut(&Progress),
) -> Result<FlashReport, FlashError> {
    let written = write_image(image, target, request, progress)?;
    let verify_time = verify_written(target, &written)?;
    Ok(FlashReport { written, verify_time })
}

/// Decode the image and write all of it except the head; fsync. See the module docs.
///
/// A transient write or fsync error runs the pass again (decoding from the start,
/// writing from the last durable offset on), at most [`FlashRequest::write_retries`]
/// times; a full or too short target fails at once ([`FlashError::NoSpace`]).
pub fn write_image<T: FlashTarget + ?Sized>(
    image: &File,
    target: &T,
    request: &FlashRequest,
    progress: &mut dyn FnMut(&Progress),
) -> Result<WrittenImage, FlashError> {
    let started = Instant::now();
    let mut durable = request.resume_from_image_offset;
    let mut pass = 1u32;
    loop {
        let resume_from = durable;
        let mut pass_progress = |p: &Progress| {
            durable = durable.max(p.durable_image_offset);
            progress(&Progress { durable_image_offset: durable, ..*p });
        };
        let error = match write_pass(image, target, request, resume_from, &mut pass_progress) {
            Ok(mut written) => {
                written.write_time = started.elapsed();
                return Ok(written);
            }
            Err(error) => error.with_attempts(pass),
        };
        if !error.is_transient() || pass > request.write_retries {
            if error.is_transient() {
                log::error!("flash: {}; giving up after {pass} attempt(s)", error.fault_line());
            }
            return Err(error);
        }
        log::warn!(
            "flash: {}; attempt {pass} of {}, retrying in {:.1} s, rewriting from image byte {durable} (the last synced point)",
            error.fault_line(),
            request.write_retries + 1,
            request.write_retry_delay.as_secs_f64()
        );
        std::thread::sleep(request.write_retry_delay);
        pass += 1;
    }
}

/// One pass of [`write_image`]: image bytes below `resume_from` are decoded, not written.
fn write_pass<T: FlashTarget + ?Sized>(
    image: &File,
    target: &T,
    request: &FlashRequest,
    resume_from: u64,
    progress: &mut dyn FnMut(&Progress),
) -> Result<WrittenImage, FlashError> {
    let started = Instant::now();
    let placement = request.placement;
    let format = ImageFormat::sniff(image).map_err(FlashError::ReadImage)?;
    let layout = match format {
        ImageFormat::Xz => Some(xz_index::read_layout(image).map_err(|e| match e {
            xz_index::ReadLayoutError::Io(io) => FlashError::ReadImage(io),
            xz_index::ReadLayoutError::Xz(xz) => FlashError::Xz(xz),
        })?),
        ImageFormat::Raw => None,
    };
    let image_bytes = match &layout {
        Some(layout) => layout.uncompressed_bytes,
        None => image.metadata().map_err(FlashError::ReadImage)?.len(),
    };
    if image_bytes > placement.extent_bytes {
        return Err(FlashError::ImageTooLarge {
            image_bytes,
            extent_bytes: placement.extent_bytes,
        });
    }
    if resume_from > image_bytes {
        return Err(FlashError::BadRequest("resume offset lies past the end of the image"));
    }
    if request.sync_every_bytes == 0 {
        return Err(FlashError::BadRequest("sync_every_bytes must be positive"));
    }
    let policy = WritePolicy {
        placement,
        image_bytes,
        resume_from,
        zero_runs: request.zero_runs,
        held: request.held,
    };
    let counters = Counters::default();
    let parallel_threads =
        layout.as_ref().and_then(|l| parallel_threads(image, l, request.decode_threads));
    let (done, compressed_sha256, compressed_bytes, mode) = match (&layout, parallel_threads) {
        (Some(layout), Some(threads)) => {
            log::info!("flash: {} xz blocks, decoding with {threads} threads", layout.blocks.len());
            let result = parallel::run(
                image,
                layout,
                threads,
                target,
                policy,
                request.sync_every_bytes,
                &counters,
                progress,
            )?;
            let mode = DecodeMode::XzParallel { threads, blocks: layout.blocks.len() };
            (result.done, result.compressed_sha256, result.compressed_bytes, mode)
        }
        _ => {
            let mode = if layout.is_some() { DecodeMode::XzSequential } else { DecodeMode::Raw };
            log::info!("flash: {mode:?} decoding of a {image_bytes}-byte image");
            let total = Some(image_bytes);
            let checker = match &layout {
                Some(layout) => block_check::expected_checks(image, &layout.blocks)
                    .map_err(FlashError::ReadImage)?
                    .map(|expected| block_check::BlockChecker::new(expected, 0)),
                None => None,
            };
            let result = sequential::run(
                image,
                format,
                checker,
                image_bytes,
                target,
                policy,
                request.sync_every_bytes,
                &counters,
                progress,
                total,
            )?;
            if result.image_bytes != image_bytes {
                return Err(FlashError::Xz(XzError::Truncated));
            }
            (vec![result.done], result.compressed_sha256, result.compressed_bytes, mode)
        }
    };
    if let Some(expected) = request.expected_image_sha256 {
        if expected != compressed_sha256 {
            return Err(FlashError::ImageDigestMismatch { expected, actual: compressed_sha256 });
        }
    }
    let end = placement.target_byte(image_bytes);
    target.sync().map_err(|e| target::sync_error(target, end, e))?;
    let (head, ranges) = assemble(done);
    progress(&Progress::snapshot(&counters, Some(image_bytes), image_bytes));
    Ok(WrittenImage {
        placement,
        held: request.held,
        head,
        image_bytes,
        compressed_sha256,
        compressed_bytes,
        ranges,
        mode,
        write_time: started.elapsed(),
    })
}

/// Threads to decode with, or `None` for the sequential path.
fn parallel_threads(image: &File, layout: &xz_index::XzLayout, wanted: usize) -> Option<usize> {
    let threads = wanted.min(layout.blocks.len());
    if threads < 2 {
        return None;
    }
    let dict = layout.blocks.first().and_then(|b| xz_index::block_dict_bytes(image, b))?;
    let fitting = (PARALLEL_DICT_BUDGET_BYTES / dict.max(1)) as usize;
    (fitting >= 2).then_some(threads.min(fitting))
}

fn assemble(done: Vec<RangeDone>) -> (HeldHead, Vec<VerifiedRange>) {
    let mut head = Vec::new();
    let mut ranges = Vec::with_capacity(done.len());
    for part in done {
        head.extend_from_slice(&part.head_part);
        ranges.extend(part.range);
    }
    (HeldHead { bytes: head }, ranges)
}

/// Re-read every written range from the medium and compare with the hashes computed
/// while writing. Returns the time it took. Any difference is fatal.
pub fn verify_written<T: FlashTarget + ?Sized>(
    target: &T,
    written: &WrittenImage,
) -> Result<Duration, FlashError> {
    let started = Instant::now();
    let placement = written.placement;
    let end = placement.target_byte(written.image_bytes);
    target.sync().map_err(|e| target::sync_error(target, end, e))?;
    if written.image_bytes > HEAD_BYTES {
        let start = placement.target_byte(HEAD_BYTES);
        // Best effort: on a file system without fadvise support we still read, from cache.
        if let Err(e) = target.drop_cache(start, written.image_bytes - HEAD_BYTES) {
            log::warn!(
                "flash: cannot drop cached pages before read-back ({e}); verifying from cache"
            );
        }
    }
    let mut buf = vec![0u8; VERIFY_CHUNK_BYTES];
    for range in &written.ranges {
        let mut summer = digest::ReadBackSummer::new();
        let mut offset = range.image_offset;
        let end = range.image_offset + range.len_bytes;
        while offset < end {
            let piece = ((end - offset) as usize).min(VERIFY_CHUNK_BYTES);
            for (at, len) in written.held.outside(offset, piece) {
                let target_byte = placement.target_byte(offset + at as u64);
                target
                    .read_exact_at(&mut buf[at..at + len], target_byte)
                    .map_err(|source| FlashError::ReadBack { offset: target_byte, source })?;
                summer.update(&buf[at..at + len]);
            }
            offset += piece as u64;
        }
        let actual = summer.finish();
        if actual != range.sum {
            return Err(FlashError::VerifyMismatch {
                image_offset: range.image_offset,
                end,
                expected: range.sum,
                actual,
            });
        }
    }
    Ok(started.elapsed())
}

/// Write the held-back head at the image's place (the commit point), sync, read it
/// back and compare byte for byte.
pub fn commit_head<T: FlashTarget + ?Sized>(
    target: &T,
    placement: Placement,
    head: &HeldHead,
) -> Result<(), FlashError> {
    let start = placement.target_byte(0);
    let len = head.bytes.len() as u64;
    if len > placement.extent_bytes {
        return Err(FlashError::ImageTooLarge {
            image_bytes: len,
            extent_bytes: placement.extent_bytes,
        });
    }
    target
        .write_all_at(&head.bytes, start)
        .map_err(|source| target::write_error(target, start, head.bytes.len(), source))?;
    target.sync().map_err(|e| target::sync_error(target, start + len, e))?;
    if let Err(e) = target.drop_cache(start, len) {
        log::warn!("flash: cannot drop cached head before read-back ({e})");
    }
    let mut back = vec![0u8; head.bytes.len()];
    target
        .read_exact_at(&mut back, start)
        .map_err(|source| FlashError::ReadBack { offset: start, source })?;
    if back != head.bytes {
        return Err(FlashError::HeadMismatch);
    }
    Ok(())
}
