//! Everything that can stop a flash, each with the problem and the fix in one line.

use super::digest::ReadBackSum;
use crate::sha256::Sha256Digest;
use std::io;

/// Why the image could not be decoded (damaged, truncated or not xz at all).
#[derive(Debug, thiserror::Error)]
pub enum XzError {
    #[error("the image ends before its xz stream does (truncated file?); re-stage the image")]
    Truncated,
    #[error("no valid xz footer at the end of the image ({0}): the file is truncated or damaged; re-stage the image")]
    BadFooter(&'static str),
    #[error("the xz index is damaged ({0}); re-stage the image")]
    BadIndex(&'static str),
    #[error("the xz stream header is damaged ({0}); re-stage the image")]
    BadHeader(&'static str),
    #[error("xz data in block {block} is damaged ({detail}); re-stage the image")]
    BlockData { block: usize, detail: String },
    #[error("xz data is damaged near compressed byte {compressed_offset} ({detail}); re-stage the image")]
    StreamData { compressed_offset: u64, detail: String },
    #[error(
        "xz block {block} does not match its {check} (the image is damaged); re-stage the image"
    )]
    CheckMismatch { block: usize, check: &'static str },
    #[error("block {block} decoded to {actual} bytes but the xz index says {expected}; re-stage the image")]
    BlockSize { block: usize, expected: u64, actual: u64 },
}

/// A failed flash. Every variant is fatal to this attempt; the head (commit point) was not written.
#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    #[error("cannot read the image file: {0}; check the staging partition")]
    ReadImage(#[source] io::Error),
    #[error("the image is neither xz nor raw-readable ({0}); re-stage the image")]
    UnknownFormat(&'static str),
    #[error(transparent)]
    Xz(#[from] XzError),
    #[error("the image is {image_bytes} bytes but only {extent_bytes} bytes may be written; use a plan whose layout fits before the staging partition")]
    ImageTooLarge { image_bytes: u64, extent_bytes: u64 },
    #[error("the request is inconsistent: {0}; fix the caller")]
    BadRequest(&'static str),
    #[error("cannot write {target} at byte {offset} ({attempts} attempt(s)): {source}; the disk fails writes: check it and its cable (dmesg), then restart; the image's first MiB was not written, so the disk boots as before this flash")]
    WriteTarget {
        target: String,
        offset: u64,
        attempts: u32,
        #[source]
        source: io::Error,
    },
    #[error("cannot flush {target} to disk up to byte {through} ({attempts} attempt(s)): {source}; the disk fails writes: check it and its cable (dmesg), then restart; the image's first MiB was not written, so the disk boots as before this flash")]
    SyncTarget {
        target: String,
        /// Target byte below which everything written was to become durable.
        through: u64,
        attempts: u32,
        #[source]
        source: io::Error,
    },
    #[error("no space on {target}: writing {len} bytes at byte {offset} failed ({source}); the target is full or smaller than the plan says, so no retry can help: re-stage with a plan made for this disk")]
    NoSpace {
        target: String,
        offset: u64,
        len: u64,
        #[source]
        source: io::Error,
    },
    #[error("cannot read back the target at byte {offset}: {source}; check the disk (dmesg)")]
    ReadBack {
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("read-back verification failed for image bytes {image_offset}..{end}: wrote {expected}, read back {actual}; the disk does not keep what it is given, do not commit")]
    VerifyMismatch { image_offset: u64, end: u64, expected: ReadBackSum, actual: ReadBackSum },
    #[error("the image's sha256 is {actual}, expected {expected}; the staged image is damaged, re-stage it")]
    ImageDigestMismatch { expected: Sha256Digest, actual: Sha256Digest },
    #[error("the head written at the commit point did not read back identical; the disk is failing, do not reboot into it")]
    HeadMismatch,
    #[error("a flash worker thread failed: {0}; this is a bug, report it")]
    Worker(&'static str),
}

impl FlashError {
    /// A write or fsync error that may go away: worth another pass (see `retry`).
    pub fn is_transient(&self) -> bool {
        match self {
            FlashError::WriteTarget { source, .. } | FlashError::SyncTarget { source, .. } => {
                super::retry::classify(source) == super::retry::Fault::Transient
            }
            _ => false,
        }
    }

    /// Record how many passes tried the failed write or fsync.
    pub(crate) fn with_attempts(mut self, passes: u32) -> FlashError {
        if let FlashError::WriteTarget { attempts, .. } | FlashError::SyncTarget { attempts, .. } =
            &mut self
        {
            *attempts = passes;
        }
        self
    }

    /// How a transient failure is logged before a retry: what, where, the errno.
    pub(crate) fn fault_line(&self) -> String {
        match self {
            FlashError::WriteTarget { target, offset, source, .. } => format!(
                "write to {target} at byte {offset} failed ({}: {source})",
                super::retry::errno_name(source)
            ),
            FlashError::SyncTarget { target, through, source, .. } => format!(
                "fsync of {target} (bytes below {through}) failed ({}: {source})",
                super::retry::errno_name(source)
            ),
            other => other.to_string(),
        }
    }
}

/// Wrap a decoding error so it can travel through `io::Read` and be recovered intact.
pub(crate) fn xz_io(error: XzError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

/// Undo [`xz_io`]: a read error from the decoded stream becomes the precise flash error.
pub(crate) fn from_source_io(error: io::Error) -> FlashError {
    if error.get_ref().is_some_and(|inner| inner.is::<XzError>()) {
        if let Some(inner) = error.into_inner() {
            if let Ok(xz) = inner.downcast::<XzError>() {
                return FlashError::Xz(*xz);
            }
        }
        return FlashError::Worker("lost an xz error on the way");
    }
    FlashError::ReadImage(error)
}
