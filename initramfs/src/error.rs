//! The one error type of this crate; every message names the problem and,
//! where there is one, the fix.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write the archive: {0}")]
    Write(#[source] io::Error),

    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("invalid archive path {path:?}: {reason}; use a path like \"bin/sh\" or \"/bin/sh\" without \"..\"")]
    InvalidPath { path: String, reason: &'static str },

    #[error("archive path {path:?} is added twice; give each path once")]
    DuplicatePath { path: String },

    #[error("cannot put {path:?} in the archive: its parent {parent:?} is not a directory")]
    ParentNotDirectory { path: String, parent: String },

    #[error("invalid mode {mode:#o} for {path:?}: only permission bits (at most 0o7777) are allowed; the entry type sets the rest")]
    InvalidMode { path: String, mode: u32 },

    #[error("{path:?} is {size} bytes, more than the 4 GiB - 1 a newc archive entry can hold")]
    FileTooLarge { path: String, size: u64 },

    #[error("{path:?}: the source gave {actual} bytes where {expected} were promised; the file changed while being archived, retry")]
    ShortRead { path: String, expected: u64, actual: u64 },

    #[error("cannot start the {compression} encoder: {reason}")]
    Encoder { compression: &'static str, reason: String },

    #[error("unknown compression {0:?}; use none, gzip, xz or zstd")]
    UnknownCompression(String),

    #[error("cannot read the module tree {tree}: {source}; pass the /lib/modules/<version> directory of the kernel (run depmod there if modules.dep is missing)")]
    ModuleTree {
        tree: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{tree}/modules.dep line {line}: {reason}; regenerate it with depmod")]
    ModulesDepSyntax { tree: PathBuf, line: usize, reason: &'static str },

    #[error("module {name:?} is neither in {tree}/modules.dep nor in modules.builtin; check its name or pick the board profile that matches this kernel")]
    ModuleNotFound { name: String, tree: PathBuf },

    #[error("module {module:?} depends on {dependency:?}, which has no line of its own in {tree}/modules.dep; regenerate it with depmod")]
    MissingDependency { module: String, dependency: String, tree: PathBuf },

    #[error("modules.dep in {tree} has a dependency cycle through {module:?}; regenerate it with depmod")]
    DependencyCycle { module: String, tree: PathBuf },

    #[error("module file {path} is listed in modules.dep but missing; reinstall the kernel's modules package")]
    ModuleFileMissing { path: PathBuf },

    #[error("module file {path} has an unsupported compression; only .ko, .ko.xz, .ko.zst and .ko.gz are supported")]
    UnsupportedModuleCompression { path: PathBuf },

    #[error("cannot decompress module {path}: {source}; the file is corrupt, reinstall the kernel's modules package")]
    Decompress {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("the initramfs has no /init; give one with InitramfsBuilder::init")]
    MissingInit,
}
