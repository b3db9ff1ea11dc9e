//! [`InitramfsBuilder`]: the migration initramfs (or a test one) from a
//! static `/init`, a kernel's module closure and extra files.
//!
//! Layout of what it writes, in sorted path order (so every directory comes
//! before what it holds):
//! - the standard directories `bin dev etc lib mnt proc root run sbin sys
//!   tmp` and the device nodes `/dev/console` (c 5:1) and `/dev/null`
//!   (c 1:3), so the kernel has a console before devtmpfs is mounted;
//! - `/init` (mode 0755), a binary or a script;
//! - with a module tree: the decompressed modules under
//!   `/lib/modules/<version>/…/*.ko`, [`MODULE_LOAD_LIST_PATH`] and
//!   [`MODULE_OPTIONAL_LIST_PATH`];
//! - optionally `/bin/busybox` with applet symlinks;
//! - every extra directory, file, symlink or device node given.
//!
//! An entry given explicitly replaces a standard directory or device node
//! of the same path; giving any other path twice is an error.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::compression::Compression;
use crate::counting::CountingWriter;
use crate::cpio::{normalize_path, CpioWriter, DeviceNumber};
use crate::modules::{Module, ModuleTree};
use crate::{Error, Result};

/// Where the module load list is stored in the archive: one archive path
/// (relative to `/`, e.g. `lib/modules/6.1.0-13-amd64/kernel/fs/ext4/ext4.ko`)
/// per line, dependencies first.
pub const MODULE_LOAD_LIST_PATH: &str = "etc/swapover/modules.load";
/// The subset of the load list that only soft dependencies brought in
/// (same format): the init may go on when one of these fails to load
/// (crc32c_intel fails with ENODEV on a CPU without SSE4.2).
pub const MODULE_OPTIONAL_LIST_PATH: &str = "etc/swapover/modules.optional";

const INIT_PATH: &str = "init";
const BUSYBOX_PATH: &str = "bin/busybox";
const EXECUTABLE_MODE: u32 = 0o755;
const DIRECTORY_MODE: u32 = 0o755;
const DATA_FILE_MODE: u32 = 0o644;

const STANDARD_DIRECTORIES: [(&str, u32); 11] = [
    ("bin", DIRECTORY_MODE),
    ("dev", DIRECTORY_MODE),
    ("etc", DIRECTORY_MODE),
    ("lib", DIRECTORY_MODE),
    ("mnt", DIRECTORY_MODE),
    ("proc", DIRECTORY_MODE),
    ("root", 0o700),
    ("run", DIRECTORY_MODE),
    ("sbin", DIRECTORY_MODE),
    ("sys", DIRECTORY_MODE),
    ("tmp", 0o1777),
];
const CONSOLE: (&str, u32, DeviceNumber) = ("dev/console", 0o600, DeviceNumber::new(5, 1));
const NULL: (&str, u32, DeviceNumber) = ("dev/null", 0o666, DeviceNumber::new(1, 3));

/// Where a file's contents come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// These bytes.
    Bytes(Vec<u8>),
    /// The contents of this host file, read when the archive is written.
    HostPath(PathBuf),
}

impl From<Vec<u8>> for FileSource {
    fn from(bytes: Vec<u8>) -> Self {
        FileSource::Bytes(bytes)
    }
}

impl From<&[u8]> for FileSource {
    fn from(bytes: &[u8]) -> Self {
        FileSource::Bytes(bytes.to_vec())
    }
}

impl From<PathBuf> for FileSource {
    fn from(path: PathBuf) -> Self {
        FileSource::HostPath(path)
    }
}

impl From<&Path> for FileSource {
    fn from(path: &Path) -> Self {
        FileSource::HostPath(path.to_path_buf())
    }
}

#[derive(Debug, Clone)]
enum Entry {
    Directory { mode: u32 },
    File { source: FileSource, mode: u32 },
    Module(usize),
    Symlink { target: String },
    CharDevice { mode: u32, device: DeviceNumber },
    BlockDevice { mode: u32, device: DeviceNumber },
}

/// What [`InitramfsBuilder::write_to`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildReport {
    /// Size of what was written to the output (compressed if asked).
    pub archive_bytes: u64,
    /// Size of the cpio archive before compression.
    pub cpio_bytes: u64,
    pub compression: Compression,
    /// Every path in the archive, in archive order, implied parent
    /// directories included (the trailer excluded).
    pub paths: Vec<String>,
    /// Kernel version of the module tree, if one was given.
    pub kernel_version: Option<String>,
    /// Canonical names of the modules included, in load order.
    pub modules: Vec<String>,
    /// Wanted modules that are built into the kernel.
    pub builtin_modules: Vec<String>,
    /// Modules of `modules` that only soft dependencies brought in.
    pub optional_modules: Vec<String>,
    /// Total size of the included modules, uncompressed.
    pub module_bytes: u64,
}

/// Collects the contents of an initramfs, then writes it with
/// [`InitramfsBuilder::write_to`] or [`InitramfsBuilder::write_to_path`].
#[derive(Debug, Clone, Default)]
pub struct InitramfsBuilder {
    module_tree: Option<PathBuf>,
    wanted_modules: Vec<String>,
    entries: Vec<(String, Entry)>,
    compression: Compression,
    mtime: u32,
}

impl InitramfsBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Includes the closure of `wanted` (module names, `-`/`_` alike, or
    /// exact aliases) from the tree `dir` (a `/lib/modules/<version>`
    /// directory) and writes [`MODULE_LOAD_LIST_PATH`] (empty if every
    /// wanted module is built in) and [`MODULE_OPTIONAL_LIST_PATH`].
    pub fn modules<I, S>(mut self, dir: impl Into<PathBuf>, wanted: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.module_tree = Some(dir.into());
        self.wanted_modules = wanted.into_iter().map(Into::into).collect();
        self
    }

    /// The `/init` the kernel runs (mode 0755): a static binary, or a
    /// script whose interpreter is in the archive too.
    pub fn init(self, source: impl Into<FileSource>) -> Self {
        self.file(INIT_PATH, source, EXECUTABLE_MODE)
    }

    /// A busybox binary at `/bin/busybox` and, for each applet, a symlink
    /// to it: `/bin/<applet>`, or the applet's own path if it has a `/`
    /// (e.g. `sbin/switch_root`).
    pub fn busybox<I, S>(mut self, binary: impl Into<FileSource>, applets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self = self.file(BUSYBOX_PATH, binary, EXECUTABLE_MODE);
        for applet in applets {
            let applet = applet.as_ref();
            let (path, target) = if applet.contains('/') {
                (applet.to_string(), format!("/{BUSYBOX_PATH}"))
            } else {
                (format!("bin/{applet}"), "busybox".to_string())
            };
            self = self.symlink(path, target);
        }
        self
    }

    /// A regular file with permission bits `mode`.
    pub fn file(
        mut self,
        path: impl Into<String>,
        source: impl Into<FileSource>,
        mode: u32,
    ) -> Self {
        self.entries.push((path.into(), Entry::File { source: source.into(), mode }));
        self
    }

    /// A data file (mode 0644) holding `bytes`.
    pub fn data_file(self, path: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        self.file(path, FileSource::Bytes(bytes.into()), DATA_FILE_MODE)
    }

    /// A directory with permission bits `mode` (missing parents of any
    /// entry are made with mode 0755 without asking).
    pub fn directory(mut self, path: impl Into<String>, mode: u32) -> Self {
        self.entries.push((path.into(), Entry::Directory { mode }));
        self
    }

    /// A symbolic link at `path` to `target`.
    pub fn symlink(mut self, path: impl Into<String>, target: impl Into<String>) -> Self {
        self.entries.push((path.into(), Entry::Symlink { target: target.into() }));
        self
    }

    /// A character device node.
    pub fn char_device(mut self, path: impl Into<String>, mode: u32, device: DeviceNumber) -> Self {
        self.entries.push((path.into(), Entry::CharDevice { mode, device }));
        self
    }

    /// A block device node.
    pub fn block_device(
        mut self,
        path: impl Into<String>,
        mode: u32,
        device: DeviceNumber,
    ) -> Self {
        self.entries.push((path.into(), Entry::BlockDevice { mode, device }));
        self
    }

    /// Compression of the whole archive (default: none).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Modification time of every entry, in seconds since the epoch
    /// (default 0, so that the output depends only on the contents).
    pub fn mtime(mut self, mtime: u32) -> Self {
        self.mtime = mtime;
        self
    }

    /// Writes the archive to `path`: first to `<path>.partial`, synced, then
    /// renamed over `path`, so `path` is either the old file or the whole
    /// new archive.
    pub fn write_to_path(&self, path: &Path) -> Result<BuildReport> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let result = self.write_synced(&partial);
        if result.is_err() {
            let _ = fs::remove_file(&partial);
        }
        let report = result?;
        fs::rename(&partial, path).map_err(Error::Write)?;
        Ok(report)
    }

    fn write_synced(&self, path: &Path) -> Result<BuildReport> {
        let file = File::create(path).map_err(Error::Write)?;
        let mut out = BufWriter::new(file);
        let report = self.write_to(&mut out)?;
        let file = out.into_inner().map_err(|error| Error::Write(error.into_error()))?;
        file.sync_all().map_err(Error::Write)?;
        Ok(report)
    }

    /// Writes the archive to `out`. Nothing is written if the contents are
    /// inconsistent (a duplicate or invalid path, no `/init`, an unknown
    /// module, a missing host file).
    pub fn write_to<W: Write>(&self, out: W) -> Result<BuildReport> {
        let module_set = match &self.module_tree {
            Some(dir) => Some(ModuleTree::open(dir)?.resolve(&self.wanted_modules)?),
            None => None,
        };
        let modules: &[Module] = module_set.as_ref().map_or(&[], |set| &set.load_order);
        let planned = self.plan_entries(module_set.as_ref())?;

        let mut counted_output = CountingWriter::new(out);
        let compressed = self.compression.writer(&mut counted_output)?;
        let mut cpio = CpioWriter::with_mtime(CountingWriter::new(compressed), self.mtime);
        let mut paths = Vec::new();
        let mut module_bytes = 0;
        for (components, entry) in &planned {
            let path = components.join("/");
            add_missing_parents_to(&mut paths, &path, &cpio);
            match entry {
                Entry::Directory { mode } => cpio.directory(&path, *mode)?,
                Entry::File { source: FileSource::Bytes(bytes), mode } => {
                    cpio.file_from_bytes(&path, *mode, bytes)?
                }
                Entry::File { source: FileSource::HostPath(source), mode } => {
                    cpio.file_from_path(&path, *mode, source)?
                }
                Entry::Module(index) => {
                    let contents = modules[*index].read_decompressed()?;
                    module_bytes += contents.len() as u64;
                    cpio.file_from_bytes(&path, 0o644, &contents)?;
                }
                Entry::Symlink { target } => cpio.symlink(&path, target)?,
                Entry::CharDevice { mode, device } => cpio.char_device(&path, *mode, *device)?,
                Entry::BlockDevice { mode, device } => cpio.block_device(&path, *mode, *device)?,
            }
            paths.push(path);
        }
        let counted_cpio = cpio.finish()?;
        let cpio_bytes = counted_cpio.bytes_written();
        counted_cpio.into_inner().finish()?;
        let report = BuildReport {
            archive_bytes: counted_output.bytes_written(),
            cpio_bytes,
            compression: self.compression,
            paths,
            kernel_version: module_set.as_ref().map(|set| set.kernel_version.clone()),
            modules: modules.iter().map(|module| module.name.clone()).collect(),
            builtin_modules: module_set.as_ref().map(|set| set.builtin.clone()).unwrap_or_default(),
            optional_modules: module_set.map(|set| set.optional).unwrap_or_default(),
            module_bytes,
        };
        log::info!(
            "initramfs: {} bytes ({} compression, {} bytes of cpio), {} entries, {} modules ({} bytes)",
            report.archive_bytes,
            report.compression,
            report.cpio_bytes,
            report.paths.len(),
            report.modules.len(),
            report.module_bytes
        );
        Ok(report)
    }

    /// Every entry keyed by its path components, so that iteration order
    /// puts each directory before its contents.
    fn plan_entries(
        &self,
        module_set: Option<&crate::ModuleSet>,
    ) -> Result<BTreeMap<Vec<String>, Entry>> {
        let mut planned = BTreeMap::new();
        let mut add = |path: &str, entry: Entry| -> Result<()> {
            let name = normalize_path(path)?;
            let components = name.split('/').map(String::from).collect::<Vec<_>>();
            if planned.insert(components, entry).is_some() {
                return Err(Error::DuplicatePath { path: name });
            }
            Ok(())
        };
        if let Some(set) = module_set {
            for (index, module) in set.load_order.iter().enumerate() {
                add(&module.archive_path, Entry::Module(index))?;
            }
            add(
                MODULE_LOAD_LIST_PATH,
                Entry::File {
                    source: FileSource::Bytes(set.load_list().into_bytes()),
                    mode: DATA_FILE_MODE,
                },
            )?;
            add(
                MODULE_OPTIONAL_LIST_PATH,
                Entry::File {
                    source: FileSource::Bytes(set.optional_list().into_bytes()),
                    mode: DATA_FILE_MODE,
                },
            )?;
        }
        for (path, entry) in &self.entries {
            if let Entry::File { source: FileSource::HostPath(source), .. } = entry {
                fs::metadata(source)
                    .map_err(|error| Error::Read { path: source.clone(), source: error })?;
            }
            add(path, entry.clone())?;
        }
        let standard = STANDARD_DIRECTORIES
            .iter()
            .map(|(path, mode)| (*path, Entry::Directory { mode: *mode }))
            .chain(
                [CONSOLE, NULL]
                    .map(|(path, mode, device)| (path, Entry::CharDevice { mode, device })),
            );
        for (path, entry) in standard {
            let components = path.split('/').map(String::from).collect::<Vec<_>>();
            planned.entry(components).or_insert(entry);
        }
        if !planned.contains_key(&vec![INIT_PATH.to_string()]) {
            return Err(Error::MissingInit);
        }
        Ok(planned)
    }
}

/// Records the parent directories `cpio` is about to write implicitly for
/// `path`, so the report lists every path of the archive.
fn add_missing_parents_to<W: Write>(paths: &mut Vec<String>, path: &str, cpio: &CpioWriter<W>) {
    for (index, _) in path.match_indices('/') {
        let parent = &path[..index];
        if !cpio.contains(parent) {
            paths.push(parent.to_string());
        }
    }
}
