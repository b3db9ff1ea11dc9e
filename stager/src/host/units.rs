//! The kernel's 512-byte units. Bytes and logical sectors are the plan's [`plan::Bytes`] and
//! [`plan::Sectors`] (one definition for stager, plan and migrator); this module adds only
//! the unit sysfs counts in.

use plan::Bytes;
use serde::Serialize;

/// A count or offset in the kernel's 512-byte units, as sysfs `start` and `size` report
/// them whatever the disk's logical sector size is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct KernelSectors(pub u64);

impl KernelSectors {
    pub const UNIT: Bytes = Bytes(512);
    /// The byte offset or size (saturating: sysfs counts far below 2^55 sectors).
    pub const fn bytes(self) -> Bytes {
        Bytes(self.0.saturating_mul(Self::UNIT.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_sectors_are_512_bytes_whatever_the_disk() {
        assert_eq!(KernelSectors(2048).bytes(), Bytes(1024 * 1024));
    }
}
