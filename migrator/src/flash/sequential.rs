//! One decoder thread feeding the writer: the path for single-block xz and raw images.
//!
//! Two stages, like `xz -dc | dd`, but in one process: the reader thread reads the
//! image file and decodes; the calling thread sums the decoded bytes and writes them.
//! A third thread hashes the image file as stored (its sha256), off the decoder's
//! critical path. Memory: a few 4 MiB chunks in flight, recycled.

use super::block_check::BlockChecker;
use super::direct::AlignedBuf;
use super::error::{from_source_io, FlashError};
use super::flash_target::FlashTarget;
use super::format::ImageFormat;
use super::image_hash::hash_whole_file;
use super::limit::{LimitReader, TooLong};
use super::positional::PositionalReader;
use super::progress::Progress;
use super::target::{
    sync_error, Counters, Placement, RangeDone, RangeWriter, WritePolicy, WRITE_CHUNK_BYTES,
};
use super::xz_stream::XzReader;
use crate::sha256::Sha256Digest;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

const IN_FLIGHT_CHUNKS: usize = 3;
const INPUT_BUFFER_BYTES: usize = 256 * 1024;

enum Chunk {
    /// Decoded bytes, in a buffer aligned for direct writes (recycled).
    Data(AlignedBuf),
    End,
    Failed(FlashError),
}

pub(crate) struct SequentialResult {
    pub done: RangeDone,
    pub compressed_sha256: Sha256Digest,
    pub compressed_bytes: u64,
    pub image_bytes: u64,
}

/// Counts compressed bytes as the decoder pulls them.
struct Counted<'a, R> {
    inner: R,
    counters: &'a Counters,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counters.compressed_in.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn map_read_error(error: io::Error) -> FlashError {
    if let Some(too_long) = error.get_ref().and_then(|e| e.downcast_ref::<TooLong>()) {
        return FlashError::ImageTooLarge {
            image_bytes: too_long.limit_bytes + 1,
            extent_bytes: too_long.limit_bytes,
        };
    }
    from_source_io(error)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn run<T: FlashTarget + ?Sized>(
    image: &File,
    format: ImageFormat,
    checker: Option<BlockChecker>,
    limit_bytes: u64,
    target: &T,
    policy: WritePolicy,
    sync_every_bytes: u64,
    counters: &Counters,
    progress: &mut dyn FnMut(&Progress),
    total: Option<u64>,
) -> Result<SequentialResult, FlashError> {
    let (chunk_tx, chunk_rx) = sync_channel::<Chunk>(IN_FLIGHT_CHUNKS);
    let (recycle_tx, recycle_rx) = sync_channel::<AlignedBuf>(IN_FLIGHT_CHUNKS + 1);
    let abort = AtomicBool::new(false);
    let abort = &abort;
    std::thread::scope(|scope| {
        let hasher = std::thread::Builder::new()
            .name("flash-hash".into())
            .spawn_scoped(scope, move || hash_whole_file(image, abort))
            .map_err(|_| FlashError::Worker("cannot start the hashing thread"))?;
        let producer = std::thread::Builder::new()
            .name("flash-decode".into())
            .spawn_scoped(scope, move || {
                produce(image, format, checker, limit_bytes, counters, &chunk_tx, &recycle_rx)
            });
        let Ok(producer) = producer else {
            abort.store(true, Ordering::Relaxed);
            return Err(FlashError::Worker("cannot start the decoder thread"));
        };
        let result = consume(
            target,
            policy,
            sync_every_bytes,
            counters,
            progress,
            total,
            &chunk_rx,
            &recycle_tx,
        );
        drop(chunk_rx); // unblocks the producer if we stopped early
        if result.is_err() {
            abort.store(true, Ordering::Relaxed);
        }
        let produced =
            producer.join().map_err(|_| FlashError::Worker("the decoder thread panicked"));
        let hashed = hasher.join().map_err(|_| FlashError::Worker("the hashing thread panicked"));
        let (done, image_bytes) = result?;
        produced?;
        let (compressed_sha256, compressed_bytes) = hashed??;
        Ok(SequentialResult { done, compressed_sha256, compressed_bytes, image_bytes })
    })
}

/// Read and decode the image file, sending chunks of decoded bytes.
fn produce(
    image: &File,
    format: ImageFormat,
    checker: Option<BlockChecker>,
    limit_bytes: u64,
    counters: &Counters,
    out: &SyncSender<Chunk>,
    recycled: &Receiver<AlignedBuf>,
) {
    let counted = Counted { inner: PositionalReader::new(image, 0), counters };
    let buffered = BufReader::with_capacity(INPUT_BUFFER_BYTES, counted);
    match format {
        ImageFormat::Xz => {
            let decoder = match checker {
                Some(checker) => XzReader::with_block_checks(buffered, checker),
                None => XzReader::new(buffered),
            };
            match decoder {
                Ok(reader) => pump(LimitReader::new(reader, limit_bytes), counters, out, recycled),
                Err(e) => {
                    let _ = out.send(Chunk::Failed(FlashError::ReadImage(e)));
                }
            }
        }
        ImageFormat::Raw => pump(LimitReader::new(buffered, limit_bytes), counters, out, recycled),
    }
}

fn pump<R: Read>(
    mut reader: LimitReader<R>,
    counters: &Counters,
    out: &SyncSender<Chunk>,
    recycled: &Receiver<AlignedBuf>,
) {
    loop {
        let mut chunk = recycled.try_recv().unwrap_or_else(|_| AlignedBuf::new(WRITE_CHUNK_BYTES));
        match resin_image::read_full(&mut reader, chunk.whole_mut()) {
            Ok(0) => break,
            Ok(n) => {
                chunk.set_len(n);
                counters.decoded_out.fetch_add(n as u64, Ordering::Relaxed);
                if out.send(Chunk::Data(chunk)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = out.send(Chunk::Failed(map_read_error(e)));
                return;
            }
        }
    }
    let _ = out.send(Chunk::End);
}

#[allow(clippy::too_many_arguments)]
fn consume<T: FlashTarget + ?Sized>(
    target: &T,
    policy: WritePolicy,
    sync_every_bytes: u64,
    counters: &Counters,
    progress: &mut dyn FnMut(&Progress),
    total: Option<u64>,
    chunks: &Receiver<Chunk>,
    recycle: &SyncSender<AlignedBuf>,
) -> Result<(RangeDone, u64), FlashError> {
    let mut writer = RangeWriter::new(target, policy, counters, 0);
    let mut requested_at = 0u64;
    let syncer = Syncer::default();
    std::thread::scope(|scope| {
        let (request_tx, request_rx) = sync_channel::<u64>(1);
        let background = std::thread::Builder::new()
            .name("flash-sync".into())
            .spawn_scoped(scope, || syncer.serve(target, policy.placement, request_rx))
            .map_err(|_| FlashError::Worker("cannot start the sync thread"))?;
        let result = (|| loop {
            match chunks.recv() {
                Ok(Chunk::Data(chunk)) => {
                    writer.push(chunk.as_slice())?;
                    let _ = recycle.try_send(chunk);
                    syncer.check()?;
                    // Sync in the background so decoding never waits for the disk;
                    // a request is dropped while one is pending (the next covers it).
                    if writer.written_through() - requested_at >= sync_every_bytes
                        && request_tx.try_send(writer.written_through()).is_ok()
                    {
                        requested_at = writer.written_through();
                    }
                    progress(&Progress::snapshot(counters, total, syncer.durable()));
                }
                Ok(Chunk::End) => {
                    let image_bytes = writer.position();
                    return Ok((writer.finish()?, image_bytes));
                }
                Ok(Chunk::Failed(error)) => return Err(error),
                Err(_) => {
                    return Err(FlashError::Worker("the decoder thread stopped without a word"))
                }
            }
        })();
        drop(request_tx);
        background.join().map_err(|_| FlashError::Worker("the sync thread panicked"))?;
        let result = result?;
        syncer.check()?;
        Ok(result)
    })
}

/// fdatasync in a thread of its own; remembers how far the image is durable.
#[derive(Default)]
struct Syncer {
    durable: AtomicU64,
    failed: Mutex<Option<FlashError>>,
}

impl Syncer {
    fn serve<T: FlashTarget + ?Sized>(
        &self,
        target: &T,
        placement: Placement,
        requests: Receiver<u64>,
    ) {
        for written_through in requests {
            match target.sync() {
                Ok(()) => self.durable.store(written_through, Ordering::Release),
                Err(e) => {
                    let error = sync_error(target, placement.target_byte(written_through), e);
                    if let Ok(mut failed) = self.failed.lock() {
                        failed.get_or_insert(error);
                    }
                    return;
                }
            }
        }
    }

    fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    fn check(&self) -> Result<(), FlashError> {
        match self.failed.lock() {
            Ok(mut failed) => failed.take().map_or(Ok(()), Err),
            Err(_) => Err(FlashError::Worker("the sync thread panicked")),
        }
    }
}
