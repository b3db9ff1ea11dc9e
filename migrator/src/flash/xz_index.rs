//! Where the blocks of an xz file are, read from its index (no decoding).
//!
//! An xz file is one or more streams, each `header | blocks | index | footer`,
//! optionally separated by stream padding (zero words). The footer points back to the
//! index, the index lists every block's sizes, and blocks are independent of each
//! other: that is what makes parallel decoding and up-front size checks possible.
//! This walks the file from its end, so a truncated file fails here, before the
//! target is touched.

use super::error::XzError;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

pub(crate) const STREAM_HEADER_LEN: u64 = 12;
const FOOTER_LEN: u64 = 12;
const HEADER_MAGIC: [u8; 6] = [0xFD, b'7', b'z', b'X', b'Z', 0x00];
const FOOTER_MAGIC: [u8; 2] = [b'Y', b'Z'];

/// One block: where its bytes are in the file, what it decodes to, where that goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XzBlock {
    /// The 12-byte header of the stream the block belongs to (its check type).
    pub stream_header: [u8; 12],
    /// First byte of the block header in the compressed file.
    pub compressed_offset: u64,
    /// Block header + compressed data + check, without block padding.
    pub unpadded_bytes: u64,
    /// Decoded length.
    pub uncompressed_bytes: u64,
    /// Where the decoded bytes start in the image.
    pub image_offset: u64,
}

impl XzBlock {
    /// Bytes the block occupies in the file, padding included.
    pub fn padded_bytes(&self) -> u64 {
        round_up4(self.unpadded_bytes)
    }
}

/// Every block of every stream, in file order.
#[derive(Debug, Clone)]
pub struct XzLayout {
    pub blocks: Vec<XzBlock>,
    pub uncompressed_bytes: u64,
}

fn round_up4(n: u64) -> u64 {
    n.div_ceil(4) * 4
}

fn read_exact_at(file: &File, len: u64, offset: u64) -> Result<Vec<u8>, io::Error> {
    let len = usize::try_from(len).map_err(|_| io::Error::other("xz index too large"))?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(word)
}

/// Read a multibyte integer (xz's varint, at most 9 bytes) from `bytes[*pos..]`.
pub(crate) fn read_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..9 {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return if byte == 0 && i > 0 { None } else { Some(value) };
        }
    }
    None
}

pub(crate) fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Read the layout of the xz file. Errors name what is wrong with the file.
pub fn read_layout(file: &File) -> Result<XzLayout, ReadLayoutError> {
    let file_len = file.metadata()?.len();
    let mut streams: Vec<Vec<XzBlock>> = Vec::new();
    let mut pos = file_len;
    loop {
        while pos >= 4 && read_exact_at(file, 4, pos - 4)? == [0u8; 4] {
            pos -= 4;
        }
        if pos == 0 {
            break;
        }
        if pos % 4 != 0 || pos < STREAM_HEADER_LEN + FOOTER_LEN {
            return Err(XzError::BadFooter("file length is not a whole xz stream").into());
        }
        let footer = read_exact_at(file, FOOTER_LEN, pos - FOOTER_LEN)?;
        if footer[10..12] != FOOTER_MAGIC {
            return Err(XzError::BadFooter("missing footer magic").into());
        }
        if crc32fast::hash(&footer[4..10]) != le_u32(&footer[0..4]) {
            return Err(XzError::BadFooter("footer CRC32 mismatch").into());
        }
        let index_len = (u64::from(le_u32(&footer[4..8])) + 1) * 4;
        let index_start = (pos - FOOTER_LEN)
            .checked_sub(index_len)
            .ok_or(XzError::BadFooter("index would start before the file"))?;
        let index = read_exact_at(file, index_len, index_start)?;
        let records = parse_index(&index)?;
        let blocks_len = records
            .iter()
            .try_fold(0u64, |sum, (unpadded, _)| sum.checked_add(round_up4(*unpadded)))
            .ok_or(XzError::BadIndex("block sizes overflow"))?;
        let stream_start = index_start
            .checked_sub(blocks_len)
            .and_then(|p| p.checked_sub(STREAM_HEADER_LEN))
            .ok_or(XzError::BadIndex("blocks would start before the file"))?;
        let header_vec = read_exact_at(file, STREAM_HEADER_LEN, stream_start)?;
        let mut stream_header = [0u8; 12];
        stream_header.copy_from_slice(&header_vec);
        if stream_header[..6] != HEADER_MAGIC {
            return Err(XzError::BadHeader("missing stream magic").into());
        }
        if crc32fast::hash(&stream_header[6..8]) != le_u32(&stream_header[8..12]) {
            return Err(XzError::BadHeader("header CRC32 mismatch").into());
        }
        if stream_header[6..8] != footer[8..10] {
            return Err(XzError::BadHeader("header and footer flags differ").into());
        }
        let mut offset = stream_start + STREAM_HEADER_LEN;
        let mut blocks = Vec::with_capacity(records.len());
        for (unpadded_bytes, uncompressed_bytes) in records {
            blocks.push(XzBlock {
                stream_header,
                compressed_offset: offset,
                unpadded_bytes,
                uncompressed_bytes,
                image_offset: 0,
            });
            offset += round_up4(unpadded_bytes);
        }
        streams.push(blocks);
        pos = stream_start;
    }
    if streams.is_empty() {
        return Err(XzError::BadFooter("no xz stream found").into());
    }
    let mut image_offset = 0u64;
    let mut all = Vec::new();
    for mut block in streams.into_iter().rev().flatten() {
        block.image_offset = image_offset;
        image_offset = image_offset
            .checked_add(block.uncompressed_bytes)
            .ok_or(XzError::BadIndex("uncompressed size overflows"))?;
        all.push(block);
    }
    Ok(XzLayout { blocks: all, uncompressed_bytes: image_offset })
}

/// Index: indicator 0x00, record count, (unpadded, uncompressed) pairs, zero padding, CRC32.
fn parse_index(index: &[u8]) -> Result<Vec<(u64, u64)>, XzError> {
    let body_len = index.len() - 4;
    if index.first() != Some(&0) {
        return Err(XzError::BadIndex("missing index indicator"));
    }
    if crc32fast::hash(&index[..body_len]) != le_u32(&index[body_len..]) {
        return Err(XzError::BadIndex("index CRC32 mismatch"));
    }
    let body = &index[..body_len];
    let mut pos = 1usize;
    let count = read_varint(body, &mut pos).ok_or(XzError::BadIndex("bad record count"))?;
    let mut records = Vec::new();
    for _ in 0..count {
        let unpadded = read_varint(body, &mut pos).ok_or(XzError::BadIndex("bad record"))?;
        let uncompressed = read_varint(body, &mut pos).ok_or(XzError::BadIndex("bad record"))?;
        if unpadded < 5 {
            return Err(XzError::BadIndex("block too small"));
        }
        records.push((unpadded, uncompressed));
    }
    if body[pos..].iter().any(|b| *b != 0) || !body.len().is_multiple_of(4) {
        return Err(XzError::BadIndex("bad index padding"));
    }
    Ok(records)
}

/// Build the index and footer that turn one block into a complete single-block stream,
/// so that liblzma's ordinary stream decoder checks the block's sizes and its check.
pub(crate) fn single_block_stream_tail(block: &XzBlock) -> Vec<u8> {
    let mut index = vec![0u8];
    write_varint(&mut index, 1);
    write_varint(&mut index, block.unpadded_bytes);
    write_varint(&mut index, block.uncompressed_bytes);
    while index.len() % 4 != 0 {
        index.push(0);
    }
    let crc = crc32fast::hash(&index);
    index.extend_from_slice(&crc.to_le_bytes());
    let backward = (index.len() / 4 - 1) as u32;
    let mut footer_fields = Vec::with_capacity(6);
    footer_fields.extend_from_slice(&backward.to_le_bytes());
    footer_fields.extend_from_slice(&block.stream_header[6..8]);
    let mut tail = index;
    tail.extend_from_slice(&crc32fast::hash(&footer_fields).to_le_bytes());
    tail.extend_from_slice(&footer_fields);
    tail.extend_from_slice(&FOOTER_MAGIC);
    tail
}

/// The LZMA2 dictionary size a block's decoder will allocate, read from its header.
/// `None` if the header cannot be read or uses no LZMA2 filter.
pub(crate) fn block_dict_bytes(file: &File, block: &XzBlock) -> Option<u64> {
    let mut size_byte = [0u8; 1];
    file.read_exact_at(&mut size_byte, block.compressed_offset).ok()?;
    let header_len = (u64::from(size_byte[0]) + 1) * 4;
    let header = read_exact_at(file, header_len, block.compressed_offset).ok()?;
    let flags = *header.get(1)?;
    let filters = usize::from(flags & 0x03) + 1;
    let mut pos = 2usize;
    if flags & 0x40 != 0 {
        read_varint(&header, &mut pos)?;
    }
    if flags & 0x80 != 0 {
        read_varint(&header, &mut pos)?;
    }
    for _ in 0..filters {
        let id = read_varint(&header, &mut pos)?;
        let props_len = usize::try_from(read_varint(&header, &mut pos)?).ok()?;
        let props = header.get(pos..pos + props_len)?;
        pos += props_len;
        if id == 0x21 && props_len == 1 {
            let bits = u32::from(props[0] & 0x3F);
            return match bits {
                0..=39 => Some((2 | u64::from(bits & 1)) << (bits / 2 + 11)),
                40 => Some(u64::from(u32::MAX)),
                _ => None,
            };
        }
    }
    None
}

/// Either the file could not be read, or what was read is not valid xz.
#[derive(Debug, thiserror::Error)]
pub enum ReadLayoutError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Xz(#[from] XzError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trips_and_rejects_overlong() {
        for value in [0u64, 1, 127, 128, 300, 1 << 40, u64::MAX >> 1] {
            let mut out = Vec::new();
            write_varint(&mut out, value);
            let mut pos = 0;
            assert_eq!(read_varint(&out, &mut pos), Some(value));
            assert_eq!(pos, out.len());
        }
        let mut pos = 0;
        assert_eq!(read_varint(&[0x80, 0x00], &mut pos), None);
    }
}
