//! Writing around the page cache: a target opened twice, `O_DIRECT` for aligned
//! writes and buffered for everything else, and buffers aligned for it.
//!
//! Why: through the page cache every image byte is copied once more by the kernel and
//! written back by its flusher threads; on a 2-core device that CPU comes out of the
//! decoder's core (profiled on the bench: the writer thread spent ~40 % of all samples
//! in `copy_folio_from_iter_atomic`). The engine writes 4 MiB pieces at 4 MiB-aligned
//! image offsets from aligned buffers, so nearly every byte goes the direct way; a
//! piece that is not aligned (image tail, a block boundary of a multi-block image, a
//! resume point) goes through the buffered descriptor. Both name the same file, and
//! the kernel keeps them coherent (a direct write writes back and drops cached pages
//! of its range). Where `O_DIRECT` cannot be opened (a file system without it), every
//! write is buffered, as before.

use super::flash_target::FlashTarget;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Alignment of memory, offset and length for a direct write: the largest logical
/// block size in use (4Kn disks); a multiple of 512.
pub const DIRECT_ALIGN: usize = 4096;

/// A file or block device written with `O_DIRECT` where a write allows it.
#[derive(Debug)]
pub struct DirectTarget {
    buffered: File,
    direct: Option<File>,
}

impl DirectTarget {
    /// Open `path` read + write, and a second time with `O_DIRECT` if the kernel allows.
    pub fn open(path: &Path) -> io::Result<DirectTarget> {
        let buffered = OpenOptions::new().read(true).write(true).open(path)?;
        let direct = match OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(path) {
            Ok(file) => Some(file),
            Err(e) => {
                log::info!(
                    "flash: {} cannot be opened with O_DIRECT ({e}); writing through the page cache",
                    path.display()
                );
                None
            }
        };
        Ok(DirectTarget { buffered, direct })
    }

    /// Whether aligned writes bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// The buffered descriptor (reads, metadata).
    pub fn file(&self) -> &File {
        &self.buffered
    }
}

fn aligned(buf: &[u8], offset: u64) -> bool {
    let align = DIRECT_ALIGN as u64;
    buf.as_ptr().addr().is_multiple_of(DIRECT_ALIGN)
        && offset.is_multiple_of(align)
        && (buf.len() as u64).is_multiple_of(align)
}

impl FlashTarget for DirectTarget {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        match &self.direct {
            Some(direct) if !buf.is_empty() && aligned(buf, offset) => {
                FileExt::write_all_at(direct, buf, offset)
            }
            _ => FileExt::write_all_at(&self.buffered, buf, offset),
        }
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(&self.buffered, buf, offset)
    }

    /// One fdatasync covers both descriptors: same inode, and it flushes the disk's cache.
    fn sync(&self) -> io::Result<()> {
        self.buffered.sync_data()
    }

    fn drop_cache(&self, offset: u64, len: u64) -> io::Result<()> {
        self.buffered.drop_cache(offset, len)
    }

    fn name(&self) -> String {
        self.buffered.name()
    }
}

/// A fixed-capacity byte buffer whose first byte is [`DIRECT_ALIGN`]-aligned.
/// (An over-allocated `Vec` and a window into it: no unsafe code.)
pub(crate) struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    capacity: usize,
    len: usize,
}

impl AlignedBuf {
    pub(crate) fn new(capacity: usize) -> AlignedBuf {
        let storage = vec![0u8; capacity + DIRECT_ALIGN];
        let misalign = storage.as_ptr().addr() % DIRECT_ALIGN;
        let start = (DIRECT_ALIGN - misalign) % DIRECT_ALIGN;
        AlignedBuf { storage, start, capacity, len: 0 }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    /// The whole capacity, to be filled; then [`Self::set_len`].
    pub(crate) fn whole_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.capacity]
    }

    pub(crate) fn set_len(&mut self, len: usize) {
        self.len = len.min(self.capacity);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Append as much of `data` as fits; returns how much that was.
    pub(crate) fn extend_from_slice(&mut self, data: &[u8]) -> usize {
        let take = data.len().min(self.capacity - self.len);
        let at = self.start + self.len;
        self.storage[at..at + take].copy_from_slice(&data[..take]);
        self.len += take;
        take
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffers_start_aligned_and_keep_their_bytes() {
        for capacity in [1usize, 4096, 4 * 1024 * 1024] {
            let mut buf = AlignedBuf::new(capacity);
            assert!(buf.whole_mut().as_ptr().addr().is_multiple_of(DIRECT_ALIGN));
            assert_eq!(buf.whole_mut().len(), capacity);
            assert_eq!(buf.extend_from_slice(&[7u8; 3]), 3.min(capacity));
            assert!(buf.as_slice().iter().all(|b| *b == 7));
            buf.clear();
            assert!(buf.is_empty());
        }
        let mut buf = AlignedBuf::new(4);
        assert_eq!(buf.extend_from_slice(b"abcdef"), 4);
        assert_eq!(buf.as_slice(), b"abcd");
    }

    #[test]
    fn only_aligned_writes_qualify() {
        let mut buf = AlignedBuf::new(2 * DIRECT_ALIGN);
        buf.set_len(2 * DIRECT_ALIGN);
        let whole = buf.as_slice();
        assert!(aligned(whole, 0));
        assert!(aligned(whole, 8192));
        assert!(!aligned(whole, 512));
        assert!(!aligned(&whole[1..4097], 0));
        assert!(!aligned(&whole[..100], 0));
    }
}
