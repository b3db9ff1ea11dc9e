//! The staged image's decoded bytes as a plain stream (raw or xz, sniffed), for the
//! readers that need the image but do not flash it: the head for finalize, the partitions
//! held back from the flash.

use super::format::ImageFormat;
use super::target::HEAD_BYTES;
use super::xz_stream::XzReader;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// The image file could not be opened, read or decoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {path}: {source}")]
pub struct ImageReadError {
    pub action: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
}

/// `map_err` for an I/O error on the image at `path`.
pub fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ImageReadError {
    let path = path.to_path_buf();
    move |source| ImageReadError { action, path, source }
}

/// The staged image's decoded bytes, as a stream.
pub fn decoded_reader(image_path: &Path) -> Result<Box<dyn Read>, ImageReadError> {
    let file = File::open(image_path).map_err(io_err("open", image_path))?;
    let format = ImageFormat::sniff(&file).map_err(io_err("read", image_path))?;
    Ok(match format {
        ImageFormat::Raw => Box::new(file),
        ImageFormat::Xz => {
            Box::new(XzReader::new(BufReader::new(file)).map_err(io_err("decode", image_path))?)
        }
    })
}

/// The image's first `HEAD_BYTES` (or all of a smaller image), decoded.
pub fn read_head(image_path: &Path) -> Result<Vec<u8>, ImageReadError> {
    let reader = decoded_reader(image_path)?;
    let mut head = Vec::with_capacity(HEAD_BYTES as usize);
    reader.take(HEAD_BYTES).read_to_end(&mut head).map_err(io_err("decode", image_path))?;
    Ok(head)
}
