//! [`Download`]: a downloaded image file (raw, xz, gzip, or a zip holding one disk image) and
//! fresh decoded streams of the disk image it holds. Every decoder error comes out as an
//! `io::Error` carrying an [`ImageError`] (truncated, corrupt, or a plain read failure);
//! [`ImageError::from_io`] gets it back.
//!
//! Facts: dashboard downloads are zips since 2016–17 and the API also serves `.img` and
//! `.gz` (`fileType`, balena-sdk `src/models/os.ts` 134–135); `resin os download` writes a
//! raw `.img` (resin-cli v7.0.0 `lib/actions/os.coffee` 83, 137–145).

use crate::container::sniff;
use crate::read::read_full;
use crate::{Container, ImageError};
use flate2::bufread::{DeflateDecoder, MultiGzDecoder};
use flate2::CrcReader;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const INPUT_BUFFER: usize = 1024 * 1024;
/// Bytes of a decoded stream [`Download::open`] looks at to tell a disk image.
const FIRST_SECTOR: usize = 512;
/// How many entry names an error message lists before "…".
const NAMES_SHOWN: usize = 8;

/// A downloaded image file: raw, xz, gzip, or a zip holding exactly one disk image.
#[derive(Debug, Clone)]
pub struct Download {
    path: PathBuf,
    container: Container,
    entry: Option<ZipEntry>,
}

/// Where a zip entry's data lies and how to check it.
#[derive(Debug, Clone)]
struct ZipEntry {
    index: usize,
    name: String,
    data_start: u64,
    compressed_size: u64,
    size: u64,
    crc32: u32,
    deflated: bool,
}

impl Download {
    /// Sniffs; for a zip, finds the one entry whose decoded first sector is a disk image
    /// (0x55AA at byte 510 and a plausible partition table, which a protective MBR of a GPT
    /// disk also is); refuses none or several, one line, naming the entries. Other
    /// containers must decode to a disk image too.
    pub fn open(path: &Path) -> Result<Download, ImageError> {
        let container = sniff(path)?;
        let download = match container {
            Container::Zip => open_zip(path)?,
            _ => Download { path: path.to_path_buf(), container, entry: None },
        };
        if download.entry.is_none() && !download.first_sector_is_disk()? {
            return Err(ImageError::NotADiskImage { path: path.to_path_buf() });
        }
        log::debug!(
            "{}: {container} container{}",
            path.display(),
            download.entry_name().map(|n| format!(", disk image entry {n}")).unwrap_or_default()
        );
        Ok(download)
    }

    /// Like [`Download::open`] but without checking that a raw, xz or gzip file decodes to a
    /// partitioned disk (for callers that read a known byte range of a file they trust to be
    /// an image; a zip still needs its one disk-image entry).
    pub fn without_check(path: &Path, container: Container) -> Result<Download, ImageError> {
        match container {
            Container::Zip => open_zip(path),
            _ => Ok(Download { path: path.to_path_buf(), container, entry: None }),
        }
    }

    /// The downloaded file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn container(&self) -> Container {
        self.container
    }

    /// The zip entry's name (`None` unless the container is a zip).
    pub fn entry_name(&self) -> Option<&str> {
        self.entry.as_ref().map(|e| e.name.as_str())
    }

    /// The zip entry's index in the archive.
    pub fn entry_index(&self) -> Option<usize> {
        self.entry.as_ref().map(|e| e.index)
    }

    /// The disk image's size when the container records it (raw: the file's size; zip: the
    /// entry's size; xz and gzip: `None`, their streams do not say reliably).
    pub fn decoded_size(&self) -> Result<Option<plan::Bytes>, ImageError> {
        match (&self.entry, self.container) {
            (Some(entry), _) => Ok(Some(plan::Bytes(entry.size))),
            (None, Container::Raw) => std::fs::metadata(&self.path)
                .map(|m| Some(plan::Bytes(m.len())))
                .map_err(|source| ImageError::Read { path: self.path.clone(), source }),
            (None, _) => Ok(None),
        }
    }

    /// A fresh decoded stream of the disk image from byte 0 (each call starts again).
    /// Truncation and corruption (xz, gzip, zip entry CRC) surface as `io::Error`s carrying
    /// an [`ImageError`]: use [`ImageError::from_io`].
    pub fn decoded(&self) -> Result<Box<dyn Read + Send>, ImageError> {
        let read_error = |source| ImageError::Read { path: self.path.clone(), source };
        let mut file = File::open(&self.path).map_err(read_error)?;
        if let Some(entry) = &self.entry {
            file.seek(SeekFrom::Start(entry.data_start)).map_err(read_error)?;
            let raw = BufReader::with_capacity(INPUT_BUFFER, file.take(entry.compressed_size));
            let inner: Box<dyn Read + Send> =
                if entry.deflated { Box::new(DeflateDecoder::new(raw)) } else { Box::new(raw) };
            return Ok(Box::new(ZipEntryReader {
                path: self.path.clone(),
                entry: entry.clone(),
                inner: CrcReader::new(inner),
                done: 0,
            }));
        }
        let input = BufReader::with_capacity(INPUT_BUFFER, file);
        Ok(match self.container {
            Container::Raw | Container::Zip => {
                Box::new(Checked { path: self.path.clone(), stream: Stream::Raw, inner: input })
            }
            Container::Xz => Box::new(Checked {
                path: self.path.clone(),
                stream: Stream::Xz,
                inner: xz2::bufread::XzDecoder::new_multi_decoder(input),
            }),
            Container::Gzip => Box::new(Checked {
                path: self.path.clone(),
                stream: Stream::Gzip,
                inner: MultiGzDecoder::new(input),
            }),
        })
    }

    fn first_sector_is_disk(&self) -> Result<bool, ImageError> {
        let mut sector = [0u8; FIRST_SECTOR];
        let mut stream = self.decoded()?;
        let n =
            read_full(&mut stream, &mut sector).map_err(|e| ImageError::from_io(&self.path, e))?;
        Ok(n == FIRST_SECTOR && is_disk_sector(&sector))
    }
}

/// Whether `sector` (the first 512 bytes) starts a partitioned disk: the 0x55AA signature
/// and four partition entries with a valid boot indicator (0x00 or 0x80), at least one used.
/// A protective MBR (one entry of type 0xEE) qualifies; a FAT boot sector or text does not
/// (its bytes 446..510 are boot code).
pub fn is_disk_sector(sector: &[u8]) -> bool {
    if sector.len() < 512 || sector[510..512] != [0x55, 0xAA] {
        return false;
    }
    let entries: Vec<&[u8]> = sector[446..510].chunks(16).collect();
    let statuses_valid = entries.iter().all(|e| e[0] == 0x00 || e[0] == 0x80);
    let used = entries.iter().any(|e| e[4] != 0);
    statuses_valid && used
}

fn open_zip(path: &Path) -> Result<Download, ImageError> {
    let file =
        File::open(path).map_err(|source| ImageError::Read { path: path.to_path_buf(), source })?;
    let unreadable = |e: zip::result::ZipError| ImageError::ZipUnreadable {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(unreadable)?;
    let mut names = Vec::new();
    let mut images = Vec::new();
    for index in 0..archive.len() {
        let raw = archive.by_index_raw(index).map_err(unreadable)?;
        let name = String::from_utf8_lossy(raw.name_raw()).into_owned();
        if raw.is_dir() {
            continue;
        }
        names.push(name.clone());
        let unsupported = |detail: &str| ImageError::ZipEntryUnsupported {
            path: path.to_path_buf(),
            entry: name.clone(),
            detail: detail.to_string(),
        };
        let deflated = match raw.compression() {
            zip::CompressionMethod::Stored => false,
            zip::CompressionMethod::Deflated => true,
            other => {
                log::debug!("{}: skipping entry {name} compressed with {other}", path.display());
                continue;
            }
        };
        if raw.encrypted() {
            return Err(unsupported("encrypted"));
        }
        let data_start = raw.data_start().ok_or_else(|| unsupported("no data offset"))?;
        let entry = ZipEntry {
            index,
            name: name.clone(),
            data_start,
            compressed_size: raw.compressed_size(),
            size: raw.size(),
            crc32: raw.crc32(),
            deflated,
        };
        drop(raw);
        let candidate =
            Download { path: path.to_path_buf(), container: Container::Zip, entry: Some(entry) };
        if candidate.first_sector_is_disk()? {
            images.push(candidate);
        }
    }
    match images.len() {
        1 => Ok(images.remove(0)),
        0 => Err(ImageError::ZipNoImage { path: path.to_path_buf(), entries: list(&names) }),
        count => Err(ImageError::ZipSeveralImages {
            path: path.to_path_buf(),
            count,
            entries: list(&images.iter().filter_map(|d| d.entry_name()).collect::<Vec<_>>()),
        }),
    }
}

/// "a, b, c" (at most [`NAMES_SHOWN`], then "…"), "none" when empty.
pub(crate) fn list<S: AsRef<str>>(names: &[S]) -> String {
    if names.is_empty() {
        return "none".to_string();
    }
    let mut shown: Vec<&str> = names.iter().take(NAMES_SHOWN).map(AsRef::as_ref).collect();
    if names.len() > NAMES_SHOWN {
        shown.push("…");
    }
    shown.join(", ")
}

/// Which decoder a [`Checked`] stream runs, to name its failures.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Raw,
    Xz,
    Gzip,
}

/// A decoder whose errors are turned into [`ImageError`]s (inside `io::Error`).
struct Checked<R> {
    path: PathBuf,
    stream: Stream,
    inner: R,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| match self.stream {
            Stream::Raw => ImageError::Read { path: self.path.clone(), source: e }.into(),
            Stream::Xz => xz_failure(&self.path, e).into(),
            Stream::Gzip => gzip_failure(&self.path, e).into(),
        })
    }
}

/// liblzma reports input that stops before the end of the stream as an early EOF, and bad
/// bytes as its own error (or InvalidData); reading the file itself fails otherwise.
fn xz_failure(path: &Path, error: io::Error) -> ImageError {
    let what = "xz stream".to_string();
    if error.kind() == io::ErrorKind::UnexpectedEof {
        return ImageError::Truncated { path: path.to_path_buf(), what };
    }
    match error.get_ref().and_then(|inner| inner.downcast_ref::<xz2::stream::Error>()) {
        Some(xz2::stream::Error::Mem | xz2::stream::Error::MemLimit) => {
            ImageError::Read { path: path.to_path_buf(), source: error }
        }
        Some(_) => {
            ImageError::Corrupt { path: path.to_path_buf(), what, detail: error.to_string() }
        }
        None if error.kind() == io::ErrorKind::InvalidData => {
            ImageError::Corrupt { path: path.to_path_buf(), what, detail: error.to_string() }
        }
        None => ImageError::Read { path: path.to_path_buf(), source: error },
    }
}

/// flate2 reports a missing gzip trailer (the stream was cut) as an early EOF, bad deflate
/// data, a bad header or a CRC mismatch as InvalidInput or InvalidData.
fn gzip_failure(path: &Path, error: io::Error) -> ImageError {
    let what = "gzip stream".to_string();
    match error.kind() {
        io::ErrorKind::UnexpectedEof => ImageError::Truncated { path: path.to_path_buf(), what },
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => {
            ImageError::Corrupt { path: path.to_path_buf(), what, detail: error.to_string() }
        }
        _ => ImageError::Read { path: path.to_path_buf(), source: error },
    }
}

/// A zip entry's data, inflated when deflated, checked against the size and CRC-32 the
/// central directory records once it ends.
struct ZipEntryReader {
    path: PathBuf,
    entry: ZipEntry,
    inner: CrcReader<Box<dyn Read + Send>>,
    done: u64,
}

impl ZipEntryReader {
    fn corrupt(&self, detail: String) -> io::Error {
        ImageError::ZipEntryCorrupt {
            path: self.path.clone(),
            entry: self.entry.name.clone(),
            detail,
        }
        .into()
    }
}

impl Read for ZipEntryReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e)
                if matches!(e.kind(), io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData) =>
            {
                return Err(self.corrupt(format!("its data does not inflate: {e}")))
            }
            Err(e) => return Err(ImageError::Read { path: self.path.clone(), source: e }.into()),
        };
        self.done += n as u64;
        if self.done > self.entry.size {
            return Err(self.corrupt(format!(
                "it inflates to more than the {} bytes the zip records",
                self.entry.size
            )));
        }
        if n == 0 {
            if self.done < self.entry.size {
                // The central directory at the zip's end was read, so the download is whole:
                // an entry inflating short is damaged data, not a cut file.
                return Err(self.corrupt(format!(
                    "it inflates to {} bytes, the zip records {}",
                    self.done, self.entry.size
                )));
            }
            let crc = self.inner.crc().sum();
            if crc != self.entry.crc32 {
                return Err(self.corrupt(format!(
                    "CRC mismatch: {crc:08x}, the zip records {:08x}",
                    self.entry.crc32
                )));
            }
        }
        Ok(n)
    }
}
