//! Typed sizes: bytes, sectors and the sector size that relates them.
//!
//! Sectors and bytes never mix silently: converting between them always names
//! the sector size, and bytes become sectors only when they are aligned or when
//! the caller says which way to round. Arithmetic is checked; an overflow is an
//! error, never a wrap. All three serialise as plain integers.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::RefusalText;

/// Errors from size arithmetic and conversions; [`UnitError::text`] gives the problem and
/// the fix apart, the one line joins them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}", self.text())]
pub enum UnitError {
    UnsupportedSectorSize(u64),
    Misaligned { bytes: u64, sector_size: u32 },
    Overflow(&'static str),
    Underflow(&'static str),
}

impl UnitError {
    /// What is wrong and, where there is one, what to do about it, kept apart.
    pub fn text(&self) -> RefusalText {
        match self {
            UnitError::UnsupportedSectorSize(size) => RefusalText::problem_only(format!(
                "sector size {size} is not supported (use 512 or 4096)"
            )),
            UnitError::Misaligned { bytes, sector_size } => RefusalText::new(
                format!("{bytes} bytes is not a whole number of {sector_size}-byte sectors"),
                "round up or down explicitly".into(),
            ),
            UnitError::Overflow(what) => RefusalText::problem_only(format!(
                "size arithmetic overflowed while computing {what}"
            )),
            UnitError::Underflow(what) => RefusalText::problem_only(format!(
                "size arithmetic went below zero while computing {what}"
            )),
        }
    }
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const TIB: u64 = 1024 * GIB;

/// A count of bytes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Bytes(pub u64);

impl Bytes {
    pub const ZERO: Bytes = Bytes(0);

    pub const fn new(count: u64) -> Self {
        Bytes(count)
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    pub fn from_kib(kib: u64) -> Result<Self, UnitError> {
        kib.checked_mul(KIB).map(Bytes).ok_or(UnitError::Overflow("KiB to bytes"))
    }

    pub fn from_mib(mib: u64) -> Result<Self, UnitError> {
        mib.checked_mul(MIB).map(Bytes).ok_or(UnitError::Overflow("MiB to bytes"))
    }

    pub fn from_gib(gib: u64) -> Result<Self, UnitError> {
        gib.checked_mul(GIB).map(Bytes).ok_or(UnitError::Overflow("GiB to bytes"))
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn checked_add(self, other: Bytes) -> Result<Bytes, UnitError> {
        self.0.checked_add(other.0).map(Bytes).ok_or(UnitError::Overflow("a byte sum"))
    }

    pub fn checked_sub(self, other: Bytes) -> Result<Bytes, UnitError> {
        self.0.checked_sub(other.0).map(Bytes).ok_or(UnitError::Underflow("a byte difference"))
    }

    pub fn checked_mul(self, factor: u64) -> Result<Bytes, UnitError> {
        self.0.checked_mul(factor).map(Bytes).ok_or(UnitError::Overflow("a byte product"))
    }

    /// `self - other`, or zero when `other` is larger: for "how much is missing / in use"
    /// figures where nothing is the right answer (used = total - free).
    pub const fn saturating_sub(self, other: Bytes) -> Bytes {
        Bytes(self.0.saturating_sub(other.0))
    }

    /// `self + other`, capped at `u64::MAX`: for totals that are only compared, never written.
    pub const fn saturating_add(self, other: Bytes) -> Bytes {
        Bytes(self.0.saturating_add(other.0))
    }

    /// Sum of many sizes, failing on overflow.
    pub fn checked_sum<I: IntoIterator<Item = Bytes>>(sizes: I) -> Result<Bytes, UnitError> {
        sizes.into_iter().try_fold(Bytes::ZERO, Bytes::checked_add)
    }

    /// True when this is a whole number of `sector_size` sectors.
    pub fn is_aligned_to(self, sector_size: SectorSize) -> bool {
        self.0.is_multiple_of(sector_size.bytes_per_sector())
    }

    /// Exact conversion: fails unless the byte count is sector-aligned.
    pub fn to_sectors(self, sector_size: SectorSize) -> Result<Sectors, UnitError> {
        if !self.is_aligned_to(sector_size) {
            return Err(UnitError::Misaligned { bytes: self.0, sector_size: sector_size.get() });
        }
        Ok(Sectors(self.0 / sector_size.bytes_per_sector()))
    }

    /// The number of sectors needed to hold these bytes (a partial sector counts whole).
    pub fn to_sectors_round_up(self, sector_size: SectorSize) -> Sectors {
        Sectors(self.0.div_ceil(sector_size.bytes_per_sector()))
    }

    /// The number of whole sectors within these bytes (a partial sector is dropped).
    pub fn to_sectors_round_down(self, sector_size: SectorSize) -> Sectors {
        Sectors(self.0 / sector_size.bytes_per_sector())
    }

    /// Human form with binary units: `512 B`, `40 MiB`, `13.99 GiB`.
    pub fn human(self) -> String {
        let units = [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")];
        for (size, name) in units {
            if self.0 >= size {
                return if self.0.is_multiple_of(size) {
                    format!("{} {name}", self.0 / size)
                } else {
                    // Two decimals, truncated so that a size never reads larger than it is.
                    let hundredths = (self.0 as u128 * 100) / size as u128;
                    format!("{}.{:02} {name}", hundredths / 100, hundredths % 100)
                };
            }
        }
        format!("{} B", self.0)
    }
}

/// [`Bytes::rounded`]: binary units with one decimal, rounded (`2.0 GiB`, `1.5 GiB`); exact
/// below 1 KiB (`512 B`). The stager's checks and download messages print sizes this way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundedBytes(Bytes);

impl Bytes {
    /// The one-decimal form the stager's checks print; `{}` on `Bytes` itself never rounds up.
    pub const fn rounded(self) -> RoundedBytes {
        RoundedBytes(self)
    }
}

impl fmt::Display for RoundedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
        let bytes = self.0 .0;
        if bytes < KIB {
            return write!(f, "{bytes} B");
        }
        let mut value = bytes as f64 / KIB as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        write!(f, "{value:.1} {}", UNITS[unit])
    }
}

impl fmt::Display for Bytes {
    /// `{}` prints the human form; `{:#}` adds the exact count: `40 MiB (41943040 bytes)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() && self.0 >= KIB {
            write!(f, "{} ({} bytes)", self.human(), self.0)
        } else {
            f.write_str(&self.human())
        }
    }
}

/// A count of sectors. Meaningless without a [`SectorSize`]; convert with [`Sectors::to_bytes`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Sectors(pub u64);

impl Sectors {
    pub const ZERO: Sectors = Sectors(0);

    pub const fn new(count: u64) -> Self {
        Sectors(count)
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn to_bytes(self, sector_size: SectorSize) -> Result<Bytes, UnitError> {
        self.0
            .checked_mul(sector_size.bytes_per_sector())
            .map(Bytes)
            .ok_or(UnitError::Overflow("sectors to bytes"))
    }

    pub fn checked_add(self, other: Sectors) -> Result<Sectors, UnitError> {
        self.0.checked_add(other.0).map(Sectors).ok_or(UnitError::Overflow("a sector sum"))
    }

    pub fn checked_sub(self, other: Sectors) -> Result<Sectors, UnitError> {
        self.0.checked_sub(other.0).map(Sectors).ok_or(UnitError::Underflow("a sector difference"))
    }

    /// True when this sector number is a multiple of `alignment` sectors.
    pub fn is_multiple_of(self, alignment: Sectors) -> bool {
        alignment.0 != 0 && self.0.is_multiple_of(alignment.0)
    }
}

impl fmt::Display for Sectors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} sectors", self.0)
    }
}

/// A logical sector size: 512 or 4096 bytes. Any other value is refused when
/// constructed or deserialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct SectorSize(u32);

impl SectorSize {
    pub const S512: SectorSize = SectorSize(512);
    pub const S4096: SectorSize = SectorSize(4096);

    pub fn new(bytes: u64) -> Result<Self, UnitError> {
        match bytes {
            512 => Ok(Self::S512),
            4096 => Ok(Self::S4096),
            other => Err(UnitError::UnsupportedSectorSize(other)),
        }
    }

    pub const fn get(self) -> u32 {
        self.0
    }

    pub const fn bytes_per_sector(self) -> u64 {
        self.0 as u64
    }

    pub const fn as_bytes(self) -> Bytes {
        Bytes(self.0 as u64)
    }
}

impl TryFrom<u64> for SectorSize {
    type Error = UnitError;
    fn try_from(bytes: u64) -> Result<Self, UnitError> {
        SectorSize::new(bytes)
    }
}

impl From<SectorSize> for u64 {
    fn from(size: SectorSize) -> u64 {
        size.bytes_per_sector()
    }
}

impl fmt::Display for SectorSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} B/sector", self.0)
    }
}

/// A run of sectors on one disk: `[start, start + len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Extent {
    pub start: Sectors,
    pub len: Sectors,
}

impl Extent {
    pub const fn new(start: Sectors, len: Sectors) -> Self {
        Extent { start, len }
    }

    /// First sector after the extent.
    pub fn end(&self) -> Result<Sectors, UnitError> {
        self.start.checked_add(self.len)
    }

    /// Last sector inside the extent (`None` when empty), as fdisk prints "End".
    pub fn last(&self) -> Option<Sectors> {
        self.len.0.checked_sub(1).and_then(|n| self.start.0.checked_add(n)).map(Sectors)
    }

    /// True when the two extents share at least one sector. Empty extents overlap nothing.
    pub fn overlaps(&self, other: &Extent) -> bool {
        if self.len.is_zero() || other.len.is_zero() {
            return false;
        }
        // Saturating ends keep this total: an extent reaching past u64 cannot be valid anyway.
        let self_end = self.start.0.saturating_add(self.len.0);
        let other_end = other.start.0.saturating_add(other.len.0);
        self.start.0 < other_end && other.start.0 < self_end
    }

    /// True when every sector of `inner` lies within `self`.
    pub fn contains(&self, inner: &Extent) -> bool {
        match (self.end(), inner.end()) {
            (Ok(outer_end), Ok(inner_end)) => inner.start >= self.start && inner_end <= outer_end,
            _ => false,
        }
    }
}

impl fmt::Display for Extent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.last() {
            Some(last) => {
                write!(f, "sectors {}..={} ({} sectors)", self.start.0, last.0, self.len.0)
            }
            None => write!(f, "empty at sector {}", self.start.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sectors_to_bytes_uses_the_sector_size() {
        assert_eq!(Sectors(2048).to_bytes(SectorSize::S512).unwrap(), Bytes(1_048_576));
        assert_eq!(Sectors(2048).to_bytes(SectorSize::S4096).unwrap(), Bytes(8_388_608));
    }

    #[test]
    fn sectors_to_bytes_overflow_is_an_error() {
        assert_eq!(
            Sectors(u64::MAX / 256).to_bytes(SectorSize::S512),
            Err(UnitError::Overflow("sectors to bytes"))
        );
    }

    #[test]
    fn bytes_to_sectors_requires_alignment() {
        assert_eq!(Bytes(4096).to_sectors(SectorSize::S512).unwrap(), Sectors(8));
        assert_eq!(
            Bytes(4097).to_sectors(SectorSize::S512),
            Err(UnitError::Misaligned { bytes: 4097, sector_size: 512 })
        );
        assert_eq!(
            Bytes(512).to_sectors(SectorSize::S4096),
            Err(UnitError::Misaligned { bytes: 512, sector_size: 4096 })
        );
    }

    #[test]
    fn explicit_rounding_goes_the_named_way() {
        assert_eq!(Bytes(4097).to_sectors_round_up(SectorSize::S512), Sectors(9));
        assert_eq!(Bytes(4097).to_sectors_round_down(SectorSize::S512), Sectors(8));
        assert_eq!(Bytes(4096).to_sectors_round_up(SectorSize::S512), Sectors(8));
        assert_eq!(Bytes(0).to_sectors_round_up(SectorSize::S4096), Sectors(0));
        assert_eq!(Bytes(1).to_sectors_round_up(SectorSize::S4096), Sectors(1));
    }

    #[test]
    fn sector_size_accepts_only_512_and_4096() {
        assert_eq!(SectorSize::new(512).unwrap(), SectorSize::S512);
        assert_eq!(SectorSize::new(4096).unwrap(), SectorSize::S4096);
        assert_eq!(SectorSize::new(1024), Err(UnitError::UnsupportedSectorSize(1024)));
        assert_eq!(SectorSize::new(0), Err(UnitError::UnsupportedSectorSize(0)));
    }

    #[test]
    fn checked_arithmetic_reports_overflow_and_underflow() {
        assert_eq!(Bytes(u64::MAX).checked_add(Bytes(1)), Err(UnitError::Overflow("a byte sum")));
        assert_eq!(Bytes(1).checked_sub(Bytes(2)), Err(UnitError::Underflow("a byte difference")));
        assert_eq!(Sectors(5).checked_sub(Sectors(3)).unwrap(), Sectors(2));
        assert!(Sectors(u64::MAX).checked_add(Sectors(1)).is_err());
        assert_eq!(Bytes::checked_sum([Bytes(1), Bytes(2), Bytes(3)]).unwrap(), Bytes(6));
        assert!(Bytes::checked_sum([Bytes(u64::MAX), Bytes(1)]).is_err());
        assert!(Bytes::from_gib(u64::MAX / 2).is_err());
    }

    #[test]
    fn human_form_picks_the_largest_unit_and_never_rounds_up() {
        assert_eq!(Bytes(0).to_string(), "0 B");
        assert_eq!(Bytes(1023).to_string(), "1023 B");
        assert_eq!(Bytes(4096).to_string(), "4 KiB");
        assert_eq!(Bytes::from_mib(40).unwrap().to_string(), "40 MiB");
        // 14 GiB root from the Project STEM example disk (29358080 sectors of 512 B).
        assert_eq!(
            Sectors(29_358_080).to_bytes(SectorSize::S512).unwrap().to_string(),
            "13.99 GiB"
        );
        assert_eq!(Bytes(GIB + GIB / 2).to_string(), "1.50 GiB");
        assert_eq!(Bytes(2 * GIB - 1).to_string(), "1.99 GiB");
        assert_eq!(format!("{:#}", Bytes::from_mib(40).unwrap()), "40 MiB (41943040 bytes)");
    }

    #[test]
    fn rounded_form_has_one_decimal() {
        assert_eq!(Bytes(512).rounded().to_string(), "512 B");
        assert_eq!(Bytes::from_gib(2).unwrap().rounded().to_string(), "2.0 GiB");
        assert_eq!(Bytes::from_mib(1536).unwrap().rounded().to_string(), "1.5 GiB");
        assert_eq!(Bytes(5).saturating_sub(Bytes(9)), Bytes::ZERO);
        assert_eq!(Bytes(u64::MAX).saturating_add(Bytes(1)), Bytes(u64::MAX));
    }

    #[test]
    fn serde_uses_plain_integers() {
        assert_eq!(serde_json::to_string(&Bytes(42)).unwrap(), "42");
        assert_eq!(serde_json::to_string(&Sectors(7)).unwrap(), "7");
        assert_eq!(serde_json::to_string(&SectorSize::S4096).unwrap(), "4096");
        assert_eq!(serde_json::from_str::<SectorSize>("512").unwrap(), SectorSize::S512);
        let err = serde_json::from_str::<SectorSize>("520").unwrap_err().to_string();
        assert!(err.contains("sector size 520 is not supported"), "{err}");
    }

    #[test]
    fn extents_overlap_and_contain() {
        let root = Extent::new(Sectors(2048), Sectors(29_358_080));
        let swap = Extent::new(Sectors(29_362_176), Sectors(4_190_208));
        assert!(!root.overlaps(&swap));
        assert!(!swap.overlaps(&root));
        let touching = Extent::new(Sectors(2048 + 29_358_080), Sectors(10));
        assert!(!root.overlaps(&touching), "adjacent extents do not overlap");
        let one_in = Extent::new(Sectors(2048 + 29_358_079), Sectors(10));
        assert!(root.overlaps(&one_in));
        assert!(root.contains(&Extent::new(Sectors(2048), Sectors(8192))));
        assert!(!root.contains(&one_in));
        assert!(!root.overlaps(&Extent::new(Sectors(4096), Sectors(0))));
        assert_eq!(root.last(), Some(Sectors(29_360_127)), "matches fdisk's End column");
        assert_eq!(root.to_string(), "sectors 2048..=29360127 (29358080 sectors)");
    }
}
