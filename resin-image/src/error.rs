//! [`ImageError`]: every way reading a download can fail, each one line naming the problem
//! and what to do about it. Truncated and corrupt downloads are told apart from plain I/O
//! failures (which are the device's problem, not the download's).

use std::io;
use std::path::PathBuf;

/// Why a downloaded image cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read the image {path}: {source}; check the file exists and is readable")]
    Read { path: PathBuf, source: io::Error },
    /// The compressed stream (`what`: "xz stream", "gzip stream", "zip entry a.img") stops
    /// before its end.
    #[error(
        "the image {path} is truncated: its {what} ends early; download it again (and its .sha256)"
    )]
    Truncated { path: PathBuf, what: String },
    /// The compressed stream holds bytes its decoder refuses.
    #[error("the image {path} is corrupt: its {what} does not decode ({detail}); download it again (and its .sha256)")]
    Corrupt { path: PathBuf, what: String, detail: String },
    #[error("entry {entry} of the zip {path} is corrupt ({detail}); download it again")]
    ZipEntryCorrupt { path: PathBuf, entry: String, detail: String },
    #[error(
        "the zip {path} cannot be read ({detail}); it is truncated or not a zip: download it again"
    )]
    ZipUnreadable { path: PathBuf, detail: String },
    #[error("entry {entry} of the zip {path} is stored in a way this tool cannot read ({detail}); unzip it and give the .img")]
    ZipEntryUnsupported { path: PathBuf, entry: String, detail: String },
    #[error(
        "the zip {path} holds no disk image (entries: {entries}); download the resinOS image again"
    )]
    ZipNoImage { path: PathBuf, entries: String },
    #[error("the zip {path} holds {count} disk images ({entries}); give one image")]
    ZipSeveralImages { path: PathBuf, count: usize, entries: String },
    /// The decoded image is shorter than its partition table says.
    #[error("the image {path} is truncated: it ends at byte {size} but {needed}; download it again (and its .sha256)")]
    ImageEnds { path: PathBuf, size: u64, needed: String },
    /// A file system's read left the byte range of its partition.
    #[error("the file system at byte {start} of the image {path} reaches past its partition ({len}): the image is damaged; download it again (and its .sha256)")]
    BeyondRange { path: PathBuf, start: u64, len: plan::Bytes },
    #[error("the file {path} is not a disk image (no partition table: no 0x55AA at byte 510); give the resinOS .img, .img.xz, .zip or .gz")]
    NotADiskImage { path: PathBuf },
    #[error("the partition table of the image {path} cannot be read ({detail}); download the image again")]
    PartitionTable { path: PathBuf, detail: String },
    #[error("the image {path} has no boot partition (partition 1 with a FAT file system); give the resinOS image for this device type")]
    NoBootPartition { path: PathBuf },
    #[error("the boot partition of the image {path} cannot be read ({detail}); download the image again")]
    BootPartition { path: PathBuf, detail: String },
    #[error("the flasher image {path} has no flash-rootA partition (an ext4 partition holding /opt); download the resinOS image again")]
    NoFlasherRoot { path: PathBuf },
    #[error("flash-rootA (partition {partition}) of the flasher image {path} cannot be read as ext4 ({detail}); download the resinOS image again")]
    FlasherRoot { path: PathBuf, partition: u32, detail: String },
    #[error("the flasher image {path} has no inner image in /opt of flash-rootA; download the resinOS image again")]
    NoInnerImage { path: PathBuf },
    #[error("the flasher image {path} has {count} inner images in /opt of flash-rootA ({names}); give the plain resinOS image instead")]
    SeveralInnerImages { path: PathBuf, count: usize, names: String },
    #[error("the inner image {inner} of the flasher image {path} cannot be read ({detail}); download the resinOS image again")]
    InnerImage { path: PathBuf, inner: String, detail: String },
}

impl ImageError {
    /// The [`ImageError`] an I/O error carries (one of our readers put it there), or a
    /// [`ImageError::Read`] of `path` for any other I/O failure.
    pub fn from_io(path: impl Into<PathBuf>, error: io::Error) -> ImageError {
        if error.get_ref().is_some_and(|inner| inner.is::<ImageError>()) {
            if let Some(inner) = error.into_inner() {
                if let Ok(image_error) = inner.downcast::<ImageError>() {
                    return *image_error;
                }
            }
            // Unreachable: checked above. Keep a readable error anyway.
            return ImageError::Read { path: path.into(), source: io::Error::other("lost error") };
        }
        ImageError::Read { path: path.into(), source: error }
    }

    /// Whether the download itself is damaged (truncated or corrupt): downloading again is
    /// the fix, unlike a failing disk or a wrong file.
    pub fn is_damaged_download(&self) -> bool {
        matches!(
            self,
            ImageError::Truncated { .. }
                | ImageError::Corrupt { .. }
                | ImageError::ZipEntryCorrupt { .. }
                | ImageError::ZipUnreadable { .. }
                | ImageError::ImageEnds { .. }
                | ImageError::BeyondRange { .. }
        )
    }
}

impl From<ImageError> for io::Error {
    /// Carries the error through `Read` so [`ImageError::from_io`] gets it back.
    fn from(error: ImageError) -> io::Error {
        let kind = match &error {
            ImageError::Read { source, .. } => source.kind(),
            ImageError::Truncated { .. } | ImageError::ImageEnds { .. } => {
                io::ErrorKind::UnexpectedEof
            }
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, error)
    }
}
