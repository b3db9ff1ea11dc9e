//! What a successful fetch hands back.

use std::fmt;
use std::path::PathBuf;

use super::Sha256Hex;

/// A count of bytes (local stand-in until `plan::units::Bytes` is shared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bytes(pub u64);

impl Bytes {
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} bytes)", indicatif::BinaryBytes(self.0), self.0)
    }
}

/// A verified image on local disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedImage {
    /// Where the verified image is (the download destination, or the local source path).
    pub path: PathBuf,
    /// Its size.
    pub size: Bytes,
    /// Its sha256, which matched the expected one.
    pub sha256: Sha256Hex,
}
