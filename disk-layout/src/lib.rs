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

use plan::RefusalText;
use units::Sectors;

/// Why the image cannot be placed or the table finalized; [`LayoutError::text`] gives the
/// problem and the fix apart, the one line joins them.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.text())]
pub enum LayoutError {
    Unreadable(MbrError),
    GptNotSupported,
    ImageTooLarge { needs_mib: u64, room_mib: u64, before: &'static str },
    OldRootPastStaging { root_end: Sectors, limit: Sectors },
    PastDiskEnd { limit: Sectors, disk_size: Sectors },
    PartitionNotFound { what: &'static str, start: Sectors },
    NoDataPartition,
    BeyondMbr { number: u32 },
    Io { at: Sectors, source: std::io::Error },
}

impl LayoutError {
    /// What is wrong and, where there is one, what to do about it, kept apart. Some fixes
    /// begin with their reason ("the disk size or table is wrong, re-read the disk"); the
    /// one line reads as before.
    pub fn text(&self) -> RefusalText {
        let new = |problem: String, fix: &str| RefusalText::new(problem, fix.into());
        match self {
            LayoutError::Unreadable(e) => new(
                format!("cannot read the partition table: {e}"),
                "check that the image is a resinOS MBR disk image",
            ),
            LayoutError::GptNotSupported => new(
                "the image has a GPT partition table".into(),
                "only MBR images are supported for this board, pick its MBR image",
            ),
            LayoutError::ImageTooLarge { needs_mib, room_mib, before } => new(
                format!("image needs {needs_mib} MiB but only {room_mib} MiB lie before {before}"),
                "use a smaller image or a larger old root partition",
            ),
            LayoutError::OldRootPastStaging { root_end, limit } => new(
                format!("the old root ends at {root_end}, past the staging area at {limit}"),
                "pick a staging partition after the old root",
            ),
            LayoutError::PastDiskEnd { limit, disk_size } => new(
                format!("{limit} lies past the end of the disk ({disk_size})"),
                "the disk size or table is wrong, re-read the disk",
            ),
            LayoutError::PartitionNotFound { what, start } => new(
                format!("no {what} partition starts at {start} on this disk"),
                "the plan does not match the disk, re-run the stager",
            ),
            LayoutError::NoDataPartition => new(
                "the image has no data partition to grow".into(),
                "set the profile to keep the table",
            ),
            LayoutError::BeyondMbr { number } => new(
                format!("partition {number} would exceed what an MBR entry holds (2 TiB)"),
                "keep the table instead of growing",
            ),
            LayoutError::Io { at, source } => RefusalText::problem_only(format!(
                "cannot access the partition table at {at}: {source}"
            )),
        }
    }
}

#[cfg(test)]
mod error_text_tests {
    use super::*;

    #[test]
    fn a_layout_error_gives_its_problem_and_fix_apart_and_prints_them_as_before() {
        let e = LayoutError::ImageTooLarge { needs_mib: 900, room_mib: 800, before: "swap" };
        let text = e.text();
        assert_eq!(text.problem, "image needs 900 MiB but only 800 MiB lie before swap");
        assert_eq!(text.fix.as_deref(), Some("use a smaller image or a larger old root partition"));
        assert_eq!(
            e.to_string(),
            "image needs 900 MiB but only 800 MiB lie before swap; use a smaller image or a larger old root partition"
        );
    }

    #[test]
    fn an_io_error_names_no_fix() {
        let source = std::io::Error::other("short read; device gone");
        let e = LayoutError::Io { at: Sectors(2048), source };
        // Split at its last "; ", this line would have offered "device gone" as the fix.
        assert_eq!(e.text().fix, None);
        assert_eq!(e.to_string(), e.text().problem);
        assert!(e.to_string().ends_with(": short read; device gone"), "{e}");
    }
}
