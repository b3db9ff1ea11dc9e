//! What the stager must know about the image before it changes anything: its partition
//! table (primaries from the first MiB, logical partitions from the EBR chain), the device
//! type written on its boot partition, its raw size and both sha256s.
//!
//! One streaming pass decodes the image (xz in process, no child), hashing every byte and
//! keeping only what is needed in memory: the first MiB, the boot partition (when it is at
//! most [`MAX_BOOT_CAPTURE`]) and the EBR sectors. Seeks may only go forward past the first
//! MiB, which is how MBR tables are laid out.
//!
//! On the way it refuses a flasher image (see [`flasher_sign`]) and records which file
//! system each partition's first bytes hold ([`PartitionFs`], by `resin_image::detect_fs`),
//! for the partitions it can reach going forward: every primary before the extended one,
//! and the logical partitions after the last EBR (resin-data, the last one in a resinOS
//! layout). resin-state, a logical partition before the last EBR, is passed while the EBR
//! chain is read and is not recorded; nothing mounts it during the migration. This costs
//! one extra read of [`FS_PROBE_BYTES`] per partition, no second pass.

use super::refusal::RefusalText;
use disk_layout::{LayoutError, PartitionTable};
use plan::{Bytes, Compression, FsType, Sha256Hex};
use resin_image::FS_PROBE_BYTES;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// How much of the image is held in memory to read its partition table.
pub const HEAD_BYTES: usize = 1024 * 1024;
/// The boot partition is read for `device-type.json` only up to this size.
pub const MAX_BOOT_CAPTURE: u64 = 256 * 1024 * 1024;
const SECTOR: u64 = 512;
const DEVICE_TYPE_FILE: &str = "device-type.json";

#[derive(Debug, thiserror::Error)]
#[error("{}", self.text())]
pub enum ProbeError {
    Read {
        path: PathBuf,
        source: io::Error,
    },
    TruncatedXz {
        path: PathBuf,
    },
    CorruptXz {
        path: PathBuf,
        detail: String,
    },
    TruncatedRaw {
        path: PathBuf,
        size: Bytes,
        table_end: Bytes,
    },
    UnsupportedCompression {
        path: PathBuf,
        what: &'static str,
    },
    Gpt,
    Table(String),
    BackwardSeek {
        at: u64,
    },
    /// Facts: the flag file `/resin-image-flasher` (`/balena-image-flasher`) and the
    /// `flash-boot` label on a flasher's boot partition (meta-resin v2.12.5
    /// `resin-image-flasher.bb` lines 41–45, 68; background/resinos-images-facts.md).
    Flasher {
        path: PathBuf,
        sign: String,
    },
}

impl ProbeError {
    /// What is wrong with the image and, where there is one, what to do about it, kept apart.
    pub fn text(&self) -> RefusalText {
        const DOWNLOAD_AGAIN: &str = "download it again (and its .sha256)";
        match self {
            ProbeError::Read { path, source } => RefusalText::new(
                format!("cannot read the image {}: {source}", path.display()),
                "check the file (a truncated or corrupt download fails here)".into(),
            ),
            ProbeError::TruncatedXz { path } => RefusalText::new(
                format!("the image {} is truncated: its xz stream ends early", path.display()),
                DOWNLOAD_AGAIN.into(),
            ),
            ProbeError::CorruptXz { path, detail } => RefusalText::new(
                format!(
                    "the image {} is corrupt: its xz stream does not decode ({detail})",
                    path.display()
                ),
                DOWNLOAD_AGAIN.into(),
            ),
            ProbeError::TruncatedRaw { path, size, table_end } => RefusalText::new(
                format!(
                    "the image {} is truncated: it holds {size} but its partition table reaches {table_end}",
                    path.display()
                ),
                DOWNLOAD_AGAIN.into(),
            ),
            ProbeError::UnsupportedCompression { path, what } => RefusalText::new(
                format!(
                    "the image {} is compressed with {what}, which the stager cannot decode",
                    path.display()
                ),
                "give the .img or .img.xz".into(),
            ),
            ProbeError::Gpt => RefusalText::new(
                "the image has a GPT partition table but the profile expects MBR".into(),
                "download the board's MBR image".into(),
            ),
            ProbeError::Table(detail) => RefusalText::problem_only(format!(
                "the image's partition table cannot be read: {detail}"
            )),
            ProbeError::BackwardSeek { at } => RefusalText::problem_only(format!(
                "the image's extended partition chain goes backwards (EBR at byte {at}); the image is not a resinOS image"
            )),
            ProbeError::Flasher { path, sign } => RefusalText::new(
                format!(
                    "the image {} is a flasher image ({sign}): written to the disk it would boot an installer that wipes the first disk and halts",
                    path.display()
                ),
                "give the download itself (.zip, .gz, .img) so the stager takes the inner image out of it, not an unpacked or converted copy".into(),
            ),
        }
    }
}

/// The file system the first bytes of one partition of the image hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionFs {
    /// Linux's number: 1..=4 primaries, 5.. logicals.
    pub number: u32,
    /// `None`: nothing recognised (an empty partition).
    pub fs: Option<FsType>,
}

/// What the probe learnt.
#[derive(Debug, Clone)]
pub struct ImageFacts {
    pub path: PathBuf,
    pub compression: Compression,
    pub compressed_size: Bytes,
    pub compressed_sha256: Sha256Hex,
    pub raw_size: Bytes,
    pub raw_sha256: Sha256Hex,
    /// Primaries and logicals, absolute 512-byte sectors.
    pub table: PartitionTable,
    /// `slug` of `device-type.json` on the first (boot) partition, when it could be read.
    pub device_type: Result<String, String>,
    /// What each partition the probe could reach holds (see the module's note).
    pub filesystems: Vec<PartitionFs>,
    /// Where the image came from, for a person: set by [`super::prepare`] for a zip, gzip or
    /// flasher download (e.g. the flasher line), empty otherwise.
    pub origin: Vec<String>,
}

impl ImageFacts {
    /// The partitions that hold file systems, in table order (primaries, then logicals).
    pub fn data_partitions(&self) -> Vec<disk_layout::Partition> {
        self.table.all().filter(|p| !p.is_extended()).copied().collect()
    }
}

/// Sniffs the compression from the file's first bytes.
pub fn sniff_compression(path: &Path) -> Result<Compression, ProbeError> {
    let mut magic = [0u8; 6];
    let read_error = |source| ProbeError::Read { path: path.to_path_buf(), source };
    let mut file = File::open(path).map_err(read_error)?;
    let n = resin_image::read_full(&mut file, &mut magic).map_err(read_error)?;
    let magic = &magic[..n];
    if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Ok(Compression::Xz)
    } else if magic.starts_with(&[0x1f, 0x8b]) {
        Err(ProbeError::UnsupportedCompression { path: path.to_path_buf(), what: "gzip" })
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err(ProbeError::UnsupportedCompression { path: path.to_path_buf(), what: "zstd" })
    } else {
        Ok(Compression::None)
    }
}

/// Hashes a reader to the end: (sha256, byte count).
fn hash_all(reader: &mut impl Read) -> io::Result<(Sha256Hex, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    let mut total = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((Sha256Hex::from_digest(&hasher.finalize()), total))
}

/// Reads the whole image once (twice for the compressed hash) and returns its facts.
pub fn probe(path: &Path) -> Result<ImageFacts, ProbeError> {
    let read_error = |source| ProbeError::Read { path: path.to_path_buf(), source };
    let compression = sniff_compression(path)?;
    // liblzma reports input that stops before the end of the stream as an early EOF, and bad
    // bytes as its own error (or InvalidData); reading the file itself fails otherwise.
    let decode_error = |source: io::Error| match (compression, source.kind()) {
        (Compression::Xz, io::ErrorKind::UnexpectedEof) => {
            ProbeError::TruncatedXz { path: path.to_path_buf() }
        }
        (Compression::Xz, _) if is_corrupt_xz(&source) => {
            ProbeError::CorruptXz { path: path.to_path_buf(), detail: source.to_string() }
        }
        _ => ProbeError::Read { path: path.to_path_buf(), source },
    };
    let (compressed_sha256, compressed_size) =
        hash_all(&mut BufReader::new(File::open(path).map_err(read_error)?)).map_err(read_error)?;
    let file = BufReader::new(File::open(path).map_err(read_error)?);
    let decoded: Box<dyn Read> = match compression {
        Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(file)),
        _ => Box::new(file),
    };
    let mut stream = ForwardReader::new(decoded).map_err(decode_error)?;
    let primaries = PartitionTable::from_head(&stream.head).map_err(table_error)?;
    let boot = primaries.primaries.iter().find(|p| !p.is_extended()).copied();
    let mut boot_bytes = None;
    let mut filesystems = Vec::new();
    if let Some(boot) = boot {
        let (start, len) = (boot.start.0 * SECTOR, boot.size.0 * SECTOR);
        if len <= MAX_BOOT_CAPTURE {
            let bytes = stream.read_range(start, len).map_err(decode_error)?;
            if let Some(sign) = flasher_sign(&bytes) {
                return Err(ProbeError::Flasher { path: path.to_path_buf(), sign });
            }
            let first = &bytes[..bytes.len().min(FS_PROBE_BYTES)];
            filesystems
                .push(PartitionFs { number: boot.number, fs: resin_image::detect_fs(first) });
            boot_bytes = Some(bytes);
        }
    }
    // The other primaries, in ascending order, while they lie before the extended partition
    // (whose EBR chain is read next).
    let extended_start = primaries.primaries.iter().find(|p| p.is_extended()).map(|p| p.start.0);
    let mut others: Vec<_> = primaries
        .primaries
        .iter()
        .filter(|p| !p.is_extended() && Some(p.number) != boot.map(|b| b.number))
        .filter(|p| extended_start.is_none_or(|e| p.start.0 < e))
        .copied()
        .collect();
    others.sort_by_key(|p| p.start.0);
    for partition in others {
        filesystems.push(probe_fs(&mut stream, &partition).map_err(decode_error)?);
    }
    // A decoder failure inside the table reader surfaces as a table error: name it instead.
    let table = PartitionTable::read(&mut stream).map_err(|e| {
        match (stream.backward.take(), stream.failure.take()) {
            (Some(at), _) => ProbeError::BackwardSeek { at },
            (None, Some(failure)) => decode_error(failure),
            (None, None) => table_error(e),
        }
    })?;
    let mut logicals: Vec<_> = table.logicals.clone();
    logicals.sort_by_key(|p| p.start.0);
    for partition in &logicals {
        if partition.start.0 * SECTOR >= stream.consumed {
            filesystems.push(probe_fs(&mut stream, partition).map_err(decode_error)?);
        }
    }
    let (raw_sha256, raw_size) = stream.finish().map_err(decode_error)?;
    // A whole image holds every partition its table lists; a shorter one was cut short
    // (an xz cut short fails above, a raw image can only be caught here).
    let table_end = Bytes(table.end().0 * SECTOR);
    if raw_size < table_end.get() {
        return Err(ProbeError::TruncatedRaw {
            path: path.to_path_buf(),
            size: Bytes(raw_size),
            table_end,
        });
    }
    let device_type = match boot_bytes {
        Some(bytes) => device_type_from_fat(bytes),
        None => Err(format!(
            "the boot partition is larger than {} and was not read",
            Bytes(MAX_BOOT_CAPTURE)
        )),
    };
    Ok(ImageFacts {
        path: path.to_path_buf(),
        compression,
        compressed_size: Bytes(compressed_size),
        compressed_sha256,
        raw_size: Bytes(raw_size),
        raw_sha256,
        table,
        device_type,
        filesystems,
        origin: Vec::new(),
    })
}

/// The first bytes of `partition` through `stream` (which must not have passed them yet).
fn probe_fs<R: Read>(
    stream: &mut ForwardReader<R>,
    partition: &disk_layout::Partition,
) -> io::Result<PartitionFs> {
    let len = (partition.size.0 * SECTOR).min(FS_PROBE_BYTES as u64);
    let first = stream.read_range(partition.start.0 * SECTOR, len)?;
    Ok(PartitionFs { number: partition.number, fs: resin_image::detect_fs(&first) })
}

/// Why a boot partition's FAT is a flasher's: its flag file or its `flash-*` label.
pub fn flasher_sign(boot: &[u8]) -> Option<String> {
    use super::prepare::boot_fat::{inspect, ReadOnly};
    let contents = inspect(ReadOnly(io::Cursor::new(boot))).ok()?;
    if let Some(flag) = contents.flasher_flag {
        Some(format!("its boot partition holds /{flag}"))
    } else if contents.label.to_ascii_lowercase().starts_with("flash-") {
        Some(format!("its boot partition is labelled {}", contents.label))
    } else {
        None
    }
}

/// An error of the xz decoder about the data (not memory, not reading the file).
fn is_corrupt_xz(error: &io::Error) -> bool {
    match error.get_ref().and_then(|inner| inner.downcast_ref::<xz2::stream::Error>()) {
        Some(xz2::stream::Error::Mem | xz2::stream::Error::MemLimit) => false,
        Some(_) => true,
        None => error.kind() == io::ErrorKind::InvalidData,
    }
}

fn table_error(e: LayoutError) -> ProbeError {
    match e {
        LayoutError::GptNotSupported => ProbeError::Gpt,
        other => ProbeError::Table(other.to_string()),
    }
}

/// `slug` of `/device-type.json` on a FAT file system image.
pub fn device_type_from_fat(bytes: Vec<u8>) -> Result<String, String> {
    let fs = fatfs::FileSystem::new(io::Cursor::new(bytes), fatfs::FsOptions::new())
        .map_err(|e| format!("the boot partition is not a FAT file system: {e}"))?;
    let mut file = fs
        .root_dir()
        .open_file(DEVICE_TYPE_FILE)
        .map_err(|e| format!("the boot partition has no /{DEVICE_TYPE_FILE}: {e}"))?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(|e| format!("cannot read /{DEVICE_TYPE_FILE}: {e}"))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("/{DEVICE_TYPE_FILE} is not JSON: {e}"))?;
    value
        .get("slug")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("/{DEVICE_TYPE_FILE} has no \"slug\""))
}

/// A decoded stream that hashes everything it passes, keeps its first MiB, and seeks
/// forward by reading (backwards only within the first MiB).
struct ForwardReader<R> {
    inner: R,
    head: Vec<u8>,
    hasher: Sha256,
    /// Bytes taken from `inner` so far.
    consumed: u64,
    pos: u64,
    ended: bool,
    /// Set when a read asked for bytes already passed (outside the head).
    backward: Option<u64>,
    /// Small reads past the head (EBR sectors), kept so that a second pass over the
    /// logical-partition chain (first our overflow check, then mbrman) can read them again.
    small_reads: Vec<(u64, Vec<u8>)>,
    /// The first error `inner` returned (a copy: its text, and InvalidData when the decoder
    /// found bad data), kept for [`probe`]'s message.
    failure: Option<io::Error>,
}

/// Reads up to this size past the head are remembered for a second look.
const REMEMBERED_READ_BYTES: usize = 4096;
/// How many such reads are kept (an EBR chain has one per logical partition).
const REMEMBERED_READS: usize = 256;

impl<R: Read> ForwardReader<R> {
    fn new(mut inner: R) -> io::Result<Self> {
        let mut head = vec![0u8; HEAD_BYTES];
        let n = resin_image::read_full(&mut inner, &mut head)?;
        head.truncate(n);
        let mut hasher = Sha256::new();
        hasher.update(&head);
        Ok(ForwardReader {
            inner,
            consumed: n as u64,
            ended: n < HEAD_BYTES,
            head,
            hasher,
            pos: 0,
            backward: None,
            small_reads: Vec::new(),
            failure: None,
        })
    }

    /// Takes bytes from `inner` up to `to` (hashing them), discarding them.
    fn skip_to(&mut self, to: u64) -> io::Result<()> {
        let mut buf = vec![0u8; 256 * 1024];
        while self.consumed < to && !self.ended {
            let want =
                usize::try_from((to - self.consumed).min(buf.len() as u64)).unwrap_or(buf.len());
            let n = self.take(&mut buf[..want])?;
            if n == 0 {
                break;
            }
        }
        Ok(())
    }

    fn take(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Ok(0) => {
                    self.ended = true;
                    return Ok(0);
                }
                Ok(n) => {
                    self.hasher.update(&buf[..n]);
                    self.consumed += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if self.failure.is_none() {
                        let kind =
                            if is_corrupt_xz(&e) { io::ErrorKind::InvalidData } else { e.kind() };
                        self.failure = Some(io::Error::new(kind, e.to_string()));
                    }
                    return Err(e);
                }
            }
        }
    }

    fn read_range(&mut self, start: u64, len: u64) -> io::Result<Vec<u8>> {
        self.seek(SeekFrom::Start(start))?;
        let mut out =
            vec![0u8; usize::try_from(len).map_err(|_| io::Error::other("range too large"))?];
        let n = resin_image::read_full(self, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    /// Reads the rest, returning the sha256 and size of the whole decoded stream.
    fn finish(mut self) -> io::Result<(Sha256Hex, u64)> {
        self.skip_to(u64::MAX)?;
        Ok((Sha256Hex::from_digest(&self.hasher.finalize()), self.consumed))
    }
}

impl<R: Read> Read for ForwardReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let head_len = self.head.len() as u64;
        if self.pos < head_len {
            let from = &self.head[usize::try_from(self.pos).unwrap_or(0)..];
            let n = from.len().min(buf.len());
            buf[..n].copy_from_slice(&from[..n]);
            self.pos += n as u64;
            return Ok(n);
        }
        if self.pos < self.consumed {
            let pos = self.pos;
            let remembered = self
                .small_reads
                .iter()
                .find(|(at, bytes)| *at <= pos && pos < at + bytes.len() as u64);
            if let Some((at, bytes)) = remembered {
                let from = &bytes[usize::try_from(pos - at).unwrap_or(0)..];
                let n = from.len().min(buf.len());
                buf[..n].copy_from_slice(&from[..n]);
                self.pos += n as u64;
                return Ok(n);
            }
            self.backward = Some(self.pos);
            return Err(io::Error::other(format!(
                "cannot go back to byte {} of a decoded stream",
                self.pos
            )));
        }
        self.skip_to(self.pos)?;
        let at = self.pos;
        let n = self.take(buf)?;
        if n > 0 && buf.len() <= REMEMBERED_READ_BYTES && self.small_reads.len() < REMEMBERED_READS
        {
            self.small_reads.push((at, buf[..n].to_vec()));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read> Seek for ForwardReader<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = match to {
            SeekFrom::Start(n) => n,
            // The size is unknown until the stream is decoded: answer a large end (mbrman
            // only bounds a u32 sector count with it) without moving through the stream.
            SeekFrom::End(_) => u64::from(u32::MAX) * SECTOR,
            SeekFrom::Current(d) => self
                .pos
                .checked_add_signed(d)
                .ok_or_else(|| io::Error::other("seek before the start of the image"))?,
        };
        Ok(self.pos)
    }
}
