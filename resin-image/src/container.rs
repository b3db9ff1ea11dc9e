//! [`Container`]: what wraps the disk image in a downloaded file, told from its first bytes.

use crate::ImageError;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// What a file holds, told from its first bytes (never from its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Container {
    /// Anything else: taken as the disk image itself.
    Raw,
    /// An xz stream (`FD 37 7A 58 5A 00`).
    Xz,
    /// A gzip stream (`1F 8B`): the API's `fileType` `.gz`.
    Gzip,
    /// A zip archive (`PK\x03\x04`, or `PK\x05\x06` when empty): dashboard downloads.
    Zip,
}

impl std::fmt::Display for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Container::Raw => "raw",
            Container::Xz => "xz",
            Container::Gzip => "gzip",
            Container::Zip => "zip",
        })
    }
}

const XZ_MAGIC: &[u8] = &[0xFD, b'7', b'z', b'X', b'Z', 0x00];
const GZIP_MAGIC: &[u8] = &[0x1F, 0x8B];
const ZIP_MAGICS: [&[u8]; 2] = [b"PK\x03\x04", b"PK\x05\x06"];

/// The container of the first bytes `head` of a file.
pub fn sniff_bytes(head: &[u8]) -> Container {
    if head.starts_with(XZ_MAGIC) {
        Container::Xz
    } else if head.starts_with(GZIP_MAGIC) {
        Container::Gzip
    } else if ZIP_MAGICS.iter().any(|magic| head.starts_with(magic)) {
        Container::Zip
    } else {
        Container::Raw
    }
}

/// What the file at `path` holds, from its first bytes.
pub fn sniff(path: &Path) -> Result<Container, ImageError> {
    let read_error = |source| ImageError::Read { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(read_error)?;
    let mut head = Vec::with_capacity(8);
    file.take(8).read_to_end(&mut head).map_err(read_error)?;
    Ok(sniff_bytes(&head))
}
