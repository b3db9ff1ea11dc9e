//! `/proc/swaps`: the active swap areas, partitions or files.

use super::error::{HostError, ParseError};
use super::escape::unescape_octal;
use super::root::HostRoot;
use plan::Bytes;
use serde::Serialize;

pub const PATH: &str = "/proc/swaps";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SwapKind {
    Partition,
    File,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwapArea {
    /// As the kernel names it: `/dev/sda5`, `/dev/dm-1`, `/swapfile`.
    pub path: String,
    pub kind: SwapKind,
    /// Usable swap space (the partition minus the header page).
    pub size: Bytes,
    pub used: Bytes,
    pub priority: i32,
}

/// Parses `/proc/swaps`; sizes there are in KiB.
pub fn parse(text: &str) -> Result<Vec<SwapArea>, ParseError> {
    let mut areas = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        if line.trim().is_empty() || (index == 0 && line.starts_with("Filename")) {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 5 {
            return Err(ParseError::new(line_number, format!("expected 5 fields in `{line}`")));
        }
        // A deleted swap file is listed as `/path\040(deleted)`; the escape keeps it one field.
        let kib = |i: usize| {
            fields[i].parse::<u64>().ok().and_then(|kib| Bytes::from_kib(kib).ok()).ok_or_else(
                || ParseError::new(line_number, format!("`{}` is not a size in KiB", fields[i])),
            )
        };
        areas.push(SwapArea {
            path: unescape_octal(fields[0]),
            kind: match fields[1] {
                "partition" => SwapKind::Partition,
                "file" => SwapKind::File,
                other => SwapKind::Other(other.to_string()),
            },
            size: kib(2)?,
            used: kib(3)?,
            priority: fields[4].parse().map_err(|_| {
                ParseError::new(line_number, format!("`{}` is not a priority", fields[4]))
            })?,
        });
    }
    Ok(areas)
}

pub fn read(root: &HostRoot) -> Result<Vec<SwapArea>, HostError> {
    let text = root.read_to_string(PATH)?;
    parse(&text).map_err(|source| HostError::Parse { path: root.path(PATH), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_only_means_no_swap() {
        assert!(parse("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n").unwrap().is_empty());
    }

    #[test]
    fn rejects_a_non_numeric_size() {
        let err =
            parse("Filename Type Size Used Priority\n/dev/sda5 partition big 0 -2\n").unwrap_err();
        assert_eq!(err.line, 2);
    }
}
