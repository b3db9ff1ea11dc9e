//! Reading facts about the running host: os-release, mounts, swaps, partition tables, boot mode.
//!
//! Every submodule is a pure parser (text or bytes in, typed facts out) plus a thin reader
//! that takes a [`HostRoot`], so that tests can point the readers at a fixture tree instead
//! of `/`. [`facts::gather`] puts them together into one [`facts::HostFacts`].

pub mod block;
pub mod boot_mode;
pub mod device_number;
pub mod error;
mod escape;
pub mod facts;
pub mod fstab;
pub mod grub;
pub mod locate;
pub mod meminfo;
pub mod mountinfo;
pub mod os_release;
pub mod partition_table;
pub mod resume;
pub mod root;
pub mod swap_header;
pub mod swaps;
pub mod units;

pub use error::{HostError, ParseError};
pub use facts::{gather, HostFacts};
pub use root::HostRoot;
