//! [`open_inner`]: a flasher's inner image as a stream, read in process from flash-rootA's
//! ext4 (no mounts, bounded memory). A thread walks the file with `ext4-view` (whose readers
//! are not `Send`) and hands 1 MiB chunks through a small channel.
//!
//! Facts: balena takeover extracted `/opt/resin-image-genericx86-64.resinos-img` from rootA
//! of a gzip stream the same way (before commit c2ee65c, `src/stage1/image_retrieval.rs`).

use crate::classify::{ext4_error, find_root, load_ext4};
use crate::partitions::{read_partitions, read_primary_partitions};
use crate::{Download, FlasherFacts, ImageError, RestartingReader};
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

const CHUNK: usize = 1024 * 1024;
/// Chunks decoded ahead of the consumer.
const CHUNKS_AHEAD: usize = 4;

/// Streams the inner image's bytes. File data is read forward through the decoder (the
/// cache is off once the file's metadata is read), so one pass when the file's extents
/// ascend, as `mkfs.ext4 -d` lays them out. Errors (truncated, corrupt download, a short
/// file) come as `io::Error`s carrying an [`ImageError`].
pub fn open_inner(
    download: &Download,
    flasher: &FlasherFacts,
) -> Result<Box<dyn Read + Send>, ImageError> {
    let (tx, rx) = sync_channel(CHUNKS_AHEAD);
    let download = download.clone();
    let facts = flasher.clone();
    let path = download.path().to_path_buf();
    std::thread::Builder::new()
        .name("inner-image".to_string())
        .spawn(move || {
            if let Err(e) = stream(&download, &facts, &tx) {
                let _ = tx.send(Err(e));
            }
        })
        .map_err(|source| ImageError::Read { path: path.clone(), source })?;
    Ok(Box::new(InnerReader {
        path,
        inner: flasher.inner_path.clone(),
        size: flasher.inner_size.get(),
        rx,
        chunk: Vec::new(),
        at: 0,
        total: 0,
    }))
}

type Chunk = Result<Vec<u8>, ImageError>;

fn stream(
    download: &Download,
    facts: &FlasherFacts,
    tx: &SyncSender<Chunk>,
) -> Result<(), ImageError> {
    let path = download.path().to_path_buf();
    let mut reader = RestartingReader::for_download(download)?;
    let primary = read_primary_partitions(&mut reader)?;
    let root = match primary.iter().find(|p| p.number == facts.root_partition) {
        Some(root) => root.clone(),
        None => {
            let partitions = read_partitions(&mut reader)?;
            match partitions.iter().find(|p| p.number == facts.root_partition) {
                Some(root) => root.clone(),
                None => find_root(&mut reader, &partitions, &mut Vec::new())?
                    .ok_or_else(|| ImageError::NoFlasherRoot { path: path.clone() })?,
            }
        }
    };
    let caching = reader.caching_switch();
    let fs = load_ext4(reader, &root)?;
    let fs_error = |e| ext4_error(&path, root.number, e);
    let mut file = fs.open(facts.inner_path.as_str()).map_err(fs_error)?;
    caching.store(false, std::sync::atomic::Ordering::Relaxed);
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let mut filled = 0;
        while filled < CHUNK {
            let n = file.read_bytes(&mut chunk[filled..]).map_err(fs_error)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        chunk.truncate(filled);
        if filled == 0 || tx.send(Ok(chunk)).is_err() {
            // The end, or the consumer went away.
            return Ok(());
        }
    }
}

/// The consumer's side: chunks in order; a stream shorter than the file's recorded size is
/// an error, not an early end.
struct InnerReader {
    path: PathBuf,
    inner: String,
    size: u64,
    rx: Receiver<Chunk>,
    chunk: Vec<u8>,
    at: usize,
    total: u64,
}

impl Read for InnerReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at >= self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.total += chunk.len() as u64;
                    self.chunk = chunk;
                    self.at = 0;
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) if self.total == self.size => return Ok(0),
                Err(_) => {
                    return Err(ImageError::InnerImage {
                        path: self.path.clone(),
                        inner: self.inner.clone(),
                        detail: format!("it ended after {} of its {} bytes", self.total, self.size),
                    }
                    .into())
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
