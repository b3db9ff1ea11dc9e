//! Each xz block's integrity check, verified here instead of inside liblzma.
//!
//! Why: the liblzma that xz2 bundles (5.2) computes CRC64 with a table, about 1 GB/s;
//! on a 1 GiB image that is a fifth of the whole decode time (measured on the bench
//! image: 4.8 s with liblzma's check, 3.95 s without). `crc64fast` (PCLMULQDQ, CRC-64/XZ)
//! does the same sum at over 10 GB/s, and crc32fast and sha2 cover the other checks xz
//! writes. So the decoder runs with `LZMA_IGNORE_CHECK` and we compare every block's
//! stored check with the check of what it decoded to, at the same point liblzma would:
//! when the block's last byte has been decoded. The sizes in block headers and index
//! are still checked by liblzma. A check type we do not compute (xz reserves a few)
//! keeps liblzma's own verification: callers ask [`expected_checks`] and get `None`.

use super::error::XzError;
use super::xz_index::XzBlock;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The check types of the xz format (stream flags, low nibble of byte 7 of the header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckKind {
    None,
    Crc32,
    Crc64,
    Sha256,
}

impl CheckKind {
    /// The check named by a stream header, if it is one we compute.
    pub(crate) fn of_stream_header(header: &[u8; 12]) -> Option<CheckKind> {
        match header[7] & 0x0F {
            0x00 => Some(CheckKind::None),
            0x01 => Some(CheckKind::Crc32),
            0x04 => Some(CheckKind::Crc64),
            0x0A => Some(CheckKind::Sha256),
            _ => None,
        }
    }

    /// Bytes the check occupies at the end of a block.
    pub(crate) fn stored_len(self) -> u64 {
        match self {
            CheckKind::None => 0,
            CheckKind::Crc32 => 4,
            CheckKind::Crc64 => 8,
            CheckKind::Sha256 => 32,
        }
    }

    fn name(self) -> &'static str {
        match self {
            CheckKind::None => "no check",
            CheckKind::Crc32 => "CRC32",
            CheckKind::Crc64 => "CRC64",
            CheckKind::Sha256 => "SHA-256",
        }
    }
}

/// What one block must decode to: its length and its stored check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExpectedCheck {
    kind: CheckKind,
    stored: Vec<u8>,
    uncompressed_bytes: u64,
}

/// Read the stored check of `block` (the last bytes of the padded block).
/// `None` if its check type is not one we compute.
pub(crate) fn expected_check(file: &File, block: &XzBlock) -> io::Result<Option<ExpectedCheck>> {
    let Some(kind) = CheckKind::of_stream_header(&block.stream_header) else {
        return Ok(None);
    };
    let len = kind.stored_len();
    let offset = (block.compressed_offset + block.padded_bytes())
        .checked_sub(len)
        .ok_or_else(|| io::Error::other("xz block shorter than its check"))?;
    let mut stored = vec![0u8; len as usize];
    file.read_exact_at(&mut stored, offset)?;
    Ok(Some(ExpectedCheck { kind, stored, uncompressed_bytes: block.uncompressed_bytes }))
}

/// Every block's expected check, in order; `None` if any block's check is not one we compute.
pub(crate) fn expected_checks(
    file: &File,
    blocks: &[XzBlock],
) -> io::Result<Option<Vec<ExpectedCheck>>> {
    let mut all = Vec::with_capacity(blocks.len());
    for block in blocks {
        match expected_check(file, block)? {
            Some(expected) => all.push(expected),
            None => return Ok(None),
        }
    }
    Ok(Some(all))
}

enum Running {
    None,
    Crc32(crc32fast::Hasher),
    Crc64(crc64fast::Digest),
    Sha256(Box<Sha256>),
}

impl Running {
    fn start(kind: CheckKind) -> Running {
        match kind {
            CheckKind::None => Running::None,
            CheckKind::Crc32 => Running::Crc32(crc32fast::Hasher::new()),
            CheckKind::Crc64 => Running::Crc64(crc64fast::Digest::new()),
            CheckKind::Sha256 => Running::Sha256(Box::default()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Running::None => {}
            Running::Crc32(h) => h.update(data),
            Running::Crc64(h) => h.write(data),
            Running::Sha256(h) => h.update(data),
        }
    }

    /// The check as xz stores it (CRCs little-endian).
    fn finish(self) -> Vec<u8> {
        match self {
            Running::None => Vec::new(),
            Running::Crc32(h) => h.finalize().to_le_bytes().to_vec(),
            Running::Crc64(h) => h.sum64().to_le_bytes().to_vec(),
            Running::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// Follows decoded bytes across block boundaries and verifies each block as it ends.
pub(crate) struct BlockChecker {
    expected: Vec<ExpectedCheck>,
    /// Block number (in the file) of `expected[0]`, for messages.
    first_block: usize,
    current: usize,
    in_block: u64,
    running: Option<Running>,
}

impl BlockChecker {
    pub(crate) fn new(expected: Vec<ExpectedCheck>, first_block: usize) -> BlockChecker {
        let running = expected.first().map(|e| Running::start(e.kind));
        BlockChecker { expected, first_block, current: 0, in_block: 0, running }
    }

    /// Feed the next decoded bytes, in order. A block that decodes to nothing is
    /// compared when the bytes after it (or [`Self::finish`]) arrive.
    pub(crate) fn update(&mut self, mut data: &[u8]) -> Result<(), XzError> {
        self.close_finished()?;
        while !data.is_empty() {
            let Some(expected) = self.expected.get(self.current) else {
                return Err(XzError::BlockSize {
                    block: self.first_block + self.expected.len().saturating_sub(1),
                    expected: self.expected.last().map_or(0, |e| e.uncompressed_bytes),
                    actual: self.expected.last().map_or(0, |e| e.uncompressed_bytes)
                        + data.len() as u64,
                });
            };
            let room = expected.uncompressed_bytes - self.in_block;
            let take = data.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            if let Some(running) = self.running.as_mut() {
                running.update(&data[..take]);
            }
            self.in_block += take as u64;
            data = &data[take..];
            self.close_finished()?;
        }
        Ok(())
    }

    /// Compare and move past every block whose bytes are all in.
    fn close_finished(&mut self) -> Result<(), XzError> {
        while let Some(expected) = self.expected.get(self.current) {
            if self.in_block < expected.uncompressed_bytes {
                return Ok(());
            }
            let computed = self.running.take().map_or_else(Vec::new, Running::finish);
            if computed != expected.stored {
                return Err(XzError::CheckMismatch {
                    block: self.first_block + self.current,
                    check: expected.kind.name(),
                });
            }
            self.current += 1;
            self.in_block = 0;
            self.running = self.expected.get(self.current).map(|e| Running::start(e.kind));
        }
        Ok(())
    }

    /// The decoder reached the end: every block must be complete and verified.
    pub(crate) fn finish(&mut self) -> Result<(), XzError> {
        self.close_finished()?;
        match self.expected.get(self.current) {
            None => Ok(()),
            Some(expected) => Err(XzError::BlockSize {
                block: self.first_block + self.current,
                expected: expected.uncompressed_bytes,
                actual: self.in_block,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(kind: CheckKind, data: &[u8]) -> ExpectedCheck {
        let mut running = Running::start(kind);
        running.update(data);
        ExpectedCheck { kind, stored: running.finish(), uncompressed_bytes: data.len() as u64 }
    }

    #[test]
    fn crc64_is_the_xz_variant() {
        // CRC-64/XZ check value of "123456789" (the catalogue's test vector).
        let mut running = Running::start(CheckKind::Crc64);
        running.update(b"123456789");
        assert_eq!(running.finish(), 0x995d_c9bb_df19_39fa_u64.to_le_bytes());
        let mut running = Running::start(CheckKind::Crc32);
        running.update(b"123456789");
        assert_eq!(running.finish(), 0xcbf4_3926_u32.to_le_bytes());
    }

    #[test]
    fn blocks_are_verified_across_arbitrary_splits() {
        let a = vec![1u8; 1000];
        let b = vec![2u8; 10];
        let c = vec![3u8; 333];
        let all: Vec<u8> = [a.clone(), b.clone(), c.clone()].concat();
        for split in [1usize, 7, 10, 999, 1000, 1001, 4096] {
            let mut checker = BlockChecker::new(
                vec![
                    expected(CheckKind::Crc64, &a),
                    expected(CheckKind::Crc32, &b),
                    expected(CheckKind::Sha256, &c),
                ],
                0,
            );
            for piece in all.chunks(split) {
                checker.update(piece).unwrap();
            }
            checker.finish().unwrap();
        }
    }

    #[test]
    fn a_changed_byte_names_its_block() {
        let a = vec![1u8; 100];
        let b = vec![2u8; 100];
        let mut checker = BlockChecker::new(
            vec![expected(CheckKind::Crc64, &a), expected(CheckKind::Crc64, &b)],
            5,
        );
        checker.update(&a).unwrap();
        let mut damaged = b.clone();
        damaged[50] ^= 0x10;
        let error = checker.update(&damaged).unwrap_err();
        assert!(matches!(error, XzError::CheckMismatch { block: 6, check: "CRC64" }), "{error:?}");
    }

    #[test]
    fn short_and_long_output_are_refused() {
        let a = vec![1u8; 100];
        let mut checker = BlockChecker::new(vec![expected(CheckKind::Crc32, &a)], 0);
        checker.update(&a[..99]).unwrap();
        assert!(matches!(checker.finish(), Err(XzError::BlockSize { .. })));
        let mut checker = BlockChecker::new(vec![expected(CheckKind::Crc32, &a)], 0);
        assert!(checker.update(&[a.clone(), vec![0]].concat()).is_err());
    }

    #[test]
    fn empty_blocks_and_no_check_pass() {
        let mut checker = BlockChecker::new(
            vec![expected(CheckKind::Crc64, &[]), expected(CheckKind::None, b"abc")],
            0,
        );
        checker.update(b"abc").unwrap();
        checker.finish().unwrap();
    }
}
