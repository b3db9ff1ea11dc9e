//! Streaming xz decoder as a `Read` adapter (liblzma through xz2, in process).
//!
//! Accepts concatenated streams and stream padding, like `xz -d`. A stream that
//! stops early is [`XzError::Truncated`]; damaged data is [`XzError::StreamData`].
//! Given the blocks' expected checks (`XzReader::with_block_checks`), liblzma skips
//! its own check and `block_check::BlockChecker` compares each block's.

use super::block_check::BlockChecker;
use super::error::{xz_io, XzError};
use std::io::{self, BufRead, Read};
use xz2::stream::{Action, Status, Stream};

pub struct XzReader<R> {
    inner: R,
    stream: Stream,
    finished: bool,
    idle_at_eof: u8,
    checker: Option<BlockChecker>,
}

impl<R: BufRead> XzReader<R> {
    /// liblzma verifies every block's check.
    pub fn new(inner: R) -> io::Result<Self> {
        Self::start(inner, None)
    }

    /// `checker` verifies the blocks' checks (it must describe every block of the file).
    pub(crate) fn with_block_checks(inner: R, checker: BlockChecker) -> io::Result<Self> {
        Self::start(inner, Some(checker))
    }

    fn start(inner: R, checker: Option<BlockChecker>) -> io::Result<Self> {
        let mut flags = lzma_sys::LZMA_CONCATENATED;
        if checker.is_some() {
            flags |= lzma_sys::LZMA_IGNORE_CHECK;
        }
        let stream = Stream::new_stream_decoder(u64::MAX, flags)
            .map_err(|e| io::Error::other(format!("cannot start the xz decoder: {e}")))?;
        Ok(XzReader { inner, stream, finished: false, idle_at_eof: 0, checker })
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: BufRead> Read for XzReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.finished {
                return Ok(0);
            }
            let input = self.inner.fill_buf()?;
            let at_eof = input.is_empty();
            let (in_before, out_before) = (self.stream.total_in(), self.stream.total_out());
            let action = if at_eof { Action::Finish } else { Action::Run };
            let status = self.stream.process(input, buf, action);
            let consumed = (self.stream.total_in() - in_before) as usize;
            let produced = (self.stream.total_out() - out_before) as usize;
            self.inner.consume(consumed);
            match status {
                Ok(Status::StreamEnd) => self.finished = true,
                Ok(_) => {}
                Err(e) => {
                    return Err(xz_io(XzError::StreamData {
                        compressed_offset: self.stream.total_in(),
                        detail: e.to_string(),
                    }))
                }
            }
            if let Some(checker) = self.checker.as_mut() {
                checker.update(&buf[..produced]).map_err(xz_io)?;
                if self.finished {
                    checker.finish().map_err(xz_io)?;
                }
            }
            if produced > 0 || self.finished {
                return Ok(produced);
            }
            if at_eof && consumed == 0 {
                // liblzma needs one idle Finish call to notice a stream that just ended.
                self.idle_at_eof += 1;
                if self.idle_at_eof >= 2 {
                    return Err(xz_io(XzError::Truncated));
                }
            }
        }
    }
}
