//! Build the migration initramfs: a cpio "newc" archive (optionally
//! compressed) holding a static `/init`, the kernel modules it needs and any
//! extra files.
//!
//! - [`cpio`]: a streaming, deterministic newc writer.
//! - [`compression`]: the kernel-readable compressions of the whole archive.
//! - [`modules`]: the module closure of a list of wanted modules, from a
//!   `/lib/modules/<version>` tree.
//! - [`builder`]: [`InitramfsBuilder`], which puts the three together.

pub mod builder;
pub mod compression;
mod counting;
pub mod cpio;
mod error;
pub mod modules;

pub use builder::{
    BuildReport, FileSource, InitramfsBuilder, MODULE_LOAD_LIST_PATH, MODULE_OPTIONAL_LIST_PATH,
};
pub use compression::Compression;
pub use cpio::CpioWriter;
pub use cpio::DeviceNumber;
pub use error::Error;
pub use modules::{Module, ModuleCompression, ModuleSet, ModuleTree};

/// Result of this crate's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
