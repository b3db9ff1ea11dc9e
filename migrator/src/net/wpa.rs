//! wpa_supplicant.conf `network={...}` blocks.

use super::keyfile::from_hex;
use super::warning::Warning;
use super::wifi::{Psk, Security, Wifi};
use std::path::Path;

/// Every `network={...}` block of a wpa_supplicant.conf, converted or warned about.
pub(crate) fn parse(text: &str, source: &Path, warnings: &mut Vec<Warning>) -> Vec<Wifi> {
    let mut found = Vec::new();
    let mut block: Option<Vec<(String, String)>> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
        if compact == "network={" {
            block = Some(Vec::new());
            continue;
        }
        let Some(fields) = block.as_mut() else {
            continue;
        };
        if line == "}" {
            let fields = std::mem::take(fields);
            block = None;
            if let Some(wifi) = convert(&fields, source, warnings) {
                found.push(wifi);
            }
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            fields.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    if block.is_some() {
        warnings.push(Warning::new(source, "a network={ block is not closed; it was skipped"));
    }
    found
}

fn field<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A wpa_supplicant string: `"text"`, `P"printf-escaped"`, or hex digits.
pub(crate) fn string_value(value: &str) -> Option<Vec<u8>> {
    if let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        return Some(inner.as_bytes().to_vec());
    }
    if let Some(inner) = value.strip_prefix("P\"").and_then(|v| v.strip_suffix('"')) {
        return Some(unprintf(inner));
    }
    from_hex(value)
}

fn unprintf(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' || i + 1 == bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let next = bytes[i + 1];
        i += 2;
        match next {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'e' => out.push(0x1b),
            b'x' => {
                let hex: String =
                    text[i..].chars().take(2).take_while(char::is_ascii_hexdigit).collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += hex.len();
                    }
                    Err(_) => out.push(b'x'),
                }
            }
            other => out.push(other),
        }
    }
    out
}

fn convert(
    fields: &[(String, String)],
    source: &Path,
    warnings: &mut Vec<Warning>,
) -> Option<Wifi> {
    let Some(ssid) = field(fields, "ssid").and_then(string_value) else {
        warnings.push(Warning::new(source, "a network block has no readable ssid; skipped"));
        return None;
    };
    let name = String::from_utf8_lossy(&ssid).into_owned();
    let skip = |why: &str, warnings: &mut Vec<Warning>| {
        warnings.push(Warning::new(source, &format!("network {name:?}: {why}; not converted")));
        None
    };
    if field(fields, "disabled") == Some("1") {
        return skip("disabled in wpa_supplicant.conf", warnings);
    }
    if matches!(field(fields, "mode"), Some("1" | "2" | "5")) {
        return skip("ad-hoc, access point or mesh mode, not a client network", warnings);
    }
    let key_mgmt: Vec<&str> =
        field(fields, "key_mgmt").unwrap_or("WPA-PSK WPA-EAP").split_whitespace().collect();
    let psk = field(fields, "psk");
    let sae_password = field(fields, "sae_password").and_then(string_value);
    let security = if key_mgmt.contains(&"NONE") {
        match field(fields, "wep_key0") {
            Some(key) => wep(key)?,
            None => Security::Open,
        }
    } else if key_mgmt.iter().any(|k| k.starts_with("WPA-PSK") || *k == "FT-PSK") && psk.is_some() {
        Security::WpaPsk(psk_value(psk.unwrap_or_default())?)
    } else if key_mgmt.contains(&"SAE") && (psk.is_some() || sae_password.is_some()) {
        let secret = match sae_password {
            Some(p) => p,
            None => string_value(psk.unwrap_or_default()).unwrap_or_default(),
        };
        Security::Sae(String::from_utf8_lossy(&secret).into_owned())
    } else if key_mgmt.iter().any(|k| k.contains("EAP") || *k == "IEEE8021X") {
        return skip(
            "WPA-Enterprise (EAP) needs certificates and identities that are not migrated",
            warnings,
        );
    } else {
        return skip(&format!("key_mgmt {} without a usable secret", key_mgmt.join(" ")), warnings);
    };
    let mut wifi = Wifi::new(ssid, security, source.to_path_buf());
    wifi.hidden = field(fields, "scan_ssid") == Some("1");
    wifi.priority = field(fields, "priority").and_then(|p| p.parse().ok());
    Some(wifi)
}

/// `psk="passphrase"` or `psk=<64 hex digits>`.
fn psk_value(value: &str) -> Option<Psk> {
    if let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        return Some(Psk::Passphrase(inner.to_string()));
    }
    Some(Psk::Raw(value.to_ascii_lowercase()))
}

/// `wep_key0="ascii"` or hex digits.
fn wep(value: &str) -> Option<Security> {
    if let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        return Some(Security::Wep { key: inner.to_string(), passphrase: false });
    }
    Some(Security::Wep { key: value.to_ascii_lowercase(), passphrase: false })
}
