//! Does the image fit before the staging partition? (Pure.)

use super::table::PartitionTable;
use super::units::{MibForMessages, Sectors, Sectors512};
use super::LayoutError;

/// A run of sectors on the host disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: Sectors,
    pub size: Sectors,
}

impl Span {
    pub fn end(&self) -> Sectors {
        self.start.plus(self.size)
    }
}

/// The host disk facts the placement needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostDisk {
    /// The old root partition, whose space resinOS takes.
    pub old_root: Span,
    /// Where the staging partition starts.
    pub staging_start: Sectors,
    /// Start of the extended partition holding the staging partition, if it is a
    /// logical one: its EBR must survive until finalize, so the image must end before it.
    pub staging_container_start: Option<Sectors>,
    /// Size of the whole disk.
    pub disk_size: Sectors,
}

impl HostDisk {
    /// The facts from the host's own table, finding the old root and the staging
    /// partition by their start sectors (names differ between kernels; starts don't).
    pub fn from_table(
        table: &PartitionTable,
        old_root_start: Sectors,
        staging_start: Sectors,
        disk_size: Sectors,
    ) -> Result<HostDisk, LayoutError> {
        let find = |start: Sectors, what: &'static str| {
            table
                .all()
                .find(|p| p.start == start && !p.is_extended())
                .copied()
                .ok_or(LayoutError::PartitionNotFound { what, start })
        };
        let root = find(old_root_start, "old root")?;
        let staging = find(staging_start, "staging")?;
        let staging_container_start =
            if staging.number >= 5 { table.extended().map(|e| e.start) } else { None };
        Ok(HostDisk {
            old_root: Span { start: root.start, size: root.size },
            staging_start: staging.start,
            staging_container_start,
            disk_size,
        })
    }

    /// First sector the image must not touch, and what lies there (for messages).
    pub fn limit(&self) -> (Sectors, &'static str) {
        match self.staging_container_start {
            Some(ext) if ext < self.staging_start => {
                (ext, "the extended partition holding the staging partition")
            }
            _ => (self.staging_start, "the staging partition"),
        }
    }
}

/// Where the image goes: written at disk offset 0, reaching up to `image_end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// First sector after the image's last partition.
    pub image_end: Sectors,
    /// First sector the image must not touch.
    pub limit: Sectors,
    /// Room left between the image's end and the limit.
    pub spare: Sectors,
}

/// Check that the image (written at offset 0) ends before the staging area.
pub fn place_image(image: &PartitionTable, host: &HostDisk) -> Result<Placement, LayoutError> {
    let (limit, what) = host.limit();
    if host.old_root.end() > limit {
        return Err(LayoutError::OldRootPastStaging { root_end: host.old_root.end(), limit });
    }
    if limit > host.disk_size {
        return Err(LayoutError::PastDiskEnd { limit, disk_size: host.disk_size });
    }
    let image_end = image.end();
    if image_end > limit {
        return Err(LayoutError::ImageTooLarge {
            needs_mib: image_end.bytes_512().mib_ceil(),
            room_mib: limit.bytes_512().mib_floor(),
            before: what,
        });
    }
    Ok(Placement { image_end, limit, spare: limit.saturating_sub(image_end) })
}
