//! The sum that read-back verification compares (the sha256 type is [`crate::sha256`]).

use std::fmt;

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
