//! The prepared image's file: a multi-block xz stream written to `<dest>.part`, fsynced and
//! renamed to `<dest>` only when complete. Dropped before [`XzSink::finish`], the `.part` is
//! removed, so a failure mid-way leaves no prepared file.
//!
//! Multi-block output lets the migrator's parallel decoder (migrator/src/flash/parallel.rs)
//! spread the flash over its cores. Memory: liblzma's threaded encoder holds about three
//! blocks per thread plus the preset's encoder state; with preset 1 (1 MiB dictionary) and
//! 3 MiB blocks — liblzma's own default block size for preset 1 — one thread takes about
//! 17 MiB (measured with `memusage()`: 4 MiB blocks take 20 MiB per thread, 16 MiB blocks
//! 56 MiB). Threads are added while the encoder stays within [`ENCODER_MEMORY_BUDGET`].

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use xz2::stream::{Check, MtStreamBuilder};
use xz2::write::XzEncoder;

/// Uncompressed bytes per xz block.
pub const BLOCK_BYTES: u64 = 3 * 1024 * 1024;
/// The encoder's memory, all threads together.
pub const ENCODER_MEMORY_BUDGET: u64 = 36 * 1024 * 1024;
const PRESET: u32 = 1;

/// An xz file being written.
pub struct XzSink {
    encoder: Option<XzEncoder<File>>,
    part: PathBuf,
    dest: PathBuf,
}

/// `path` with `.part` appended.
pub fn part_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

fn builder(threads: u32) -> MtStreamBuilder {
    let mut builder = MtStreamBuilder::new();
    builder
        .threads(threads)
        .block_size(BLOCK_BYTES)
        .preset(PRESET)
        .check(Check::Crc64)
        .timeout_ms(300);
    builder
}

/// As many threads as the machine has, while the encoder stays within the budget (one at least).
pub fn encoder_threads() -> u32 {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cores = u32::try_from(cores).unwrap_or(1);
    (1..=cores).rev().find(|&t| builder(t).memusage() <= ENCODER_MEMORY_BUDGET).unwrap_or(1)
}

impl XzSink {
    /// Creates `<dest>.part` (replacing a leftover one).
    pub fn create(dest: &Path) -> io::Result<XzSink> {
        let part = part_of(dest);
        let file = OpenOptions::new().write(true).create(true).truncate(true).open(&part)?;
        let stream = match builder(encoder_threads()).encoder() {
            Ok(stream) => stream,
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                return Err(io::Error::other(format!("the xz encoder cannot start: {e}")));
            }
        };
        Ok(XzSink {
            encoder: Some(XzEncoder::new_stream(file, stream)),
            part,
            dest: dest.to_path_buf(),
        })
    }

    /// Ends the stream, fsyncs it, renames it into place and fsyncs the directory.
    pub fn finish(mut self) -> io::Result<PathBuf> {
        let encoder = self.encoder.take().ok_or_else(|| io::Error::other("finished twice"))?;
        let file = encoder.finish()?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.part, &self.dest)?;
        if let Some(dir) = self.dest.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(self.dest.clone())
    }
}

impl Write for XzSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.encoder {
            Some(encoder) => encoder.write(buf),
            None => Err(io::Error::other("the xz stream is finished")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for XzSink {
    fn drop(&mut self) {
        if self.encoder.take().is_some() {
            let _ = std::fs::remove_file(&self.part);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn encoder_fits_its_budget_and_output_decodes_in_several_blocks() {
        assert!(builder(encoder_threads()).memusage() <= ENCODER_MEMORY_BUDGET);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.img.xz");
        let data: Vec<u8> = (0..(BLOCK_BYTES * 3 + 7)).map(|i| (i * 7 % 251) as u8).collect();
        let mut sink = XzSink::create(&dest).unwrap();
        sink.write_all(&data).unwrap();
        assert!(part_of(&dest).exists() && !dest.exists());
        sink.finish().unwrap();
        assert!(!part_of(&dest).exists());
        let xz = std::fs::read(&dest).unwrap();
        let mut back = Vec::new();
        xz2::read::XzDecoder::new(&xz[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        // The index's record count (the byte after the index indicator 0x00, backward size
        // from the footer) says how many blocks there are.
        let backward = u32::from_le_bytes(xz[xz.len() - 8..xz.len() - 4].try_into().unwrap());
        let index_len = (backward as usize + 1) * 4;
        let index = &xz[xz.len() - 12 - index_len..];
        assert_eq!(index[0], 0);
        assert!(index[1] >= 4, "{} blocks", index[1]);
    }

    #[test]
    fn dropped_unfinished_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.img.xz");
        let mut sink = XzSink::create(&dest).unwrap();
        sink.write_all(b"half").unwrap();
        drop(sink);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
