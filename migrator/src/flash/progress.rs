//! What the engine tells its caller while it runs: a [`Progress`] snapshot.

use super::target::Counters;
use std::sync::atomic::Ordering;

/// A snapshot of a running flash, given to the progress callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Compressed bytes consumed by the decoder(s).
    pub compressed_bytes_in: u64,
    /// Decoded image bytes produced.
    pub image_bytes_out: u64,
    /// Bytes actually written to the target (less than decoded when resuming/skipping).
    pub bytes_written: u64,
    /// Image length when known up front (xz index or raw file length).
    pub image_bytes_total: Option<u64>,
    /// Every image byte in `HEAD_BYTES..durable_image_offset` is on the medium (fsynced).
    /// Safe to journal and pass back as `resume_from_image_offset`.
    pub durable_image_offset: u64,
}

impl Progress {
    pub(crate) fn snapshot(counters: &Counters, total: Option<u64>, durable: u64) -> Progress {
        Progress {
            compressed_bytes_in: counters.compressed_in.load(Ordering::Relaxed),
            image_bytes_out: counters.decoded_out.load(Ordering::Relaxed),
            bytes_written: counters.written.load(Ordering::Relaxed),
            image_bytes_total: total,
            durable_image_offset: durable,
        }
    }
}
