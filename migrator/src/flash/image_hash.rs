//! The sha256 and length of the whole image file, read on a thread of its own.

use super::error::FlashError;
use super::positional::PositionalReader;
use crate::sha256::{HashingReader, Sha256Digest};
use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};

/// The sha256 and length of the whole image file, read on a thread of its own so the
/// decoder's thread (the critical path) does not pay for it. Stops early when `abort`
/// is raised by a failure elsewhere.
pub(crate) fn hash_whole_file(
    image: &File,
    abort: &AtomicBool,
) -> Result<(Sha256Digest, u64), FlashError> {
    let mut hashing = HashingReader::new(PositionalReader::new(image, 0));
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        if abort.load(Ordering::Relaxed) {
            return Err(FlashError::Worker("hashing stopped by another failure"));
        }
        match hashing.read(&mut buf) {
            Ok(0) => return Ok(hashing.finish()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FlashError::ReadImage(e)),
        }
    }
}
