//! Typed sizes: bytes and 512-byte sectors never mix silently.
//!
//! Local stand-ins until `plan::units` lands; the names and meanings match it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Bytes per logical sector in partition tables handled here (MBR images use 512).
pub const SECTOR_BYTES: u64 = 512;

/// A byte count or byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bytes(pub u64);

/// A count or offset of 512-byte sectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sectors(pub u64);

impl Bytes {
    pub const fn mib(n: u64) -> Bytes {
        Bytes(n * 1024 * 1024)
    }

    /// Whole sectors covering these bytes (rounded up).
    pub const fn to_sectors_ceil(self) -> Sectors {
        Sectors(self.0.div_ceil(SECTOR_BYTES))
    }

    /// Size in whole MiB, rounded up (for messages).
    pub const fn mib_ceil(self) -> u64 {
        self.0.div_ceil(1024 * 1024)
    }

    /// Size in whole MiB, rounded down (for messages).
    pub const fn mib_floor(self) -> u64 {
        self.0 / (1024 * 1024)
    }
}

impl Sectors {
    pub const fn to_bytes(self) -> Bytes {
        Bytes(self.0 * SECTOR_BYTES)
    }

    pub const fn saturating_sub(self, other: Sectors) -> Sectors {
        Sectors(self.0.saturating_sub(other.0))
    }
}

impl std::ops::Add for Sectors {
    type Output = Sectors;
    fn add(self, rhs: Sectors) -> Sectors {
        Sectors(self.0 + rhs.0)
    }
}

impl std::ops::Add for Bytes {
    type Output = Bytes;
    fn add(self, rhs: Bytes) -> Bytes {
        Bytes(self.0 + rhs.0)
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", self.0)
    }
}

impl fmt::Display for Sectors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} sectors", self.0)
    }
}
