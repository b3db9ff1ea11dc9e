//! What a successful fetch hands back.

use std::path::PathBuf;

use super::Sha256Hex;
pub use plan::Bytes;

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
