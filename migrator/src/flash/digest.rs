//! A sha256 value that prints as hex, a hashing `Read` adapter, and the sum that
//! read-back verification compares.

use super::error::FlashError;
use super::positional::PositionalReader;
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};

/// A sha256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// Hash a byte slice in one go.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    pub(crate) fn from_hasher(hasher: Sha256) -> Self {
        let mut out = [0u8; 32];
        out.copy_from_slice(hasher.finalize().as_slice());
        Sha256Digest(out)
    }

    /// Parse 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Sha256Digest(out))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

/// CRC-64/XZ of a written range, computed while writing and again when reading back.
///
/// Read-back verification looks for a medium that does not keep what it was given
/// (lost, misdirected or torn writes), not for an adversary: the image itself is
/// authenticated by the sha256 of the compressed file and each xz block's check. A
/// 64-bit CRC catches every burst error up to 64 bits and any other damage but for a
/// 2^-64 chance, at over 10 GB/s with PCLMULQDQ where sha256 runs at ~1.5 GB/s
/// (that difference was a tenth of the flash time of a 1 GiB image, on the writer's
/// core; see scripts/bench-flash.sh).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ReadBackSum(pub u64);

impl fmt::Display for ReadBackSum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "crc64 {:016x}", self.0)
    }
}

impl fmt::Debug for ReadBackSum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReadBackSum({self})")
    }
}

/// Accumulates a [`ReadBackSum`].
pub(crate) struct ReadBackSummer(crc64fast::Digest);

impl ReadBackSummer {
    pub(crate) fn new() -> Self {
        ReadBackSummer(crc64fast::Digest::new())
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }

    pub(crate) fn finish(&self) -> ReadBackSum {
        ReadBackSum(self.0.sum64())
    }
}

/// Passes bytes through unchanged while hashing them and counting them.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new(), bytes: 0 }
    }

    /// Bytes that went through so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The digest of every byte that went through, and their count.
    pub fn finish(self) -> (Sha256Digest, u64) {
        (Sha256Digest::from_hasher(self.hasher), self.bytes)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// The sha256 and length of the whole image file, read on a thread of its own so the
/// decoder's thread (the critical path) does not pay for it. Stops early when `abort`
/// is raised by a failure elsewhere.
pub(crate) fn hash_whole_file(
    image: &File,
    abort: &AtomicBool,
) -> Result<(Sha256Digest, u64), FlashError> {
    let mut hashing = HashingReader::new(PositionalReader::new(image, 0));
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        if abort.load(Ordering::Relaxed) {
            return Err(FlashError::Worker("hashing stopped by another failure"));
        }
        match hashing.read(&mut buf) {
            Ok(0) => return Ok(hashing.finish()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FlashError::ReadImage(e)),
        }
    }
}
