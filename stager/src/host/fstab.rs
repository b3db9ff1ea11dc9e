//! `/etc/fstab`: how the host finds its swap again at boot (UUID=, LABEL=, or a path).

use super::error::{HostError, ParseError};
use super::escape::unescape_octal;
use super::root::HostRoot;
use serde::Serialize;

pub const PATH: &str = "/etc/fstab";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", content = "value", rename_all = "lowercase")]
pub enum FsSpec {
    Uuid(String),
    Label(String),
    PartUuid(String),
    PartLabel(String),
    Path(String),
}

impl FsSpec {
    fn parse(field: &str) -> FsSpec {
        let value = |v: &str| unescape_octal(v.trim_matches('"'));
        if let Some(v) = field.strip_prefix("UUID=") {
            FsSpec::Uuid(value(v).to_ascii_lowercase())
        } else if let Some(v) = field.strip_prefix("LABEL=") {
            FsSpec::Label(value(v))
        } else if let Some(v) = field.strip_prefix("PARTUUID=") {
            FsSpec::PartUuid(value(v).to_ascii_lowercase())
        } else if let Some(v) = field.strip_prefix("PARTLABEL=") {
            FsSpec::PartLabel(value(v))
        } else {
            FsSpec::Path(value(field))
        }
    }
}

impl std::fmt::Display for FsSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FsSpec::Uuid(v) => write!(f, "UUID={v}"),
            FsSpec::Label(v) => write!(f, "LABEL={v}"),
            FsSpec::PartUuid(v) => write!(f, "PARTUUID={v}"),
            FsSpec::PartLabel(v) => write!(f, "PARTLABEL={v}"),
            FsSpec::Path(v) => f.write_str(v),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FstabEntry {
    pub spec: FsSpec,
    pub mount_point: String,
    pub fs_type: String,
    pub options: Vec<String>,
}

impl FstabEntry {
    pub fn is_swap(&self) -> bool {
        self.fs_type == "swap"
    }
}

pub fn parse(text: &str) -> Result<Vec<FstabEntry>, ParseError> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 3 {
            return Err(ParseError::new(
                index + 1,
                format!("`{line}` needs at least a device, a mount point and a type"),
            ));
        }
        entries.push(FstabEntry {
            spec: FsSpec::parse(fields[0]),
            mount_point: unescape_octal(fields[1]),
            fs_type: fields[2].to_string(),
            options: fields
                .get(3)
                .map(|o| o.split(',').map(str::to_string).collect())
                .unwrap_or_else(|| vec!["defaults".to_string()]),
        });
    }
    Ok(entries)
}

pub fn swap_entries(entries: &[FstabEntry]) -> impl Iterator<Item = &FstabEntry> {
    entries.iter().filter(|e| e.is_swap())
}

pub fn read(root: &HostRoot) -> Result<Vec<FstabEntry>, HostError> {
    let text = root.read_to_string(PATH)?;
    parse(&text).map_err(|source| HostError::Parse { path: root.path(PATH), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_lines_are_errors() {
        assert_eq!(parse("# c\n/dev/sda1 /\n").unwrap_err().line, 2);
    }

    #[test]
    fn specs_by_kind() {
        let e = parse(
            "UUID=ABC none swap sw 0 0\nLABEL=my\\040swap none swap\n/dev/sda5 none swap sw\n",
        )
        .unwrap();
        assert_eq!(e[0].spec, FsSpec::Uuid("abc".into()));
        assert_eq!(e[1].spec, FsSpec::Label("my swap".into()));
        assert_eq!(e[1].options, vec!["defaults"]);
        assert_eq!(e[2].spec, FsSpec::Path("/dev/sda5".into()));
    }
}
