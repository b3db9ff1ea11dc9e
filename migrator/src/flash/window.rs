//! Read a few small windows of the decoded image without flashing it (the first bytes of
//! the partitions restore will open, to check their file systems before anything is
//! destroyed).
//!
//! Raw images are read in place. An xz image is entered through its index
//! ([`super::xz_index`]): only the blocks covering a window are decoded, each wrapped in a
//! single-block stream as the parallel flash does, from the block's start up to the window.
//! Windows are taken in image order and a block already being decoded is continued, so a
//! single-block file (an `.img.xz` staged as downloaded) costs one forward decode up to the
//! last window (for a resinOS image, about everything before resin-data: a few hundred MiB,
//! seconds); a multi-block file at most one block per window. Nothing is written and memory
//! stays at the windows plus one decoder. The blocks' checks are not verified when a decode
//! stops inside a block: the caller has checked the file's sha256 first.

use super::error::{from_source_io, FlashError};
use super::format::ImageFormat;
use super::positional::PositionalReader;
use super::xz_index::{self, single_block_stream_tail, ReadLayoutError, XzBlock};
use super::xz_stream::XzReader;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;

/// One window: `len` decoded bytes from image byte `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub offset: u64,
    pub len: usize,
}

/// The decoded bytes of each window, in the order asked; a window reaching past the image's
/// end comes back shorter (empty when it starts past the end).
pub fn read_windows(image: &File, windows: &[Window]) -> Result<Vec<Vec<u8>>, FlashError> {
    let mut out = vec![Vec::new(); windows.len()];
    match ImageFormat::sniff(image).map_err(FlashError::ReadImage)? {
        ImageFormat::Raw => {
            for (window, bytes) in windows.iter().zip(out.iter_mut()) {
                *bytes = read_raw(image, *window)?;
            }
        }
        ImageFormat::Xz => {
            let layout = xz_index::read_layout(image).map_err(|e| match e {
                ReadLayoutError::Io(e) => FlashError::ReadImage(e),
                ReadLayoutError::Xz(e) => FlashError::Xz(e),
            })?;
            let mut order: Vec<usize> = (0..windows.len()).collect();
            order.sort_by_key(|&i| windows[i].offset);
            let mut decoder = BlockDecoder { image, blocks: &layout.blocks, current: None };
            for i in order {
                out[i] = decoder.read(windows[i])?;
            }
        }
    }
    Ok(out)
}

fn read_raw(image: &File, window: Window) -> Result<Vec<u8>, FlashError> {
    let mut bytes = vec![0u8; window.len];
    let mut filled = 0;
    while filled < bytes.len() {
        let at = window.offset.saturating_add(filled as u64);
        match image.read_at(&mut bytes[filled..], at) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FlashError::ReadImage(e)),
        }
    }
    bytes.truncate(filled);
    Ok(bytes)
}

type BlockStream<'a> = XzReader<BufReader<Box<dyn Read + 'a>>>;

/// The block being decoded: its number, the image offset reached, the decoder.
struct Current<'a> {
    block: usize,
    at: u64,
    reader: BlockStream<'a>,
}

struct BlockDecoder<'a> {
    image: &'a File,
    blocks: &'a [XzBlock],
    current: Option<Current<'a>>,
}

impl<'a> BlockDecoder<'a> {
    fn read(&mut self, window: Window) -> Result<Vec<u8>, FlashError> {
        let blocks = self.blocks;
        let mut bytes = Vec::with_capacity(window.len);
        while bytes.len() < window.len {
            let at = window.offset.saturating_add(bytes.len() as u64);
            let Some(block) = self
                .blocks
                .iter()
                .position(|b| b.image_offset <= at && at - b.image_offset < b.uncompressed_bytes)
            else {
                break;
            };
            let current = self.decoder_at(block, at)?;
            let block_end = blocks[block].image_offset + blocks[block].uncompressed_bytes;
            let want = (window.len - bytes.len()) as u64;
            let take = want.min(block_end - at);
            let before = bytes.len();
            (&mut current.reader).take(take).read_to_end(&mut bytes).map_err(from_source_io)?;
            let got = (bytes.len() - before) as u64;
            current.at += got;
            if got < take {
                return Err(super::error::XzError::BlockSize {
                    block,
                    expected: blocks[block].uncompressed_bytes,
                    actual: current.at - blocks[block].image_offset,
                }
                .into());
            }
        }
        Ok(bytes)
    }

    /// The decoder of `block`, positioned at image byte `at` (continued when it is there or
    /// before, started afresh otherwise).
    fn decoder_at(&mut self, block: usize, at: u64) -> Result<&mut Current<'a>, FlashError> {
        let reusable = self.current.as_ref().is_some_and(|c| c.block == block && c.at <= at);
        if !reusable {
            let found = &self.blocks[block];
            let source: Box<dyn Read + 'a> = Box::new(
                io::Cursor::new(found.stream_header)
                    .chain(
                        PositionalReader::new(self.image, found.compressed_offset)
                            .take(found.padded_bytes()),
                    )
                    .chain(io::Cursor::new(single_block_stream_tail(found))),
            );
            let reader = XzReader::new(BufReader::new(source)).map_err(FlashError::ReadImage)?;
            self.current = Some(Current { block, at: found.image_offset, reader });
        }
        let Some(current) = self.current.as_mut() else {
            return Err(FlashError::Worker("the block decoder vanished"));
        };
        let skip = at - current.at;
        let skipped = io::copy(&mut (&mut current.reader).take(skip), &mut io::sink())
            .map_err(from_source_io)?;
        current.at += skipped;
        if skipped < skip {
            return Err(super::error::XzError::Truncated.into());
        }
        Ok(current)
    }
}
