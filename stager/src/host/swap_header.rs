//! The swap area's own header (format 1, `SWAPSPACE2`): its UUID and label, which the host
//! uses to find it again (fstab `UUID=`/`LABEL=`) and which `abort` must put back.
//!
//! Layout in the first page: 1024 bytes of boot space, then `version` (u32), `last_page`
//! (u32), `nr_badpages` (u32), the UUID (16 bytes, at 1036), the label (16 bytes, at 1052);
//! the magic `SWAPSPACE2` sits in the last 10 bytes of the page.

use plan::Bytes;
use serde::Serialize;
use std::io::{Read, Seek, SeekFrom};

pub const MAGIC: &[u8; 10] = b"SWAPSPACE2";
const OLD_MAGIC: &[u8; 10] = b"SWAP-SPACE";
const VERSION_OFFSET: usize = 1024;
const LAST_PAGE_OFFSET: usize = 1028;
const UUID_OFFSET: usize = 1036;
const LABEL_OFFSET: usize = 1052;
const LABEL_LEN: usize = 16;
/// The page size of x86 and x86_64 hosts, where the magic's place is decided by `mkswap`.
pub const X86_PAGE_SIZE: Bytes = Bytes(4096);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwapHeader {
    pub version: u32,
    /// Size of the swap area in pages, minus one.
    pub last_page: u32,
    /// Lower-case hyphenated, as `blkid` and fstab `UUID=` write it.
    pub uuid: String,
    pub label: Option<String>,
    pub page_size: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwapHeaderError {
    #[error("no swap signature (`SWAPSPACE2` at byte {offset}); the partition is not a swap area made by mkswap")]
    NoMagic { offset: usize },
    #[error("old-style swap area (`SWAP-SPACE`, format 0); recreate it with `mkswap`")]
    OldFormat,
    #[error("swap header version {0} is not 1; recreate it with `mkswap`")]
    Version(u32),
    #[error("page of {0} bytes is too short for a swap header")]
    Short(usize),
    #[error("cannot read the swap header: {0}")]
    Io(String),
}

fn u32_at(page: &[u8], offset: usize) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&page[offset..offset + 4]);
    u32::from_le_bytes(bytes)
}

/// Parses the first page of a swap area; `page.len()` is the page size it was made with.
pub fn parse(page: &[u8]) -> Result<SwapHeader, SwapHeaderError> {
    if page.len() < LABEL_OFFSET + LABEL_LEN + MAGIC.len() {
        return Err(SwapHeaderError::Short(page.len()));
    }
    let magic_offset = page.len() - MAGIC.len();
    let magic = &page[magic_offset..];
    if magic == OLD_MAGIC {
        return Err(SwapHeaderError::OldFormat);
    }
    if magic != MAGIC {
        return Err(SwapHeaderError::NoMagic { offset: magic_offset });
    }
    let version = u32_at(page, VERSION_OFFSET);
    if version != 1 {
        return Err(SwapHeaderError::Version(version));
    }
    let mut uuid_bytes = [0u8; 16];
    uuid_bytes.copy_from_slice(&page[UUID_OFFSET..UUID_OFFSET + 16]);
    let label_bytes = &page[LABEL_OFFSET..LABEL_OFFSET + LABEL_LEN];
    let label_len = label_bytes.iter().position(|b| *b == 0).unwrap_or(LABEL_LEN);
    let label = String::from_utf8_lossy(&label_bytes[..label_len]).into_owned();
    Ok(SwapHeader {
        version,
        last_page: u32_at(page, LAST_PAGE_OFFSET),
        uuid: uuid::Uuid::from_bytes(uuid_bytes).hyphenated().to_string(),
        label: (!label.is_empty()).then_some(label),
        page_size: Bytes(page.len() as u64),
    })
}

/// Reads the swap header of the area starting at `offset` in `device` (a partition, or a
/// whole disk or image with the partition's start).
pub fn read_at<R: Read + Seek>(
    device: &mut R,
    offset: Bytes,
    page_size: Bytes,
) -> Result<SwapHeader, SwapHeaderError> {
    let len = usize::try_from(page_size.get()).map_err(|_| SwapHeaderError::Short(0))?;
    let mut page = vec![0u8; len];
    device
        .seek(SeekFrom::Start(offset.get()))
        .and_then(|_| device.read_exact(&mut page))
        .map_err(|e| SwapHeaderError::Io(e.to_string()))?;
    parse(&page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroes_are_not_swap() {
        assert_eq!(parse(&[0u8; 4096]), Err(SwapHeaderError::NoMagic { offset: 4086 }));
    }

    #[test]
    fn old_format_is_named() {
        let mut page = vec![0u8; 4096];
        page[4086..].copy_from_slice(OLD_MAGIC);
        assert_eq!(parse(&page), Err(SwapHeaderError::OldFormat));
    }
}
