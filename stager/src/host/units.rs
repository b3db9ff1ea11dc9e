//! Typed sizes, so that bytes, kernel 512-byte sectors and logical sectors never mix.

use serde::Serialize;
use std::fmt;

/// A size or offset in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(transparent)]
pub struct Bytes(pub u64);

impl Bytes {
    pub const fn kib(n: u64) -> Self {
        Bytes(n * 1024)
    }
    /// `n` KiB, or `None` when that many bytes do not fit in 64 bits (for sizes read
    /// from the host, where a corrupt number must be refused, not overflow).
    pub const fn checked_kib(n: u64) -> Option<Self> {
        match n.checked_mul(1024) {
            Some(bytes) => Some(Bytes(bytes)),
            None => None,
        }
    }
    pub const fn mib(n: u64) -> Self {
        Bytes(n * 1024 * 1024)
    }
    pub const fn gib(n: u64) -> Self {
        Bytes(n * 1024 * 1024 * 1024)
    }
    pub const fn get(self) -> u64 {
        self.0
    }
    pub const fn saturating_sub(self, other: Bytes) -> Bytes {
        Bytes(self.0.saturating_sub(other.0))
    }
    pub const fn saturating_add(self, other: Bytes) -> Bytes {
        Bytes(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for Bytes {
    /// Binary units with one decimal, e.g. `2.0 GiB`; exact below 1 KiB.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
        if self.0 < 1024 {
            return write!(f, "{} B", self.0);
        }
        let mut value = self.0 as f64 / 1024.0;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        write!(f, "{value:.1} {}", UNITS[unit])
    }
}

/// A count or offset in the kernel's 512-byte units, as sysfs `start` and `size` report
/// them whatever the disk's logical sector size is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct KernelSectors(pub u64);

impl KernelSectors {
    pub const UNIT: Bytes = Bytes(512);
    pub const fn bytes(self) -> Bytes {
        Bytes(self.0.saturating_mul(Self::UNIT.0))
    }
}

/// A count or offset in the disk's logical sectors (LBA), whose size the partition table
/// carries next to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Sectors(pub u64);

impl Sectors {
    pub const fn bytes(self, sector_size: Bytes) -> Bytes {
        Bytes(self.0.saturating_mul(sector_size.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_uses_binary_units() {
        assert_eq!(Bytes(512).to_string(), "512 B");
        assert_eq!(Bytes::gib(2).to_string(), "2.0 GiB");
        assert_eq!(Bytes::mib(1536).to_string(), "1.5 GiB");
    }

    #[test]
    fn kernel_sectors_are_512_bytes_whatever_the_disk() {
        assert_eq!(KernelSectors(2048).bytes(), Bytes::mib(1));
        assert_eq!(Sectors(2048).bytes(Bytes(4096)), Bytes::mib(8));
    }
}
