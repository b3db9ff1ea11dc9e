//! GLib key files as NetworkManager reads them: groups of `key=value`, values
//! escaped (`\s \n \t \r \\`), byte strings as `;`-separated integers.

use sha2::{Digest, Sha256};

/// One `[group]` and its entries in file order; values are kept escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    pub name: String,
    pub entries: Vec<(String, String)>,
}

impl Group {
    pub fn new(name: &str) -> Group {
        Group { name: name.to_string(), entries: Vec::new() }
    }

    /// Raw (still escaped) value of `key`.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Unescaped value of `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        self.raw(key).map(unescape)
    }

    /// Set `key` to an already escaped value, replacing it in place or appending.
    pub fn set_raw(&mut self, key: &str, value: String) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
    }

    /// Set `key` to a plain string (escaped here).
    pub fn set(&mut self, key: &str, value: &str) {
        self.set_raw(key, escape(value));
    }

    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(k, _)| k != key);
        before != self.entries.len()
    }
}

/// Parse a key file. Comments (`#`) and blank lines are dropped; lines that are
/// neither a group header nor `key=value` are ignored. Whitespace around `=` is
/// trimmed, as GLib and connman do.
pub(crate) fn parse(text: &str) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.trim_end().strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            groups.push(Group::new(name.trim()));
            continue;
        }
        let (Some(group), Some((key, value))) = (groups.last_mut(), line.split_once('=')) else {
            continue;
        };
        group.entries.push((key.trim().to_string(), value.trim_start().to_string()));
    }
    groups
}

pub(crate) fn render(groups: &[Group]) -> String {
    let mut out = String::new();
    for (i, group) in groups.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("[{}]\n", group.name));
        for (key, value) in &group.entries {
            out.push_str(&format!("{key}={value}\n"));
        }
    }
    out
}

/// Escape a string value: backslash, control characters, and spaces at either end.
pub(crate) fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ' ' if i == 0 || i == last => out.push_str("\\s"),
            c => out.push(c),
        }
    }
    out
}

/// Undo `escape` (and NetworkManager's `\;`); trailing whitespace is not part of a value.
pub(crate) fn unescape(raw: &str) -> String {
    let raw = raw.trim_end_matches([' ', '\t']);
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('s') => out.push(' '),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// An SSID as NetworkManager's keyfile plugin accepts it: plain text when it is
/// printable UTF-8 without `;`, else the byte list form `104;105;`.
pub(crate) fn encode_ssid(ssid: &[u8]) -> String {
    match std::str::from_utf8(ssid) {
        Ok(text) if !text.contains(';') && !text.chars().any(char::is_control) => escape(text),
        _ => ssid.iter().map(|b| format!("{b};")).collect(),
    }
}

/// Read an SSID value in either form.
pub(crate) fn decode_ssid(raw: &str) -> Vec<u8> {
    let trimmed = raw.trim();
    let is_list = trimmed.contains(';')
        && trimmed.split(';').filter(|p| !p.is_empty()).all(|p| p.trim().parse::<u8>().is_ok());
    if is_list {
        trimmed.split(';').filter_map(|p| p.trim().parse::<u8>().ok()).collect()
    } else {
        unescape(raw).into_bytes()
    }
}

/// A stable UUID for a name: SHA-256 of a namespace and the name, laid out as an
/// RFC 9562 version 8 (custom) UUID. Same input, same UUID, on every run.
pub(crate) fn stable_uuid(kind: &str, name: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"swapover-networkmanager-connection\0");
    hasher.update(kind.as_bytes());
    hasher.update([0]);
    hasher.update(name);
    let digest = hasher.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Decode a hex string (any case, even length) into bytes.
pub(crate) fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.is_empty()
        || !text.len().is_multiple_of(2)
        || !text.bytes().all(|c| c.is_ascii_hexdigit())
    {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}
