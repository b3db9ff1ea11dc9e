//! Which supervisor version a resinOS 2.x image ships, read from the image itself: its root
//! file system (`resin-rootA`, ext4) holds `/etc/resin-supervisor/supervisor.conf` with a
//! shell-style `SUPERVISOR_TAG=v6.1.2` line, the same place resin's updater reads it from.
//!
//! The file system is read with `ext4-view` straight from the image, raw or xz, without
//! writing the root file system out: a raw image is read where asked (positioned reads
//! inside rootA's byte range); an xz image is decoded forward only, through
//! [`resin_image::RestartingReader`]: a read behind the decoder restarts it from the image's
//! start, the 4 KiB blocks already read are kept (up to [`XZ_CACHE_BYTES`]), so each of the
//! few backward jumps of the ext4 walk costs at most one restart.

use ext4_view::{Ext4, Ext4Error, Ext4Read};
use plan::{Bytes, Compression};
use resin_image::{Container, Download, ImageError, RestartingReader};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Where resinOS 2.x keeps the supervisor's image and tag on its root file system.
pub const SUPERVISOR_CONF: &str = "/etc/resin-supervisor/supervisor.conf";
/// The variable of [`SUPERVISOR_CONF`] naming the supervisor version.
pub const TAG_VARIABLE: &str = "SUPERVISOR_TAG";
/// Blocks of rootA an xz image keeps in memory once read.
pub const XZ_CACHE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TargetSupervisorError {
    #[error("cannot read the image {path}: {source}; check the file exists and is readable")]
    Read { path: PathBuf, source: io::Error },
    #[error("the image {path} is compressed with {what}, which the stager cannot read; give the .img or .img.xz")]
    UnsupportedCompression { path: PathBuf, what: &'static str },
    #[error("the image {path} is truncated: its xz stream ends early; download it again (and its .sha256)")]
    TruncatedXz { path: PathBuf },
    #[error("the image {path} is corrupt: its xz stream does not decode ({detail}); download it again (and its .sha256)")]
    CorruptXz { path: PathBuf, detail: String },
    #[error("the image {path} is truncated: it ends at byte {size} but rootA reaches byte {region_end}; download it again (and its .sha256)")]
    TruncatedImage { path: PathBuf, size: u64, region_end: u64 },
    #[error("the file system in rootA of the image {path} reaches past the partition ({len} from byte {start}): the image is damaged; download it again (and its .sha256)")]
    BeyondPartition { path: PathBuf, start: u64, len: Bytes },
    #[error("the image {path} holds no ext4 file system in rootA (byte {start}, {len}): {detail}; check it is the resinOS 2.x image for this board and download it again")]
    NotExt4 { path: PathBuf, start: u64, len: Bytes, detail: String },
    #[error("the ext4 file system in rootA of the image {path} uses features the stager cannot read ({detail}); give the version the image ships with --supervisor-version vX.Y.Z")]
    Incompatible { path: PathBuf, detail: String },
    #[error("the ext4 file system in rootA of the image {path} is corrupt ({detail}); download the image again (and its .sha256)")]
    CorruptFs { path: PathBuf, detail: String },
    #[error("the supervisor version cannot be found in the image {path}: it has no {SUPERVISOR_CONF}; give the version the image ships with --supervisor-version vX.Y.Z")]
    ConfMissing { path: PathBuf },
    #[error("the supervisor version cannot be read from the image {path}: {SUPERVISOR_CONF} is unreadable ({detail}); give the version the image ships with --supervisor-version vX.Y.Z")]
    ConfUnreadable { path: PathBuf, detail: String },
    #[error("the supervisor version cannot be found in the image {path}: its {SUPERVISOR_CONF} sets no {TAG_VARIABLE}; give the version the image ships with --supervisor-version vX.Y.Z")]
    NoTag { path: PathBuf },
}

/// `SUPERVISOR_TAG` of the image's rootA (`root_a_start`, `root_a_len`: its bytes in the raw
/// image), as written there (e.g. `v6.1.2`).
pub fn read_supervisor_tag(
    image: &Path,
    compression: Compression,
    root_a_start: Bytes,
    root_a_len: Bytes,
) -> Result<String, TargetSupervisorError> {
    read_supervisor_tag_counted(image, compression, root_a_start, root_a_len).map(|(tag, _)| tag)
}

/// [`read_supervisor_tag`], also returning how often the xz decoder was restarted to go back
/// (0 for a raw image).
pub fn read_supervisor_tag_counted(
    image: &Path,
    compression: Compression,
    root_a_start: Bytes,
    root_a_len: Bytes,
) -> Result<(String, usize), TargetSupervisorError> {
    let region =
        Region { path: image.to_path_buf(), start: root_a_start.get(), len: root_a_len.get() };
    let mut restarts = Arc::new(AtomicUsize::new(0));
    let reader: Box<dyn Ext4Read> = match compression {
        Compression::None => Box::new(RawRegion::open(region.clone())?),
        Compression::Xz => {
            let download = Download::without_check(&region.path, Container::Xz)
                .map_err(|e| image_error(&region, e))?;
            let reader = RestartingReader::new(
                &region.path,
                Box::new(move || download.decoded()),
                XZ_CACHE_BYTES,
            );
            restarts = reader.restart_counter();
            Box::new(reader.range(region.start, region.len))
        }
        Compression::Gzip => {
            return Err(TargetSupervisorError::UnsupportedCompression {
                path: region.path,
                what: "gzip",
            })
        }
    };
    let fs = Ext4::load(reader).map_err(|e| load_error(&region, e))?;
    let conf = fs.read(SUPERVISOR_CONF).map_err(|e| conf_error(&region, e))?;
    drop(fs);
    log::debug!(
        "read {SUPERVISOR_CONF} from rootA of {} ({} decoder restarts)",
        region.path.display(),
        restarts.load(Ordering::Relaxed)
    );
    let tag = parse_tag(&String::from_utf8_lossy(&conf))
        .ok_or_else(|| TargetSupervisorError::NoTag { path: region.path.clone() })?;
    Ok((tag, restarts.load(Ordering::Relaxed)))
}

/// The last `SUPERVISOR_TAG=` assignment's value of a shell-variable style file: quotes
/// removed, comments and blank lines skipped; `None` when unset or empty.
pub fn parse_tag(conf: &str) -> Option<String> {
    let mut tag = None;
    for line in conf.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map(str::trim_start).unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        if name.trim() == TAG_VARIABLE {
            tag = Some(shell_word(value.trim()));
        }
    }
    tag.filter(|t| !t.is_empty())
}

/// The first word of a shell assignment's value: quoted (`"v6.1.2"`, `'v6.1.2'`) or up to
/// the first whitespace (after which a `#` comment may follow).
fn shell_word(value: &str) -> String {
    let mut chars = value.chars();
    match chars.next() {
        Some(quote @ ('"' | '\'')) => {
            chars.take_while(|&c| c != quote).collect::<String>().trim().to_string()
        }
        Some(_) => value.split(char::is_whitespace).next().unwrap_or("").to_string(),
        None => String::new(),
    }
}

fn load_error(region: &Region, error: Ext4Error) -> TargetSupervisorError {
    let path = region.path.clone();
    match error {
        Ext4Error::Io(inner) => io_error(region, inner),
        Ext4Error::Incompatible(detail) => {
            TargetSupervisorError::Incompatible { path, detail: detail.to_string() }
        }
        other => TargetSupervisorError::NotExt4 {
            path,
            start: region.start,
            len: Bytes(region.len),
            detail: other.to_string(),
        },
    }
}

fn conf_error(region: &Region, error: Ext4Error) -> TargetSupervisorError {
    let path = region.path.clone();
    match error {
        Ext4Error::Io(inner) => io_error(region, inner),
        Ext4Error::NotFound | Ext4Error::NotADirectory => {
            TargetSupervisorError::ConfMissing { path }
        }
        Ext4Error::Incompatible(detail) => {
            TargetSupervisorError::Incompatible { path, detail: detail.to_string() }
        }
        Ext4Error::Corrupt(detail) => {
            TargetSupervisorError::CorruptFs { path, detail: detail.to_string() }
        }
        other => TargetSupervisorError::ConfUnreadable { path, detail: other.to_string() },
    }
}

/// Names the failure of one of our readers (or passes on another I/O failure).
fn io_error(
    region: &Region,
    inner: Box<dyn std::error::Error + Send + Sync>,
) -> TargetSupervisorError {
    let path = region.path.clone();
    let inner = match inner.downcast::<ImageError>() {
        Ok(failure) => return image_error(region, *failure),
        Err(other) => other,
    };
    match inner.downcast::<RegionError>() {
        Ok(failure) => match *failure {
            RegionError::Io(source) => TargetSupervisorError::Read { path, source },
            RegionError::ImageEnds(size) => TargetSupervisorError::TruncatedImage {
                path,
                size,
                region_end: region.start + region.len,
            },
            RegionError::BeyondPartition => TargetSupervisorError::BeyondPartition {
                path,
                start: region.start,
                len: Bytes(region.len),
            },
        },
        Err(other) => {
            TargetSupervisorError::Read { path, source: io::Error::other(other.to_string()) }
        }
    }
}

/// Names a failure of the xz reader (resin-image's, shared with the stager's other image
/// readers).
fn image_error(region: &Region, error: ImageError) -> TargetSupervisorError {
    let path = region.path.clone();
    match error {
        ImageError::Read { source, .. } => TargetSupervisorError::Read { path, source },
        ImageError::Truncated { .. } => TargetSupervisorError::TruncatedXz { path },
        ImageError::Corrupt { detail, .. } => TargetSupervisorError::CorruptXz { path, detail },
        ImageError::ImageEnds { size, .. } => TargetSupervisorError::TruncatedImage {
            path,
            size,
            region_end: region.start + region.len,
        },
        ImageError::BeyondRange { .. } => TargetSupervisorError::BeyondPartition {
            path,
            start: region.start,
            len: Bytes(region.len),
        },
        other => TargetSupervisorError::Read { path, source: io::Error::other(other.to_string()) },
    }
}

/// rootA's bytes inside the raw image.
#[derive(Debug, Clone)]
struct Region {
    path: PathBuf,
    start: u64,
    len: u64,
}

impl Region {
    /// Refuses a read that leaves the partition.
    fn check(&self, offset: u64, len: usize) -> Result<(), RegionError> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(RegionError::BeyondPartition),
        }
    }
}

/// Why a read of rootA failed, carried through `ext4-view` to [`io_error`].
#[derive(Debug, thiserror::Error)]
enum RegionError {
    #[error("{0}")]
    Io(io::Error),
    #[error("the image ends at byte {0}, inside rootA")]
    ImageEnds(u64),
    #[error("read past the end of rootA")]
    BeyondPartition,
}

/// rootA of a raw image: positioned reads.
struct RawRegion {
    file: File,
    region: Region,
}

impl RawRegion {
    fn open(region: Region) -> Result<RawRegion, TargetSupervisorError> {
        let read_error = |source| TargetSupervisorError::Read { path: region.path.clone(), source };
        let file = File::open(&region.path).map_err(read_error)?;
        let size = file.metadata().map_err(read_error)?.len();
        let region_end = region.start.saturating_add(region.len);
        if size < region_end {
            return Err(TargetSupervisorError::TruncatedImage {
                path: region.path,
                size,
                region_end,
            });
        }
        Ok(RawRegion { file, region })
    }
}

impl Ext4Read for RawRegion {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.region.check(start_byte, dst.len())?;
        let at = self.region.start + start_byte;
        self.file.read_exact_at(dst, at).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => Box::new(RegionError::ImageEnds(at)),
            _ => Box::new(RegionError::Io(e)),
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_value() {
        assert_eq!(
            parse_tag("SUPERVISOR_IMAGE=resin/i386-supervisor\nSUPERVISOR_TAG=v6.1.2\n").as_deref(),
            Some("v6.1.2")
        );
    }

    #[test]
    fn quotes_are_removed() {
        assert_eq!(parse_tag("SUPERVISOR_TAG=\"v6.1.2\"").as_deref(), Some("v6.1.2"));
        assert_eq!(parse_tag("SUPERVISOR_TAG='v7.0.0'").as_deref(), Some("v7.0.0"));
        assert_eq!(parse_tag("SUPERVISOR_TAG=\" v6.1.2 \"").as_deref(), Some("v6.1.2"));
    }

    #[test]
    fn comments_and_spaces_are_skipped() {
        let conf = "# SUPERVISOR_TAG=v1.0.0\n\n   SUPERVISOR_TAG=v6.1.2   # the shipped one\r\n  #SUPERVISOR_TAG=v9.9.9\n";
        assert_eq!(parse_tag(conf).as_deref(), Some("v6.1.2"));
        assert_eq!(parse_tag("export SUPERVISOR_TAG=v6.2.0\n").as_deref(), Some("v6.2.0"));
    }

    #[test]
    fn last_assignment_wins() {
        assert_eq!(
            parse_tag("SUPERVISOR_TAG=v1.0.0\nSUPERVISOR_TAG=v6.1.2\n").as_deref(),
            Some("v6.1.2")
        );
        assert_eq!(parse_tag("SUPERVISOR_TAG=v6.1.2\nSUPERVISOR_TAG=\n").as_deref(), None);
    }

    #[test]
    fn other_variables_are_not_the_tag() {
        assert_eq!(parse_tag("SUPERVISOR_IMAGE=resin/i386-supervisor\nSUPERVISOR_TAG_OLD=v1\nXSUPERVISOR_TAG=v2\n"), None);
        assert_eq!(parse_tag(""), None);
        assert_eq!(parse_tag("SUPERVISOR_TAG"), None);
    }
}
