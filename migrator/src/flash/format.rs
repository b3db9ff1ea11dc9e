//! Sniff the image format from its first bytes (a peek: nothing is consumed).

use std::fs::File;
use std::os::unix::fs::FileExt;

const XZ_MAGIC: [u8; 6] = [0xFD, b'7', b'z', b'X', b'Z', 0x00];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// An xz container (single or multi block, single or concatenated streams).
    Xz,
    /// An uncompressed disk image, written as is.
    Raw,
}

impl ImageFormat {
    /// Xz if the file starts with the xz magic, raw otherwise.
    pub fn sniff(file: &File) -> std::io::Result<ImageFormat> {
        let mut head = [0u8; 6];
        let mut filled = 0;
        while filled < head.len() {
            let n = file.read_at(&mut head[filled..], filled as u64)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok(if filled == head.len() && head == XZ_MAGIC {
            ImageFormat::Xz
        } else {
            ImageFormat::Raw
        })
    }
}
