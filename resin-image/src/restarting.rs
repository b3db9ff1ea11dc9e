//! [`RestartingReader`]: positioned reads over a forward-only decoded stream (xz, gzip, a
//! zip entry), and [`ByteRange`], a view of one partition of it for `ext4-view`, `fatfs` or
//! `mbrman`.
//!
//! A read behind the decoder restarts it from byte 0 (the opener is called again). Blocks of
//! [`CACHE_BLOCK`] bytes read by small reads are kept (up to the cache's byte budget, oldest
//! dropped first), so the few backward jumps of a file-system walk (superblock, group
//! descriptors, inode tables, directories, file data) cost at most one restart each. Large
//! reads, and all reads once [`RestartingReader::set_caching`] turned caching off, go straight
//! from the decoder: streaming a big file's data does not evict the metadata. A raw image
//! needs none of this: its reads are positioned reads of the file.

use crate::read::read_full;
use crate::{Container, Download, ImageError};
use std::borrow::BorrowMut;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Size of the blocks the cache keeps.
pub const CACHE_BLOCK: u64 = 4096;
/// Default memory for cached blocks.
pub const DEFAULT_CACHE_BYTES: usize = 32 * 1024 * 1024;
/// Reads larger than this are not cached (ext4-view reads 32 KiB groups of blocks).
pub const LARGE_READ: usize = 64 * 1024;
const SKIP_BUFFER: usize = 256 * 1024;
/// How far forward a cached read keeps the blocks it passes over.
pub const CACHE_SKIPPED: u64 = 1024 * 1024;

/// Makes a fresh decoded stream from byte 0.
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn Read + Send>, ImageError> + Send>;

/// Positioned reads over a forward-only decoded stream; see the module documentation.
pub struct RestartingReader {
    path: PathBuf,
    source: Source,
    cache: BlockCache,
    cache_new: Arc<AtomicBool>,
    restarts: Arc<AtomicUsize>,
}

enum Source {
    /// A raw image: positioned reads, never restarted.
    File {
        file: File,
        size: u64,
    },
    Stream {
        opener: Opener,
        decoder: Option<Box<dyn Read + Send>>,
        decoded: u64,
    },
}

impl RestartingReader {
    /// Reads what `opener` decodes; `path` names the image in errors; at most `cache_bytes`
    /// of blocks are kept.
    pub fn new(path: &Path, opener: Opener, cache_bytes: usize) -> RestartingReader {
        RestartingReader {
            path: path.to_path_buf(),
            source: Source::Stream { opener, decoder: None, decoded: 0 },
            cache: BlockCache::new(cache_bytes / CACHE_BLOCK as usize),
            cache_new: Arc::new(AtomicBool::new(true)),
            restarts: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Reads the disk image of `download`: positioned reads for a raw file, the decoded
    /// stream (restarted when needed) otherwise.
    pub fn for_download(download: &Download) -> Result<RestartingReader, ImageError> {
        if download.container() == Container::Raw {
            let path = download.path();
            let read_error = |source| ImageError::Read { path: path.to_path_buf(), source };
            let file = File::open(path).map_err(read_error)?;
            let size = file.metadata().map_err(read_error)?.len();
            return Ok(RestartingReader {
                path: path.to_path_buf(),
                source: Source::File { file, size },
                cache: BlockCache::new(1),
                cache_new: Arc::new(AtomicBool::new(false)),
                restarts: Arc::new(AtomicUsize::new(0)),
            });
        }
        let owned = download.clone();
        Ok(RestartingReader::new(
            download.path(),
            Box::new(move || owned.decoded()),
            DEFAULT_CACHE_BYTES,
        ))
    }

    /// The image named in errors.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How often the decoder went back to byte 0 (the first opening does not count).
    pub fn restarts(&self) -> usize {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The restart count, readable after the reader moved into a file-system reader.
    pub fn restart_counter(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.restarts)
    }

    /// Whether blocks read from now on are kept (blocks already kept stay readable).
    pub fn set_caching(&mut self, on: bool) {
        self.cache_new.store(on, Ordering::Relaxed);
    }

    /// [`RestartingReader::set_caching`]'s switch, usable after the reader moved into a
    /// file-system reader (e.g. off once a file's metadata is read, before its data).
    pub fn caching_switch(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cache_new)
    }

    /// A view of `len` bytes from `start`.
    pub fn range(self, start: u64, len: u64) -> ByteRange<RestartingReader> {
        ByteRange::new(self, start, len)
    }

    /// Fills `dst` with the image's bytes from `offset`.
    pub fn read_at(&mut self, offset: u64, dst: &mut [u8]) -> Result<(), ImageError> {
        if let Source::File { file, size } = &self.source {
            return file.read_exact_at(dst, offset).map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => ImageError::ImageEnds {
                    path: self.path.clone(),
                    size: *size,
                    needed: format!("bytes up to {} are needed", offset + dst.len() as u64),
                },
                _ => ImageError::Read { path: self.path.clone(), source: e },
            });
        }
        let large = dst.len() > LARGE_READ;
        let mut filled = 0usize;
        while filled < dst.len() {
            let pos = offset + filled as u64;
            let index = pos / CACHE_BLOCK;
            let within = (pos % CACHE_BLOCK) as usize;
            if let Some(block) = self.cache.get(index) {
                let from = block.get(within..).unwrap_or(&[]);
                let n = from.len().min(dst.len() - filled);
                if n == 0 {
                    return Err(self.ends_at(index * CACHE_BLOCK + block.len() as u64, pos));
                }
                dst[filled..filled + n].copy_from_slice(&from[..n]);
                filled += n;
                continue;
            }
            let block_start = index * CACHE_BLOCK;
            let decoded = self.decoded();
            let mid_block = block_start < decoded && decoded <= pos;
            if !self.cache_new.load(Ordering::Relaxed) || large || mid_block {
                self.seek_stream(pos)?;
                self.fill(&mut dst[filled..])?;
                return Ok(());
            }
            self.seek_stream_caching(block_start)?;
            let mut block = vec![0u8; CACHE_BLOCK as usize];
            let n = self.fill_some(&mut block)?;
            block.truncate(n);
            self.cache.insert(index, block);
        }
        Ok(())
    }

    fn decoded(&self) -> u64 {
        match &self.source {
            Source::Stream { decoded, .. } => *decoded,
            Source::File { .. } => 0,
        }
    }

    fn ends_at(&self, size: u64, needed: u64) -> ImageError {
        ImageError::ImageEnds {
            path: self.path.clone(),
            size,
            needed: format!("byte {needed} is needed"),
        }
    }

    /// [`RestartingReader::seek_stream`] for a cached read: a short way forward from a block
    /// boundary ([`CACHE_SKIPPED`] at most) keeps the blocks passed over, since a file-system
    /// walk soon wants what lies between two of its reads (bitmaps and inode tables between
    /// group descriptors and directories, a file's first blocks next to its directory).
    fn seek_stream_caching(&mut self, to: u64) -> Result<(), ImageError> {
        let decoded = self.decoded();
        let started = matches!(self.source, Source::Stream { decoder: Some(_), .. });
        if started
            && decoded <= to
            && to - decoded <= CACHE_SKIPPED
            && decoded.is_multiple_of(CACHE_BLOCK)
        {
            while self.decoded() < to {
                let index = self.decoded() / CACHE_BLOCK;
                let mut block = vec![0u8; CACHE_BLOCK as usize];
                self.fill(&mut block)?;
                self.cache.insert(index, block);
            }
            return Ok(());
        }
        self.seek_stream(to)
    }

    /// Positions the decoder at `to`: restarts it when `to` lies behind, then decodes and
    /// discards up to `to`.
    fn seek_stream(&mut self, to: u64) -> Result<(), ImageError> {
        let Source::Stream { opener, decoder, decoded } = &mut self.source else {
            return Ok(());
        };
        if decoder.is_none() || to < *decoded {
            if decoder.is_some() {
                let count = self.restarts.fetch_add(1, Ordering::Relaxed) + 1;
                log::debug!(
                    "{}: going back to byte {to} (decoded up to {decoded}), restart {count} of the decoder",
                    self.path.display(),
                );
            }
            *decoder = Some(opener()?);
            *decoded = 0;
        }
        let mut scratch = vec![0u8; SKIP_BUFFER];
        while self.decoded() < to {
            let want = (to - self.decoded()).min(SKIP_BUFFER as u64) as usize;
            self.fill(&mut scratch[..want])?;
        }
        Ok(())
    }

    /// Decodes exactly `buf.len()` bytes.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), ImageError> {
        let n = self.fill_some(buf)?;
        if n < buf.len() {
            let end = self.decoded();
            return Err(self.ends_at(end, end));
        }
        Ok(())
    }

    /// Decodes up to `buf.len()` bytes, fewer only at the stream's end.
    fn fill_some(&mut self, buf: &mut [u8]) -> Result<usize, ImageError> {
        let Source::Stream { decoder: Some(decoder), decoded, .. } = &mut self.source else {
            return Ok(0);
        };
        let n = read_full(decoder, buf).map_err(|e| ImageError::from_io(&self.path, e))?;
        *decoded += n as u64;
        Ok(n)
    }
}

/// `len` bytes of the image from `start` (a partition): positioned reads for `ext4-view`
/// ([`ext4_view::Ext4Read`]) and `Read + Seek` for `fatfs` and `mbrman`. Reads leaving the
/// range fail with [`ImageError::BeyondRange`] (`Ext4Read`) or end early (`Read`).
pub struct ByteRange<R: BorrowMut<RestartingReader>> {
    reader: R,
    start: u64,
    len: u64,
    pos: u64,
}

impl<R: BorrowMut<RestartingReader>> ByteRange<R> {
    pub fn new(reader: R, start: u64, len: u64) -> ByteRange<R> {
        ByteRange { reader, start, len, pos: 0 }
    }

    pub fn into_inner(self) -> R {
        self.reader
    }

    pub fn reader(&mut self) -> &mut RestartingReader {
        self.reader.borrow_mut()
    }

    /// Fills `dst` from `offset` inside the range.
    pub fn read_at(&mut self, offset: u64, dst: &mut [u8]) -> Result<(), ImageError> {
        match offset.checked_add(dst.len() as u64) {
            Some(end) if end <= self.len => {
                self.reader.borrow_mut().read_at(self.start + offset, dst)
            }
            _ => Err(ImageError::BeyondRange {
                path: self.reader.borrow_mut().path.clone(),
                start: self.start,
                len: plan::Bytes(self.len),
            }),
        }
    }
}

impl<R: BorrowMut<RestartingReader>> ext4_view::Ext4Read for ByteRange<R> {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.read_at(start_byte, dst)?)
    }
}

impl<R: BorrowMut<RestartingReader>> Read for ByteRange<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        self.read_at(self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: BorrowMut<RestartingReader>> Seek for ByteRange<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let pos = pos.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "seek before the start of the range")
        })?;
        self.pos = pos;
        Ok(pos)
    }
}

/// `fatfs` wants `Write` too; the views are read-only, so writing fails.
impl<R: BorrowMut<RestartingReader>> io::Write for ByteRange<R> {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::PermissionDenied, "the image is read only"))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Blocks by index, at most `capacity`, the oldest dropped first.
struct BlockCache {
    blocks: HashMap<u64, Vec<u8>>,
    order: VecDeque<u64>,
    capacity: usize,
}

impl BlockCache {
    fn new(capacity: usize) -> BlockCache {
        BlockCache { blocks: HashMap::new(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    fn get(&self, index: u64) -> Option<&[u8]> {
        self.blocks.get(&index).map(Vec::as_slice)
    }

    fn insert(&mut self, index: u64, data: Vec<u8>) {
        while self.blocks.len() >= self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.blocks.remove(&old);
                }
                None => break,
            }
        }
        if self.blocks.insert(index, data).is_none() {
            self.order.push_back(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte `i` of the test stream.
    fn byte_at(i: u64) -> u8 {
        (i / 4096) as u8 ^ (i % 251) as u8
    }

    /// A reader over an in-memory stream of `len` bytes ([`byte_at`]).
    fn reader(len: u64) -> RestartingReader {
        let bytes: Arc<Vec<u8>> = Arc::new((0..len).map(byte_at).collect());
        RestartingReader::new(
            Path::new("test.img"),
            Box::new(move || Ok(Box::new(io::Cursor::new(Arc::clone(&bytes).to_vec())))),
            DEFAULT_CACHE_BYTES,
        )
    }

    fn check(reader: &mut ByteRange<&mut RestartingReader>, offset: u64, len: usize) {
        let mut buf = vec![0u8; len];
        reader.read_at(offset, &mut buf).unwrap();
        let start = reader.start;
        let expected: Vec<u8> = (0..len as u64).map(|i| byte_at(start + offset + i)).collect();
        assert!(buf == expected, "wrong bytes at {offset}");
    }

    #[test]
    fn goes_back_through_its_cache_or_one_restart() {
        let (start, len) = (3 * 4096 + 512, 4 * 1024 * 1024 + 100);
        let mut whole = reader(start + len + 8192);
        let mut region = ByteRange::new(&mut whole, start, len);
        check(&mut region, 1024, 1024);
        check(&mut region, 3 * 1024 * 1024 + 4000, 9000);
        // Both already read: from the cache.
        check(&mut region, 1500, 100);
        check(&mut region, 3 * 1024 * 1024 + 4096, 4096);
        assert_eq!(region.reader().restarts(), 0);
        // Behind the decoder and never read: one restart, then forward again.
        check(&mut region, 1024 * 1024, 32 * 1024);
        assert_eq!(region.reader().restarts(), 1);
        check(&mut region, 2 * 1024 * 1024, 4096);
        // The region's last bytes, then past the region.
        check(&mut region, len - 100, 100);
        assert_eq!(region.reader().restarts(), 1);
        let mut buf = [0u8; 2];
        let error = region.read_at(len - 1, &mut buf).unwrap_err();
        assert!(matches!(error, ImageError::BeyondRange { .. }), "{error}");
    }

    #[test]
    fn large_and_uncached_reads_stream_forward() {
        let mut whole = reader(2 * 1024 * 1024);
        let mut region = ByteRange::new(&mut whole, 0, 2 * 1024 * 1024);
        check(&mut region, 4096, 100);
        region.reader().set_caching(false);
        for i in 1..16u64 {
            check(&mut region, i * 128 * 1024, 100 * 1024);
        }
        // The small read before caching went off is still kept.
        check(&mut region, 4096, 100);
        assert_eq!(region.reader().restarts(), 0);
        assert_eq!(region.reader().cache.blocks.len(), 1);
        // Not kept, behind: a restart.
        check(&mut region, 8192, 100);
        assert_eq!(region.reader().restarts(), 1);
    }

    #[test]
    fn stream_ending_early_says_where() {
        let mut whole = reader(64 * 1024);
        let mut buf = [0u8; 4096];
        let error = whole.read_at(64 * 1024, &mut buf).unwrap_err();
        assert!(matches!(error, ImageError::ImageEnds { size: 65536, .. }), "{error}");
        let error = whole.read_at(62 * 1024, &mut buf).unwrap_err();
        assert!(matches!(error, ImageError::ImageEnds { size: 65536, .. }), "{error}");
    }

    #[test]
    fn cache_drops_the_oldest_block_when_full() {
        let mut cache = BlockCache::new(2);
        cache.insert(1, vec![1]);
        cache.insert(2, vec![2]);
        cache.insert(3, vec![3]);
        assert!(cache.get(1).is_none());
        assert_eq!(cache.get(2), Some(&[2u8][..]));
        assert_eq!(cache.get(3), Some(&[3u8][..]));
    }
}
