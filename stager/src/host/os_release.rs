//! `/etc/os-release`: which distribution and version the host runs.

use super::error::HostError;
use super::root::HostRoot;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OsRelease {
    /// `ID`, lower case; `linux` when the file leaves it out (as the specification says).
    pub id: String,
    /// `ID_LIKE`, split on spaces.
    pub id_like: Vec<String>,
    pub version_id: Option<String>,
    pub pretty_name: Option<String>,
    pub version_codename: Option<String>,
}

/// A `VERSION_ID` such as `14.04` or `12`, compared numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct OsVersion {
    pub major: u32,
    pub minor: u32,
}

impl std::fmt::Display for OsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:02}", self.major, self.minor)
    }
}

impl OsRelease {
    pub fn version(&self) -> Option<OsVersion> {
        let text = self.version_id.as_deref()?;
        let mut parts = text.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = match parts.next() {
            Some(minor) => minor.parse().ok()?,
            None => 0,
        };
        Some(OsVersion { major, minor })
    }

    /// True when `ID` or one of `ID_LIKE` is `id`.
    pub fn is_like(&self, id: &str) -> bool {
        self.id == id || self.id_like.iter().any(|like| like == id)
    }

    /// `PRETTY_NAME`, or `ID VERSION_ID` when the file has none.
    pub fn display_name(&self) -> String {
        match &self.pretty_name {
            Some(name) => name.clone(),
            None => format!("{} {}", self.id, self.version_id.as_deref().unwrap_or(""))
                .trim()
                .to_string(),
        }
    }
}

/// Parses os-release text. Lines that are not `KEY=value` are ignored, as the
/// specification asks readers to do.
pub fn parse(text: &str) -> OsRelease {
    let mut release = OsRelease {
        id: "linux".to_string(),
        id_like: Vec::new(),
        version_id: None,
        pretty_name: None,
        version_codename: None,
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, raw)) = line.split_once('=') else {
            continue;
        };
        let value = unquote(raw.trim());
        match key.trim() {
            "ID" => release.id = value.to_ascii_lowercase(),
            "ID_LIKE" => release.id_like = value.split_whitespace().map(str::to_string).collect(),
            "VERSION_ID" => release.version_id = Some(value),
            "PRETTY_NAME" => release.pretty_name = Some(value),
            "VERSION_CODENAME" => release.version_codename = Some(value),
            _ => {}
        }
    }
    release
}

/// Shell-style value: `"..."` with backslash escapes, `'...'` literal, or bare.
fn unquote(raw: &str) -> String {
    if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(escaped) = chars.next() {
                    out.push(escaped);
                }
            } else {
                out.push(c);
            }
        }
        out
    } else if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        inner.to_string()
    } else {
        raw.to_string()
    }
}

/// Reads `/etc/os-release`, falling back to `/usr/lib/os-release`.
pub fn read(root: &HostRoot) -> Result<OsRelease, HostError> {
    match root.read_to_string("/etc/os-release") {
        Ok(text) => Ok(parse(&text)),
        Err(first) => match root.read_to_string("/usr/lib/os-release") {
            Ok(text) => Ok(parse(&text)),
            Err(_) => Err(first),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_escapes() {
        let r = parse("ID=\"Ubuntu\"\nPRETTY_NAME=\"A \\\"quoted\\\" name\"\nVERSION_ID='14.04'\nnot a pair\n");
        assert_eq!(r.id, "ubuntu");
        assert_eq!(r.pretty_name.as_deref(), Some("A \"quoted\" name"));
        assert_eq!(r.version(), Some(OsVersion { major: 14, minor: 4 }));
    }

    #[test]
    fn missing_id_means_linux() {
        assert_eq!(parse("NAME=x\n").id, "linux");
        assert_eq!(parse("VERSION_ID=rolling").version(), None);
    }
}
