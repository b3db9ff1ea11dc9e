//! Typed sizes for the migrator's partition-table work: the plan's `Bytes` and `Sectors`
//! (one definition for stager, plan and migrator), plus the 512-byte-sector arithmetic of
//! the MBR layouts handled here. Only 512-byte-sector disks are supported (the stager
//! refuses others), so these conversions cannot meet another sector size.

pub use plan::units::{Bytes, Sectors};

/// Bytes per logical sector in the partition tables handled here.
pub const SECTOR_BYTES: u64 = 512;

const MIB: u64 = 1024 * 1024;

/// Sector arithmetic at 512 bytes per sector.
pub trait Sectors512 {
    /// The byte offset or size of these sectors (saturating: a table entry is at most
    /// 2^32 sectors, far from overflowing).
    fn bytes_512(self) -> Bytes;
    fn saturating_sub(self, other: Sectors) -> Sectors;
    fn plus(self, other: Sectors) -> Sectors;
}

impl Sectors512 for Sectors {
    fn bytes_512(self) -> Bytes {
        Bytes(self.0.saturating_mul(SECTOR_BYTES))
    }

    fn saturating_sub(self, other: Sectors) -> Sectors {
        Sectors(self.0.saturating_sub(other.0))
    }

    fn plus(self, other: Sectors) -> Sectors {
        Sectors(self.0.saturating_add(other.0))
    }
}

/// Whole MiB, for messages.
pub trait MibForMessages {
    /// Rounded up.
    fn mib_ceil(self) -> u64;
    /// Rounded down.
    fn mib_floor(self) -> u64;
}

impl MibForMessages for Bytes {
    fn mib_ceil(self) -> u64 {
        self.0.div_ceil(MIB)
    }

    fn mib_floor(self) -> u64 {
        self.0 / MIB
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sectors_are_512_bytes_here() {
        assert_eq!(Sectors(2048).bytes_512(), Bytes(1024 * 1024));
        assert_eq!(Sectors(5).saturating_sub(Sectors(9)), Sectors(0));
        assert_eq!(Sectors(5).plus(Sectors(9)), Sectors(14));
        assert_eq!((Bytes(MIB + 1).mib_ceil(), Bytes(MIB + 1).mib_floor()), (2, 1));
    }
}
