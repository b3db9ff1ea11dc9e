//! Parallel decoding of multi-block xz images (`xz -T0` output), bounded memory.
//!
//! liblzma's own threaded decoder (`lzma_stream_decoder_mt`, liblzma ≥ 5.4) is not
//! reachable: xz2 0.1.7 builds the liblzma 5.2 bundled with lzma-sys 0.1.20, which has
//! only the threaded *encoder*. Blocks are independent, though, and the xz index says
//! where each one lies in the file and in the image, so each worker:
//! - takes the next block number (work stealing, so uneven blocks balance out),
//! - reads that block with positional reads (no shared file position),
//! - wraps it in a synthetic single-block stream (the original stream header, the
//!   block, an index and footer built for it) so liblzma's ordinary decoder checks the
//!   block's sizes; the block's integrity check is compared by `block_check` (faster
//!   than liblzma 5.2's table CRC64), or by liblzma for a check type we do not compute,
//! - writes the decoded bytes straight to their place on the target (positional
//!   writes; blocks may land out of order) and hashes them.
//!
//! Memory per worker: the LZMA2 dictionary, a 1 MiB input buffer, a 1 MiB output
//! buffer and the 4 MiB write buffer; nothing is queued between threads. A separate
//! thread hashes the compressed file sequentially (sha256 of the stream as stored).
//! Durability is reported for the contiguous prefix of finished blocks only.

use super::block_check::{expected_check, BlockChecker};
use super::error::{FlashError, XzError};
use super::flash_target::FlashTarget;
use super::image_hash::hash_whole_file;
use super::progress::Progress;
use super::target::{sync_error, Counters, RangeDone, RangeWriter, WritePolicy};
use super::xz_index::{single_block_stream_tail, XzBlock, XzLayout};
use crate::sha256::Sha256Digest;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::time::Duration;
use xz2::stream::{Action, Status, Stream};

const INPUT_PIECE_BYTES: usize = 1024 * 1024;
const OUTPUT_PIECE_BYTES: usize = 1024 * 1024;
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

pub(crate) struct ParallelResult {
    pub done: Vec<RangeDone>,
    pub compressed_sha256: Sha256Digest,
    pub compressed_bytes: u64,
}

enum Event {
    BlockDone(usize, RangeDone),
    Failed(FlashError),
}

/// Feed `input` through the decoder; every full output buffer goes to the writer.
fn feed<T: FlashTarget + ?Sized>(
    stream: &mut Stream,
    mut input: &[u8],
    action: Action,
    out: &mut Vec<u8>,
    writer: &mut RangeWriter<'_, T>,
    checker: &mut Option<BlockChecker>,
    block: usize,
) -> Result<Status, FlashError> {
    loop {
        let (in_before, out_len) = (stream.total_in(), out.len());
        let status = stream
            .process_vec(input, out, action)
            .map_err(|e| XzError::BlockData { block, detail: e.to_string() })?;
        input = &input[(stream.total_in() - in_before) as usize..];
        let progressed = out.len() > out_len || stream.total_in() > in_before;
        let out_full = out.len() == out.capacity();
        if out_full {
            if let Some(checker) = checker.as_mut() {
                checker.update(out)?;
            }
            writer.push(out)?;
            out.clear();
        }
        // Never call liblzma again after the end of the stream.
        if status == Status::StreamEnd {
            return Ok(status);
        }
        if out_full {
            continue;
        }
        if input.is_empty() && matches!(action, Action::Run) {
            return Ok(status);
        }
        if !progressed {
            return Err(XzError::Truncated.into());
        }
    }
}

fn decode_block<T: FlashTarget + ?Sized>(
    shared: &Shared<'_, T>,
    index: usize,
    block: &XzBlock,
) -> Result<RangeDone, FlashError> {
    let (image, counters) = (shared.image, shared.counters);
    let mut checker = expected_check(image, block)
        .map_err(FlashError::ReadImage)?
        .map(|expected| BlockChecker::new(vec![expected], index));
    let flags = if checker.is_some() { lzma_sys::LZMA_IGNORE_CHECK } else { 0 };
    let mut stream = Stream::new_stream_decoder(u64::MAX, flags)
        .map_err(|e| XzError::BlockData { block: index, detail: e.to_string() })?;
    let mut writer = RangeWriter::new(shared.target, shared.policy, counters, block.image_offset);
    let mut out = Vec::with_capacity(OUTPUT_PIECE_BYTES);
    let mut input = vec![0u8; INPUT_PIECE_BYTES];
    feed(
        &mut stream,
        &block.stream_header,
        Action::Run,
        &mut out,
        &mut writer,
        &mut checker,
        index,
    )?;
    let mut offset = block.compressed_offset;
    let end = block.compressed_offset + block.padded_bytes();
    while offset < end {
        if shared.abort.load(Ordering::Relaxed) {
            return Err(FlashError::Worker("stopped by another failure"));
        }
        let piece = ((end - offset) as usize).min(INPUT_PIECE_BYTES);
        FileExt::read_exact_at(image, &mut input[..piece], offset).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => FlashError::Xz(XzError::Truncated),
            _ => FlashError::ReadImage(e),
        })?;
        counters.compressed_in.fetch_add(piece as u64, Ordering::Relaxed);
        let before = stream.total_out();
        feed(
            &mut stream,
            &input[..piece],
            Action::Run,
            &mut out,
            &mut writer,
            &mut checker,
            index,
        )?;
        counters.decoded_out.fetch_add(stream.total_out() - before, Ordering::Relaxed);
        offset += piece as u64;
    }
    let tail = single_block_stream_tail(block);
    let before = stream.total_out();
    let mut status =
        feed(&mut stream, &tail, Action::Run, &mut out, &mut writer, &mut checker, index)?;
    if status != Status::StreamEnd {
        status =
            feed(&mut stream, &[], Action::Finish, &mut out, &mut writer, &mut checker, index)?;
    }
    counters.decoded_out.fetch_add(stream.total_out() - before, Ordering::Relaxed);
    if status != Status::StreamEnd {
        return Err(XzError::Truncated.into());
    }
    if let Some(checker) = checker.as_mut() {
        checker.update(&out)?;
        checker.finish()?;
    }
    writer.push(&out)?;
    // The stream total counts the synthetic wrapper only on the input side.
    if stream.total_out() != block.uncompressed_bytes {
        return Err(XzError::BlockSize {
            block: index,
            expected: block.uncompressed_bytes,
            actual: stream.total_out(),
        }
        .into());
    }
    writer.finish()
}

/// What every decoder thread shares.
struct Shared<'a, T: FlashTarget + ?Sized> {
    image: &'a File,
    layout: &'a XzLayout,
    target: &'a T,
    policy: WritePolicy,
    counters: &'a Counters,
    next_block: AtomicUsize,
    abort: AtomicBool,
}

fn worker<T: FlashTarget + ?Sized>(shared: &Shared<'_, T>, events: Sender<Event>) {
    loop {
        if shared.abort.load(Ordering::Relaxed) {
            return;
        }
        let index = shared.next_block.fetch_add(1, Ordering::Relaxed);
        let Some(block) = shared.layout.blocks.get(index) else {
            return;
        };
        let event = match decode_block(shared, index, block) {
            Ok(done) => Event::BlockDone(index, done),
            // The failure that stopped us is reported by its own thread; reporting this
            // one could make it the first error and hide the real one (e.g. a write
            // error that deserves a retry).
            Err(_) if shared.abort.load(Ordering::Relaxed) => return,
            Err(error) => {
                shared.abort.store(true, Ordering::Relaxed);
                Event::Failed(error)
            }
        };
        if events.send(event).is_err() {
            return;
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn run<T: FlashTarget + ?Sized>(
    image: &File,
    layout: &XzLayout,
    threads: usize,
    target: &T,
    policy: WritePolicy,
    sync_every_bytes: u64,
    counters: &Counters,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ParallelResult, FlashError> {
    let shared = Shared {
        image,
        layout,
        target,
        policy,
        counters,
        next_block: AtomicUsize::new(0),
        abort: AtomicBool::new(false),
    };
    let (shared, abort) = (&shared, &shared.abort);
    let total = Some(layout.uncompressed_bytes);
    std::thread::scope(|scope| {
        let (events_tx, events_rx) = channel::<Event>();
        let hasher = std::thread::Builder::new()
            .name("flash-hash".into())
            .spawn_scoped(scope, move || hash_whole_file(image, abort))
            .map_err(|_| FlashError::Worker("cannot start the hashing thread"))?;
        let mut spawn_error = None;
        for n in 0..threads {
            let events = events_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("flash-xz-{n}"))
                .spawn_scoped(scope, move || worker(shared, events));
            if spawned.is_err() {
                abort.store(true, Ordering::Relaxed);
                spawn_error = Some(FlashError::Worker("cannot start a decoder thread"));
                break;
            }
        }
        drop(events_tx);

        let mut done: Vec<Option<RangeDone>> = (0..layout.blocks.len()).map(|_| None).collect();
        let mut first_error = spawn_error;
        let mut contiguous = 0usize;
        let (mut synced_at, mut durable) = (0u64, 0u64);
        loop {
            match events_rx.recv_timeout(PROGRESS_EVERY) {
                Ok(Event::BlockDone(index, range)) => {
                    done[index] = Some(range);
                    while done.get(contiguous).is_some_and(Option::is_some) {
                        contiguous += 1;
                    }
                    let prefix_end = layout
                        .blocks
                        .get(contiguous)
                        .map_or(layout.uncompressed_bytes, |b| b.image_offset);
                    if first_error.is_none() && prefix_end - synced_at >= sync_every_bytes {
                        match target.sync() {
                            Ok(()) => {
                                synced_at = prefix_end;
                                durable = prefix_end;
                            }
                            Err(e) => {
                                abort.store(true, Ordering::Relaxed);
                                let through = shared.policy.placement.target_byte(prefix_end);
                                first_error = Some(sync_error(target, through, e));
                            }
                        }
                    }
                }
                Ok(Event::Failed(error)) => {
                    abort.store(true, Ordering::Relaxed);
                    first_error.get_or_insert(error);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            progress(&Progress::snapshot(counters, total, durable));
        }
        let hashed = hasher.join().map_err(|_| FlashError::Worker("the hashing thread panicked"));
        if let Some(error) = first_error {
            return Err(error);
        }
        let (compressed_sha256, compressed_bytes) = hashed??;
        let done = done
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or(FlashError::Worker("a decoder thread stopped without finishing its block"))?;
        Ok(ParallelResult { done, compressed_sha256, compressed_bytes })
    })
}
