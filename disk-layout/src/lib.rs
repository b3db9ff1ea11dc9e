//! The disk model both binaries sit on: the one MBR model ([`PartitionTable`]), the one
//! sysfs block-device reader ([`sysfs`]), and where resinOS partitions land in the old
//! root space.
//!
//! The image is written at disk offset 0 and must end before the staging
//! partition (or the extended partition holding it). At finalize, the image's
//! table is kept, or its data partition grows over the freed staging area.

mod finalize;
mod fit;
pub mod sysfs;
mod table;
pub mod units;

pub use finalize::{final_table, write_growth, DataGrowth, FinalTable, Growth};
pub use fit::{place_image, HostDisk, Placement, Span};
pub use table::{mbr_signature, HeadOverlay, MbrError, Partition, PartitionTable, GPT_PROTECTIVE};

use units::Sectors;

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(
        "cannot read the partition table: {0}; check that the image is a resinOS MBR disk image"
    )]
    Unreadable(MbrError),
    #[error("the image has a GPT partition table; only MBR images are supported for this board, pick its MBR image")]
    GptNotSupported,
    #[error(
        "image needs {needs_mib} MiB but only {room_mib} MiB lie before {before}; \
         use a smaller image or a larger old root partition"
    )]
    ImageTooLarge { needs_mib: u64, room_mib: u64, before: &'static str },
    #[error("the old root ends at {root_end}, past the staging area at {limit}; pick a staging partition after the old root")]
    OldRootPastStaging { root_end: Sectors, limit: Sectors },
    #[error("{limit} lies past the end of the disk ({disk_size}); the disk size or table is wrong, re-read the disk")]
    PastDiskEnd { limit: Sectors, disk_size: Sectors },
    #[error("no {what} partition starts at {start} on this disk; the plan does not match the disk, re-run the stager")]
    PartitionNotFound { what: &'static str, start: Sectors },
    #[error("the image has no data partition to grow; set the profile to keep the table")]
    NoDataPartition,
    #[error("partition {number} would exceed what an MBR entry holds (2 TiB); keep the table instead of growing")]
    BeyondMbr { number: u32 },
    #[error("cannot access the partition table at {at}: {source}")]
    Io { at: Sectors, source: std::io::Error },
}
