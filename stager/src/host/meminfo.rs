//! `/proc/meminfo`: how much memory the host has and how much swap is in use.

use super::error::{HostError, ParseError};
use super::root::HostRoot;
use plan::Bytes;
use serde::Serialize;
use std::collections::HashMap;

pub const PATH: &str = "/proc/meminfo";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemInfo {
    pub total: Bytes,
    /// `MemAvailable`; on kernels before 3.14 (Ubuntu 14.04's 3.13) it does not exist and
    /// is estimated as `MemFree + Buffers + Cached`.
    pub available: Bytes,
    pub available_is_estimate: bool,
    pub swap_total: Bytes,
    pub swap_free: Bytes,
}

impl MemInfo {
    pub fn swap_used(&self) -> Bytes {
        self.swap_total.saturating_sub(self.swap_free)
    }

    /// What stays available once swap is turned off: every swapped-out page must come back
    /// into RAM first.
    pub fn available_without_swap(&self) -> Bytes {
        self.available.saturating_sub(self.swap_used())
    }
}

/// Parses meminfo. Values with the `kB` unit are KiB (the kernel writes `kB` but means
/// 1024 bytes); values without a unit are plain counts.
pub fn parse(text: &str) -> Result<MemInfo, ParseError> {
    let mut values: HashMap<&str, Bytes> = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let Some(number) = parts.next() else {
            continue;
        };
        let number: u64 = number
            .parse()
            .map_err(|_| ParseError::new(index + 1, format!("`{}` is not a number", number)))?;
        let value = match parts.next() {
            Some("kB") => Bytes::from_kib(number).map_err(|_| {
                ParseError::new(
                    index + 1,
                    format!("{key}: {number} kB does not fit in 64 bits of bytes"),
                )
            })?,
            Some(unit) => {
                return Err(ParseError::new(index + 1, format!("unknown unit `{unit}` for {key}")));
            }
            None => Bytes(number),
        };
        values.insert(key.trim(), value);
    }
    let need = |key: &str| {
        values.get(key).copied().ok_or_else(|| ParseError::new(0, format!("{key} is missing")))
    };
    let (available, available_is_estimate) = match values.get("MemAvailable") {
        Some(available) => (*available, false),
        None => (
            need("MemFree")?
                .saturating_add(values.get("Buffers").copied().unwrap_or_default())
                .saturating_add(values.get("Cached").copied().unwrap_or_default()),
            true,
        ),
    };
    Ok(MemInfo {
        total: need("MemTotal")?,
        available,
        available_is_estimate,
        swap_total: need("SwapTotal")?,
        swap_free: need("SwapFree")?,
    })
}

pub fn read(root: &HostRoot) -> Result<MemInfo, HostError> {
    let text = root.read_to_string(PATH)?;
    parse(&text).map_err(|source| HostError::Parse { path: root.path(PATH), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_kib() {
        let m = parse("MemTotal: 2048 kB\nMemFree: 1024 kB\nMemAvailable: 1536 kB\nSwapTotal: 1024 kB\nSwapFree: 512 kB\nHugePages_Total: 0\n").unwrap();
        assert_eq!(m.total, Bytes::from_mib(2).unwrap());
        assert_eq!(m.swap_used(), Bytes::from_kib(512).unwrap());
        assert_eq!(m.available_without_swap(), Bytes::from_mib(1).unwrap());
        assert!(!m.available_is_estimate);
    }

    #[test]
    fn missing_total_is_an_error() {
        assert!(parse("MemFree: 1 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n").is_err());
    }
}
