//! Reads what customers download as a resinOS image and tells file systems apart.
//!
//! - [`sniff`], [`Download`]: the container (raw, xz, gzip, zip with one disk image) and a
//!   fresh decoded stream of the disk image.
//! - [`RestartingReader`], [`ByteRange`]: positioned reads over that forward-only stream.
//! - [`classify`], [`open_inner`]: a normal image or a flasher, and a flasher's inner image.
//! - [`detect_fs`]: the file system of a partition's first bytes (also without the default
//!   `downloads` feature, for the migrator).
//! - [`ext_uuid`]: an ext2/3/4 file system's UUID from its superblock (also without it).
//! - [`read_full`]: read until a buffer is full or the stream ends (also without it).

mod error;
mod fs_kind;
mod read;

pub use error::ImageError;
pub use fs_kind::{detect_fs, ext_uuid, fat_volume_id, EXT_UUID_BYTES, FS_PROBE_BYTES};
pub use plan::FsType;
pub use read::read_full;

#[cfg(feature = "downloads")]
mod classify;
#[cfg(feature = "downloads")]
mod container;
#[cfg(feature = "downloads")]
mod download;
#[cfg(feature = "downloads")]
mod inner;
#[cfg(feature = "downloads")]
mod partitions;
#[cfg(feature = "downloads")]
mod restarting;

#[cfg(feature = "downloads")]
pub use classify::{classify, FlasherFacts, ImageKind};
#[cfg(feature = "downloads")]
pub use container::{sniff, sniff_bytes, Container};
#[cfg(feature = "downloads")]
pub use download::{is_disk_sector, Download};
#[cfg(feature = "downloads")]
pub use inner::open_inner;
#[cfg(feature = "downloads")]
pub use partitions::{read_partitions, read_primary_partitions, Partition};
#[cfg(feature = "downloads")]
pub use restarting::{
    ByteRange, Opener, RestartingReader, CACHE_BLOCK, DEFAULT_CACHE_BYTES, LARGE_READ,
};
