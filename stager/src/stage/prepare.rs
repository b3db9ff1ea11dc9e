//! From the verified download to the file that will be staged.
//!
//! The migrator reads raw or xz images only (its parallel decoder wants multi-block xz), so
//! every other download is turned into a staged `.img.xz` here, before any change to the
//! host, in the download cache ([`super::DOWNLOAD_DIR`]) and nowhere else:
//! - raw or xz, normal image: staged as it is (no copy);
//! - gzip or zip, normal image: decoded and written as `prepared-<sha>.img.xz`;
//! - a flasher image (any container): its inner image, taken out of flash-rootA's `/opt`
//!   by `resin_image::open_inner` (streaming, no mounts), plus what `resin-init-flasher`
//!   would have added to it ([`Additions`]), written the same way.
//!
//! Facts (../shared/background/resinos-images-facts.md, "The flasher image"): every resinOS
//! 2.x intel-nuc download is a flasher; booted, it dd's `/opt/resin-image-<machine>.resinos-img`
//! over the first internal disk, copies `grub.cfg_internal` to both grub.cfg paths and its
//! config.json onto the new resin-boot, installs the BIOS boot code, then halts.
//! config.json needs nothing here: the migrator's restore step writes the operator's
//! config.json onto resin-boot (migrator/src/steps/restore.rs `step_restore`, `boot_files`).
//! The one thing the flasher does that we do not: for a BIOS install its board script
//! removes `/EFI` from the new resin-boot (balena-intel v2.12.7+rev1
//! `resin-init-flasher-board`); we leave it, it does not change a BIOS boot.
//!
//! The prepared file is rebuilt on every run (a leftover is replaced; it is never reused).
//! A refusal or failure leaves no prepared file and no working copy behind.

pub mod boot_code;
pub mod boot_fat;
pub mod xz_sink;

use super::refusal::RefusalText;
use crate::fetch::progress::{Progress, ProgressMode};
use crate::fetch::space;
use boot_fat::FileRegion;
use disk_layout::PartitionTable;
use plan::Bytes;
use resin_image::{Container, Download, FlasherFacts, ImageError, ImageKind};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use xz_sink::XzSink;

/// The decoded image's first bytes, held in memory (partition table, boot code, core.img).
pub const HEAD_BYTES: usize = 1024 * 1024;
/// The working copy of everything up to resin-boot's end may be at most this large.
pub const MAX_BOOT_END: u64 = 300 * 1024 * 1024;
/// Left free in the cache besides the prepared file and the working copy.
pub const MARGIN: Bytes = Bytes(32 * 1024 * 1024);
const COPY_BYTES: usize = 1024 * 1024;
const SECTOR: u64 = 512;

/// Why the download cannot be prepared; each one line, problem and fix.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.text())]
pub enum PrepareError {
    Image(#[from] ImageError),
    NoRoom { dir: PathBuf, needed: Bytes, download: Bytes, working: Bytes, free: Bytes },
    Io { what: &'static str, path: PathBuf, dir: PathBuf, source: io::Error },
    NoBootPartition { what: String },
    Table { what: String, detail: String },
    BootTooFar { what: String, end: u64 },
    Short { what: String, at: u64 },
    BootFat { what: String, detail: String },
    InnerNotNormal { what: String, why: String },
    EfiOnlyOnBios { what: String },
    BootCode { what: String, source: boot_code::BootCodeError },
    NoGrubCfg { what: String, path: &'static str },
}

impl PrepareError {
    /// What is wrong with the download and what to do about it, kept apart.
    pub fn text(&self) -> RefusalText {
        const AGAIN: &str = "download the resinOS image again";
        const FOR_TYPE: &str = "download the resinOS image for this device type";
        let new = |problem: String, fix: &str| RefusalText::new(problem, fix.into());
        match self {
            PrepareError::Image(e) => e.text(),
            PrepareError::NoRoom { dir, needed, download, working, free } => new(
                format!(
                    "not enough free space in {} to prepare the image: {needed} needed (the download's {download} + resin-boot's working copy {working} + {MARGIN} margin), {free} free",
                    dir.display()
                ),
                "free space there",
            ),
            PrepareError::Io { what, path, dir, source } => new(
                format!("cannot {what} {}: {source}", path.display()),
                &format!("check the file system of {}", dir.display()),
            ),
            PrepareError::NoBootPartition { what } => new(
                format!("the image {what} has no boot partition in its partition table"),
                &format!("{FOR_TYPE} again"),
            ),
            PrepareError::Table { what, detail } => {
                new(format!("the image {what} has an unreadable partition table ({detail})"), AGAIN)
            }
            PrepareError::BootTooFar { what, end } => new(
                format!(
                    "the image {what} has its boot partition ending at byte {end}, past the {MAX_BOOT_END} this tool edits"
                ),
                FOR_TYPE,
            ),
            PrepareError::Short { what, at } => new(
                format!("the image {what} ends at byte {at}, inside its boot partition"),
                "download it again (and its .sha256)",
            ),
            PrepareError::BootFat { what, detail } => new(
                format!("the boot partition of the image {what} is not a FAT file system ({detail})"),
                AGAIN,
            ),
            PrepareError::InnerNotNormal { what, why } => new(
                format!("the flasher's inner image {what} is not a normal resinOS image ({why})"),
                &format!("{FOR_TYPE} again"),
            ),
            PrepareError::EfiOnlyOnBios { what } => new(
                format!(
                    "EFI-only inner image {what} on a BIOS device: it has no MBR boot code and the flasher carries no grub/boot.img and grub/core.img to add"
                ),
                "download a newer resinOS release for this device type (its flasher carries the BIOS boot code), or use a UEFI device",
            ),
            PrepareError::BootCode { what, source } => new(
                format!("the flasher's BIOS boot code cannot go into the inner image {what}: {source}"),
                AGAIN,
            ),
            PrepareError::NoGrubCfg { what, path } => new(
                format!(
                    "the inner image {what} has no {path} and the flasher has no grub.cfg_internal to give it: GRUB would stop at its prompt"
                ),
                AGAIN,
            ),
        }
    }
}

/// How the device will boot the staged image, for the boot code and grub.cfg it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// MBR boot code and `/grub/grub.cfg`.
    Bios,
    /// `/EFI/BOOT/grub.cfg`.
    Uefi,
    /// Not known (`stager check` without a profile): either grub.cfg, no boot code.
    Unknown,
}

/// What to prepare from.
#[derive(Debug, Clone)]
pub struct PrepareRequest<'a> {
    /// The verified download.
    pub download: &'a Path,
    /// Its sha256 (hex), naming the prepared file.
    pub download_sha256: &'a str,
    pub download_size: Bytes,
    /// Where the prepared file goes (created if missing).
    pub cache_dir: &'a Path,
    pub firmware: Firmware,
    pub progress: ProgressMode,
}

/// The file that will be staged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub path: PathBuf,
    /// Written here (removed by [`Prepared::discard`]); `false`: the download itself.
    pub created: bool,
    /// For a person: which entry or inner image was taken and what was added.
    pub origin: Vec<String>,
}

impl Prepared {
    /// Removes a prepared file (a refusal after preparing must leave none).
    pub fn discard(&self) {
        if self.created {
            if let Err(e) = std::fs::remove_file(&self.path) {
                log::warn!("cannot remove {}: {e}", self.path.display());
            }
        }
    }
}

/// What `resin-init-flasher` would have added to the inner image.
#[derive(Debug, Clone, Default)]
struct Additions {
    /// The inner image's name (set for a flasher: it must be a normal image).
    inner: Option<String>,
    grub_cfg: Option<Vec<u8>>,
    boot_img: Option<Vec<u8>>,
    core_img: Option<Vec<u8>>,
}

impl Additions {
    fn of(facts: &FlasherFacts) -> Additions {
        Additions {
            inner: Some(inner_name(facts)),
            grub_cfg: facts.grub_cfg_internal.clone(),
            boot_img: facts.grub_boot_img.clone(),
            core_img: facts.grub_core_img.clone(),
        }
    }
}

/// The basename of the inner image's path in flash-rootA.
fn inner_name(facts: &FlasherFacts) -> String {
    facts.inner_path.rsplit('/').next().unwrap_or(&facts.inner_path).to_string()
}

/// The line `check` and `--dry-run` print for a flasher.
pub fn flasher_line(name: &str, size: Bytes) -> String {
    format!("flasher image: the inner image {name} ({size}) is what will be written")
}

/// Recognises the download and, unless it can be staged as it is, writes the prepared image.
pub fn prepare(req: &PrepareRequest<'_>) -> Result<Prepared, PrepareError> {
    let download = Download::open(req.download)?;
    let kind = classify(&download)?;
    let mut origin = Vec::new();
    match download.container() {
        Container::Zip => origin.push(format!(
            "zip download: the entry {} is the image",
            download.entry_name().unwrap_or("?")
        )),
        Container::Gzip => origin.push("gzip download: the image decompressed from it".into()),
        Container::Raw | Container::Xz => {}
    }
    let (source, additions, total) = match &kind {
        ImageKind::Normal => match download.container() {
            Container::Raw | Container::Xz => {
                return Ok(Prepared { path: req.download.to_path_buf(), created: false, origin })
            }
            Container::Gzip | Container::Zip => {
                (download.decoded()?, Additions::default(), download.decoded_size()?)
            }
        },
        ImageKind::Flasher(facts) => {
            origin.push(flasher_line(&inner_name(facts), facts.inner_size));
            let source = resin_image::open_inner(&download, facts)?;
            (source, Additions::of(facts), Some(facts.inner_size))
        }
    };
    let short: String = req.download_sha256.chars().take(16).collect();
    let dest = req.cache_dir.join(format!("prepared-{short}.img.xz"));
    let what = match &additions.inner {
        Some(name) => name.clone(),
        None => req.download.display().to_string(),
    };
    let job = Job { req, dest: &dest, what, download: req.download };
    let added = job.run(source, &additions, total)?;
    origin.extend(added);
    Ok(Prepared { path: dest, created: true, origin })
}

/// `resin_image::classify`, naming a damaged download as such: a decoder error met while
/// reading the partition table can come out as an unreadable table, so on any other error
/// the whole stream is decoded once to find the real cause (error path only).
fn classify(download: &Download) -> Result<ImageKind, ImageError> {
    match resin_image::classify(download) {
        Err(e) if !e.is_damaged_download() => Err(decoding_damage(download).unwrap_or(e)),
        other => other,
    }
}

fn decoding_damage(download: &Download) -> Option<ImageError> {
    let mut stream = download.decoded().ok()?;
    let failure = io::copy(&mut stream, &mut io::sink()).err()?;
    Some(ImageError::from_io(download.path(), failure)).filter(ImageError::is_damaged_download)
}

/// One preparation: where it writes and how it names the image in messages.
struct Job<'a> {
    req: &'a PrepareRequest<'a>,
    dest: &'a Path,
    what: String,
    download: &'a Path,
}

/// A working file removed when dropped.
struct Scratch {
    path: PathBuf,
    file: File,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Job<'_> {
    fn io(&self, what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PrepareError {
        let (path, dir) = (path.to_path_buf(), self.req.cache_dir.to_path_buf());
        move |source| PrepareError::Io { what, path, dir, source }
    }

    fn read_error(&self) -> impl Fn(io::Error) -> PrepareError + '_ {
        move |e| PrepareError::Image(ImageError::from_io(self.download, e))
    }

    /// Head, boot partition, checks and additions, then the xz stream. Returns lines
    /// saying what was added.
    fn run(
        &self,
        mut source: Box<dyn Read + Send>,
        additions: &Additions,
        total: Option<Bytes>,
    ) -> Result<Vec<String>, PrepareError> {
        let mut head = vec![0u8; HEAD_BYTES];
        let got = resin_image::read_full(&mut source, &mut head).map_err(self.read_error())?;
        head.truncate(got);
        let table = PartitionTable::from_head(&head)
            .map_err(|e| PrepareError::Table { what: self.what.clone(), detail: e.to_string() })?;
        let boot = table
            .primaries
            .iter()
            .find(|p| !p.is_extended())
            .copied()
            .ok_or_else(|| PrepareError::NoBootPartition { what: self.what.clone() })?;
        let (boot_start, boot_end) = (boot.start.0 * SECTOR, boot.end().0 * SECTOR);
        if boot_end > MAX_BOOT_END {
            return Err(PrepareError::BootTooFar { what: self.what.clone(), end: boot_end });
        }
        let mut added = Vec::new();
        if let Some(line) = self.boot_code(&mut head, &table, additions)? {
            added.push(line);
        }
        self.ensure_room(Bytes(boot_end))?;
        std::fs::create_dir_all(self.req.cache_dir)
            .map_err(self.io("create", self.req.cache_dir))?;

        // Everything up to resin-boot's end goes to a working file, where the FAT is read
        // and edited before the xz stream is begun.
        let scratch_path = self.dest.with_extension("boot.part");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&scratch_path)
            .map_err(self.io("create", &scratch_path))?;
        let scratch = Scratch { path: scratch_path, file };
        let mut progress = Progress::start(self.req.progress, "preparing the image");
        progress.set_total(total.map(Bytes::get));
        scratch.file.write_all_at(&head, 0).map_err(self.io("write", &scratch.path))?;
        let mut done = head.len() as u64;
        let mut buf = vec![0u8; COPY_BYTES];
        while done < boot_end {
            let want = usize::try_from(boot_end - done).unwrap_or(COPY_BYTES).min(COPY_BYTES);
            let n = read_some(&mut source, &mut buf[..want]).map_err(self.read_error())?;
            if n == 0 {
                return Err(PrepareError::Short { what: self.what.clone(), at: done });
            }
            scratch.file.write_all_at(&buf[..n], done).map_err(self.io("write", &scratch.path))?;
            done += n as u64;
            progress.set_position(done);
        }
        if let Some(line) = self.boot_fat(&scratch, boot_start, boot_end - boot_start, additions)? {
            added.push(line);
        }

        let mut sink = XzSink::create(self.dest).map_err(self.io("create", self.dest))?;
        let part = xz_sink::part_of(self.dest);
        let mut at = 0u64;
        while at < boot_end {
            let want = usize::try_from(boot_end - at).unwrap_or(COPY_BYTES).min(COPY_BYTES);
            scratch
                .file
                .read_exact_at(&mut buf[..want], at)
                .map_err(self.io("read", &scratch.path))?;
            sink.write_all(&buf[..want]).map_err(self.io("write", &part))?;
            at += want as u64;
        }
        drop(scratch);
        loop {
            let n = read_some(&mut source, &mut buf).map_err(self.read_error())?;
            if n == 0 {
                break;
            }
            sink.write_all(&buf[..n]).map_err(self.io("write", &part))?;
            done += n as u64;
            progress.set_position(done);
        }
        sink.finish().map_err(self.io("finish", &part))?;
        progress.finish();
        log::info!("prepared {} ({} decoded) as {}", self.what, Bytes(done), self.dest.display());
        Ok(added)
    }

    /// Refuses when the cache cannot hold the download's size, the working copy and the margin.
    fn ensure_room(&self, working: Bytes) -> Result<(), PrepareError> {
        let mut dir = self.req.cache_dir;
        // The cache may not exist yet: measure the file system it will be created on.
        while !dir.exists() {
            match dir.parent() {
                Some(parent) => dir = parent,
                None => break,
            }
        }
        let free = space::free_space(dir).map_err(|e| PrepareError::Io {
            what: "read the free space of",
            path: dir.to_path_buf(),
            dir: self.req.cache_dir.to_path_buf(),
            source: io::Error::other(e.to_string()),
        })?;
        let download = self.req.download_size;
        let needed =
            Bytes(download.get().saturating_add(working.get()).saturating_add(MARGIN.get()));
        if free.get() < needed.get() {
            return Err(PrepareError::NoRoom {
                dir: self.req.cache_dir.to_path_buf(),
                needed,
                download,
                working,
                free: Bytes(free.get()),
            });
        }
        Ok(())
    }

    /// For a BIOS device, the flasher's boot code into a flasher's inner image that has none.
    fn boot_code(
        &self,
        head: &mut [u8],
        table: &PartitionTable,
        additions: &Additions,
    ) -> Result<Option<String>, PrepareError> {
        if additions.inner.is_none()
            || self.req.firmware != Firmware::Bios
            || !boot_code::lacks_boot_code(head)
        {
            return Ok(None);
        }
        let (Some(boot_img), Some(core_img)) = (&additions.boot_img, &additions.core_img) else {
            return Err(PrepareError::EfiOnlyOnBios { what: self.what.clone() });
        };
        let first = table.all().map(|p| p.start.0 * SECTOR).min().unwrap_or(0);
        boot_code::install(head, boot_img, core_img, first)
            .map_err(|source| PrepareError::BootCode { what: self.what.clone(), source })?;
        Ok(Some(format!(
            "added the flasher's BIOS boot code: grub/boot.img's first {} bytes at byte 0, grub/core.img ({}) from byte {}",
            boot_code::BOOT_CODE_BYTES,
            Bytes(core_img.len() as u64),
            boot_code::CORE_IMG_OFFSET
        )))
    }

    /// A flasher's inner image must be a normal image; the flasher's grub.cfg goes onto it.
    fn boot_fat(
        &self,
        scratch: &Scratch,
        start: u64,
        len: u64,
        additions: &Additions,
    ) -> Result<Option<String>, PrepareError> {
        let Some(inner) = &additions.inner else { return Ok(None) };
        let fat_error =
            |e: io::Error| PrepareError::BootFat { what: self.what.clone(), detail: e.to_string() };
        let contents =
            boot_fat::inspect(FileRegion::new(&scratch.file, start, len)).map_err(fat_error)?;
        let not_normal = |why: String| PrepareError::InnerNotNormal { what: inner.clone(), why };
        if let Some(flag) = contents.flasher_flag {
            return Err(not_normal(format!("it is itself a flasher: /{flag}")));
        }
        if contents.label.to_ascii_lowercase().starts_with("flash-") {
            return Err(not_normal(format!("its boot partition is labelled {}", contents.label)));
        }
        if !contents.normal_flag {
            return Err(not_normal(
                "its boot partition has no /resin-image or /balena-image".into(),
            ));
        }
        match &additions.grub_cfg {
            Some(cfg) => {
                boot_fat::write_grub_cfg(FileRegion::new(&scratch.file, start, len), cfg)
                    .map_err(fat_error)?;
                Ok(Some(format!(
                    "added the flasher's grub.cfg_internal as /{} and /{} on resin-boot",
                    boot_fat::GRUB_CFG_PATHS[0],
                    boot_fat::GRUB_CFG_PATHS[1]
                )))
            }
            None => {
                let [efi, legacy] = contents.grub_cfg;
                let missing = match self.req.firmware {
                    Firmware::Bios if !legacy => Some(boot_fat::GRUB_CFG_PATHS[1]),
                    Firmware::Uefi if !efi => Some(boot_fat::GRUB_CFG_PATHS[0]),
                    Firmware::Unknown if !efi && !legacy => Some("grub.cfg"),
                    _ => None,
                };
                match missing {
                    Some(path) => Err(PrepareError::NoGrubCfg { what: inner.clone(), path }),
                    None => Ok(None),
                }
            }
        }
    }
}

/// One read, retried on EINTR.
fn read_some(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}
