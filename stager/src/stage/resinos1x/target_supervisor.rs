//! Which supervisor version a resinOS 2.x image ships, read from the image itself: its root
//! file system (`resin-rootA`, ext4) holds `/etc/resin-supervisor/supervisor.conf` with a
//! shell-style `SUPERVISOR_TAG=v6.1.2` line, the same place resin's updater reads it from.
//!
//! The file system is read with `ext4-view` straight from the image, raw or xz, without
//! writing the root file system out: a raw image is read where asked (positioned reads
//! inside rootA's byte range); an xz image is decoded forward only, so a read behind the
//! decoder restarts it from the image's start. The 4 KiB blocks already read are kept (up
//! to [`XZ_CACHE_BYTES`]), so each of the few backward jumps of the ext4 walk costs at most
//! one restart.

use ext4_view::{Ext4, Ext4Error, Ext4Read};
use plan::{Bytes, Compression};
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Where resinOS 2.x keeps the supervisor's image and tag on its root file system.
pub const SUPERVISOR_CONF: &str = "/etc/resin-supervisor/supervisor.conf";
/// The variable of [`SUPERVISOR_CONF`] naming the supervisor version.
pub const TAG_VARIABLE: &str = "SUPERVISOR_TAG";
/// Blocks of rootA an xz image keeps in memory once read.
pub const XZ_CACHE_BYTES: usize = 64 * 1024 * 1024;
const CACHE_BLOCK: u64 = 4096;
const SKIP_BUFFER: usize = 256 * 1024;
const XZ_INPUT_BUFFER: usize = 1024 * 1024;

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
    let restarts = Rc::new(Cell::new(0usize));
    let reader: Box<dyn Ext4Read> = match compression {
        Compression::None => Box::new(RawRegion::open(region.clone())?),
        Compression::Xz => Box::new(XzRegion::open(region.clone(), Rc::clone(&restarts))?),
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
        restarts.get()
    );
    let tag = parse_tag(&String::from_utf8_lossy(&conf))
        .ok_or_else(|| TargetSupervisorError::NoTag { path: region.path.clone() })?;
    Ok((tag, restarts.get()))
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
    match inner.downcast::<RegionError>() {
        Ok(failure) => match *failure {
            RegionError::Io(source) => TargetSupervisorError::Read { path, source },
            RegionError::TruncatedXz => TargetSupervisorError::TruncatedXz { path },
            RegionError::CorruptXz(detail) => TargetSupervisorError::CorruptXz { path, detail },
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
    #[error("the xz stream ends early")]
    TruncatedXz,
    #[error("the xz stream does not decode: {0}")]
    CorruptXz(String),
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

type Decoder = xz2::bufread::XzDecoder<BufReader<File>>;

/// rootA of an xz image: decoded forward, restarted from the image's start to go back, with
/// the blocks read so far kept in memory.
struct XzRegion {
    region: Region,
    decoder: Decoder,
    /// Bytes of the raw image decoded so far.
    decoded: u64,
    cache: BlockCache,
    restarts: Rc<Cell<usize>>,
}

impl XzRegion {
    fn open(region: Region, restarts: Rc<Cell<usize>>) -> Result<XzRegion, TargetSupervisorError> {
        let decoder = open_decoder(&region.path)
            .map_err(|source| TargetSupervisorError::Read { path: region.path.clone(), source })?;
        Ok(XzRegion {
            region,
            decoder,
            decoded: 0,
            cache: BlockCache::new(XZ_CACHE_BYTES / CACHE_BLOCK as usize),
            restarts,
        })
    }

    /// Block `index` of rootA (4 KiB; the last one may be shorter), from the cache or the
    /// decoder.
    fn block(&mut self, index: u64) -> Result<&[u8], RegionError> {
        if !self.cache.contains(index) {
            let data = self.decode_block(index)?;
            self.cache.insert(index, data);
        }
        self.cache.get(index).ok_or(RegionError::BeyondPartition)
    }

    fn decode_block(&mut self, index: u64) -> Result<Vec<u8>, RegionError> {
        let offset = index * CACHE_BLOCK;
        let len = CACHE_BLOCK.min(self.region.len.saturating_sub(offset));
        let at = self.region.start + offset;
        if at < self.decoded {
            self.restart(at)?;
        }
        self.skip_to(at)?;
        let mut data = vec![0u8; len as usize];
        self.fill(&mut data)?;
        Ok(data)
    }

    fn restart(&mut self, at: u64) -> Result<(), RegionError> {
        self.restarts.set(self.restarts.get() + 1);
        log::debug!(
            "xz image {}: going back to byte {at} (decoded up to {}), restart {} of the decoder",
            self.region.path.display(),
            self.decoded,
            self.restarts.get()
        );
        self.decoder = open_decoder(&self.region.path).map_err(RegionError::Io)?;
        self.decoded = 0;
        Ok(())
    }

    /// Decodes and discards up to byte `to` of the image.
    fn skip_to(&mut self, to: u64) -> Result<(), RegionError> {
        let mut scratch = vec![0u8; SKIP_BUFFER];
        while self.decoded < to {
            let want = (to - self.decoded).min(SKIP_BUFFER as u64) as usize;
            self.fill(&mut scratch[..want])?;
        }
        Ok(())
    }

    /// Decodes exactly `buf.len()` bytes.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), RegionError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.decoder.read(&mut buf[filled..]) {
                Ok(0) => return Err(RegionError::ImageEnds(self.decoded)),
                Ok(n) => {
                    filled += n;
                    self.decoded += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(decode_failure(e)),
            }
        }
        Ok(())
    }
}

impl Ext4Read for XzRegion {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.region.check(start_byte, dst.len())?;
        let mut filled = 0usize;
        while filled < dst.len() {
            let pos = start_byte + filled as u64;
            let within = (pos % CACHE_BLOCK) as usize;
            let block = self.block(pos / CACHE_BLOCK)?;
            let from = block.get(within..).ok_or(RegionError::BeyondPartition)?;
            let n = from.len().min(dst.len() - filled);
            if n == 0 {
                return Err(Box::new(RegionError::BeyondPartition));
            }
            dst[filled..filled + n].copy_from_slice(&from[..n]);
            filled += n;
        }
        Ok(())
    }
}

fn open_decoder(path: &Path) -> io::Result<Decoder> {
    let file = File::open(path)?;
    Ok(xz2::bufread::XzDecoder::new_multi_decoder(BufReader::with_capacity(XZ_INPUT_BUFFER, file)))
}

/// liblzma reports input that stops before the end of the stream as an early EOF, and bad
/// bytes as its own error (or InvalidData); reading the file itself fails otherwise.
fn decode_failure(error: io::Error) -> RegionError {
    if error.kind() == io::ErrorKind::UnexpectedEof {
        return RegionError::TruncatedXz;
    }
    match error.get_ref().and_then(|inner| inner.downcast_ref::<xz2::stream::Error>()) {
        Some(xz2::stream::Error::Mem | xz2::stream::Error::MemLimit) => RegionError::Io(error),
        Some(_) => RegionError::CorruptXz(error.to_string()),
        None if error.kind() == io::ErrorKind::InvalidData => {
            RegionError::CorruptXz(error.to_string())
        }
        None => RegionError::Io(error),
    }
}

/// Blocks of rootA by index, at most `capacity`, the oldest dropped first.
struct BlockCache {
    blocks: HashMap<u64, Vec<u8>>,
    order: VecDeque<u64>,
    capacity: usize,
}

impl BlockCache {
    fn new(capacity: usize) -> BlockCache {
        BlockCache { blocks: HashMap::new(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    fn contains(&self, index: u64) -> bool {
        self.blocks.contains_key(&index)
    }

    fn get(&self, index: u64) -> Option<&[u8]> {
        self.blocks.get(&index).map(Vec::as_slice)
    }

    fn insert(&mut self, index: u64, data: Vec<u8>) {
        while self.blocks.len() >= self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.blocks.remove(&old);
                }
                None => break,
            }
        }
        if self.blocks.insert(index, data).is_none() {
            self.order.push_back(index);
        }
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

    /// An xz file of `len` bytes where byte `i` is `(i / 4096) as u8 ^ (i % 251) as u8`.
    fn xz_file(dir: &Path, len: u64) -> PathBuf {
        use std::io::Write;
        let path = dir.join("image.img.xz");
        let mut encoder = xz2::write::XzEncoder::new(File::create(&path).unwrap(), 1);
        let bytes: Vec<u8> = (0..len).map(byte_at).collect();
        encoder.write_all(&bytes).unwrap();
        encoder.finish().unwrap();
        path
    }

    fn byte_at(i: u64) -> u8 {
        (i / 4096) as u8 ^ (i % 251) as u8
    }

    fn read_at(reader: &mut XzRegion, region_start: u64, offset: u64, len: usize) {
        let mut buf = vec![0u8; len];
        Ext4Read::read(reader, offset, &mut buf).unwrap();
        let expected: Vec<u8> =
            (0..len as u64).map(|i| byte_at(region_start + offset + i)).collect();
        assert!(buf == expected, "wrong bytes at {offset}");
    }

    #[test]
    fn xz_region_goes_back_through_its_cache_or_one_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (start, len) = (3 * 4096 + 512, 4 * 1024 * 1024 + 100);
        let path = xz_file(dir.path(), start + len + 8192);
        let region = Region { path, start, len };
        let restarts = Rc::new(Cell::new(0));
        let mut reader = XzRegion::open(region, Rc::clone(&restarts)).unwrap();
        read_at(&mut reader, start, 1024, 1024);
        read_at(&mut reader, start, 3 * 1024 * 1024 + 4000, 9000);
        // Both already read: from the cache.
        read_at(&mut reader, start, 1500, 100);
        read_at(&mut reader, start, 3 * 1024 * 1024 + 4096, 4096);
        assert_eq!(restarts.get(), 0);
        // Behind the decoder and never read: one restart, then forward again.
        read_at(&mut reader, start, 1024 * 1024, 32 * 1024);
        assert_eq!(restarts.get(), 1);
        read_at(&mut reader, start, 2 * 1024 * 1024, 4096);
        // The region's last, short block, then past the region.
        read_at(&mut reader, start, len - 100, 100);
        assert_eq!(restarts.get(), 1);
        let mut buf = [0u8; 2];
        let error = Ext4Read::read(&mut reader, len - 1, &mut buf).unwrap_err();
        assert!(
            matches!(error.downcast_ref::<RegionError>(), Some(RegionError::BeyondPartition)),
            "{error}"
        );
    }

    #[test]
    fn xz_ending_inside_the_region_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = xz_file(dir.path(), 64 * 1024);
        let region = Region { path, start: 32 * 1024, len: 1024 * 1024 };
        let mut reader = XzRegion::open(region, Rc::new(Cell::new(0))).unwrap();
        let mut buf = [0u8; 4096];
        let error = Ext4Read::read(&mut reader, 64 * 1024, &mut buf).unwrap_err();
        assert!(
            matches!(error.downcast_ref::<RegionError>(), Some(RegionError::ImageEnds(65536))),
            "{error}"
        );
    }

    #[test]
    fn cache_drops_the_oldest_block_when_full() {
        let mut cache = BlockCache::new(2);
        cache.insert(1, vec![1]);
        cache.insert(2, vec![2]);
        cache.insert(3, vec![3]);
        assert!(!cache.contains(1));
        assert_eq!(cache.get(2), Some(&[2u8][..]));
        assert_eq!(cache.get(3), Some(&[3u8][..]));
    }
}
