//! [`ImageError`]: every way reading a download can fail, each one line naming the problem
//! and what to do about it. Truncated and corrupt downloads are told apart from plain I/O
//! failures (which are the device's problem, not the download's).

use plan::RefusalText;
use std::io;
use std::path::PathBuf;

/// Why a downloaded image cannot be read; [`ImageError::text`] gives the problem and the fix
/// apart, the one line joins them.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.text())]
pub enum ImageError {
    Read {
        path: PathBuf,
        source: io::Error,
    },
    /// The compressed stream (`what`: "xz stream", "gzip stream", "zip entry a.img") stops
    /// before its end.
    Truncated {
        path: PathBuf,
        what: String,
    },
    /// The compressed stream holds bytes its decoder refuses.
    Corrupt {
        path: PathBuf,
        what: String,
        detail: String,
    },
    ZipEntryCorrupt {
        path: PathBuf,
        entry: String,
        detail: String,
    },
    ZipUnreadable {
        path: PathBuf,
        detail: String,
    },
    ZipEntryUnsupported {
        path: PathBuf,
        entry: String,
        detail: String,
    },
    ZipNoImage {
        path: PathBuf,
        entries: String,
    },
    ZipSeveralImages {
        path: PathBuf,
        count: usize,
        entries: String,
    },
    /// The decoded image is shorter than its partition table says.
    ImageEnds {
        path: PathBuf,
        size: u64,
        needed: String,
    },
    /// A file system's read left the byte range of its partition.
    BeyondRange {
        path: PathBuf,
        start: u64,
        len: plan::Bytes,
    },
    NotADiskImage {
        path: PathBuf,
    },
    PartitionTable {
        path: PathBuf,
        detail: String,
    },
    NoBootPartition {
        path: PathBuf,
    },
    BootPartition {
        path: PathBuf,
        detail: String,
    },
    NoFlasherRoot {
        path: PathBuf,
    },
    FlasherRoot {
        path: PathBuf,
        partition: u32,
        detail: String,
    },
    NoInnerImage {
        path: PathBuf,
    },
    SeveralInnerImages {
        path: PathBuf,
        count: usize,
        names: String,
    },
    InnerImage {
        path: PathBuf,
        inner: String,
        detail: String,
    },
}

impl ImageError {
    /// What is wrong with the download and what to do about it, kept apart.
    pub fn text(&self) -> RefusalText {
        const AGAIN_WITH_SHA: &str = "download it again (and its .sha256)";
        const RESINOS_AGAIN: &str = "download the resinOS image again";
        let new = |problem: String, fix: &str| RefusalText::new(problem, fix.into());
        match self {
            ImageError::Read { path, source } => new(
                format!("cannot read the image {}: {source}", path.display()),
                "check the file exists and is readable",
            ),
            ImageError::Truncated { path, what } => new(
                format!("the image {} is truncated: its {what} ends early", path.display()),
                AGAIN_WITH_SHA,
            ),
            ImageError::Corrupt { path, what, detail } => new(
                format!(
                    "the image {} is corrupt: its {what} does not decode ({detail})",
                    path.display()
                ),
                AGAIN_WITH_SHA,
            ),
            ImageError::ZipEntryCorrupt { path, entry, detail } => new(
                format!("entry {entry} of the zip {} is corrupt ({detail})", path.display()),
                "download it again",
            ),
            // The fix names the likely cause first; the one line reads as before.
            ImageError::ZipUnreadable { path, detail } => new(
                format!("the zip {} cannot be read ({detail})", path.display()),
                "it is truncated or not a zip: download it again",
            ),
            ImageError::ZipEntryUnsupported { path, entry, detail } => new(
                format!(
                    "entry {entry} of the zip {} is stored in a way this tool cannot read ({detail})",
                    path.display()
                ),
                "unzip it and give the .img",
            ),
            ImageError::ZipNoImage { path, entries } => new(
                format!("the zip {} holds no disk image (entries: {entries})", path.display()),
                RESINOS_AGAIN,
            ),
            ImageError::ZipSeveralImages { path, count, entries } => new(
                format!("the zip {} holds {count} disk images ({entries})", path.display()),
                "give one image",
            ),
            ImageError::ImageEnds { path, size, needed } => new(
                format!(
                    "the image {} is truncated: it ends at byte {size} but {needed}",
                    path.display()
                ),
                AGAIN_WITH_SHA,
            ),
            ImageError::BeyondRange { path, start, len } => new(
                format!(
                    "the file system at byte {start} of the image {} reaches past its partition ({len}): the image is damaged",
                    path.display()
                ),
                AGAIN_WITH_SHA,
            ),
            ImageError::NotADiskImage { path } => new(
                format!(
                    "the file {} is not a disk image (no partition table: no 0x55AA at byte 510)",
                    path.display()
                ),
                "give the resinOS .img, .img.xz, .zip or .gz",
            ),
            ImageError::PartitionTable { path, detail } => new(
                format!(
                    "the partition table of the image {} cannot be read ({detail})",
                    path.display()
                ),
                "download the image again",
            ),
            ImageError::NoBootPartition { path } => new(
                format!(
                    "the image {} has no boot partition (partition 1 with a FAT file system)",
                    path.display()
                ),
                "give the resinOS image for this device type",
            ),
            ImageError::BootPartition { path, detail } => new(
                format!(
                    "the boot partition of the image {} cannot be read ({detail})",
                    path.display()
                ),
                "download the image again",
            ),
            ImageError::NoFlasherRoot { path } => new(
                format!(
                    "the flasher image {} has no flash-rootA partition (an ext4 partition holding /opt)",
                    path.display()
                ),
                RESINOS_AGAIN,
            ),
            ImageError::FlasherRoot { path, partition, detail } => new(
                format!(
                    "flash-rootA (partition {partition}) of the flasher image {} cannot be read as ext4 ({detail})",
                    path.display()
                ),
                RESINOS_AGAIN,
            ),
            ImageError::NoInnerImage { path } => new(
                format!(
                    "the flasher image {} has no inner image in /opt of flash-rootA",
                    path.display()
                ),
                RESINOS_AGAIN,
            ),
            ImageError::SeveralInnerImages { path, count, names } => new(
                format!(
                    "the flasher image {} has {count} inner images in /opt of flash-rootA ({names})",
                    path.display()
                ),
                "give the plain resinOS image instead",
            ),
            ImageError::InnerImage { path, inner, detail } => new(
                format!(
                    "the inner image {inner} of the flasher image {} cannot be read ({detail})",
                    path.display()
                ),
                RESINOS_AGAIN,
            ),
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_error_gives_its_problem_and_fix_apart_and_prints_them_as_before() {
        let e = ImageError::Truncated { path: "/tmp/a.img.xz".into(), what: "xz stream".into() };
        let text = e.text();
        assert_eq!(text.problem, "the image /tmp/a.img.xz is truncated: its xz stream ends early");
        assert_eq!(text.fix.as_deref(), Some("download it again (and its .sha256)"));
        assert_eq!(
            e.to_string(),
            "the image /tmp/a.img.xz is truncated: its xz stream ends early; download it again (and its .sha256)"
        );
        let e = ImageError::ZipUnreadable { path: "/tmp/a.zip".into(), detail: "bad EOCD".into() };
        assert_eq!(
            e.to_string(),
            "the zip /tmp/a.zip cannot be read (bad EOCD); it is truncated or not a zip: download it again"
        );
    }

    #[test]
    fn a_detail_holding_a_semicolon_stays_in_the_problem() {
        // Split at its first "; " (or by a reader not knowing the detail), the decoder's own
        // words would have been taken for part of the fix.
        let e = ImageError::PartitionTable {
            path: "/tmp/a.img".into(),
            detail: "EBR at 1024; chain loops".into(),
        };
        let text = e.text();
        assert_eq!(
            text.problem,
            "the partition table of the image /tmp/a.img cannot be read (EBR at 1024; chain loops)"
        );
        assert_eq!(text.fix.as_deref(), Some("download the image again"));
        assert_eq!(
            e.to_string(),
            "the partition table of the image /tmp/a.img cannot be read (EBR at 1024; chain loops); download the image again"
        );
    }
}
