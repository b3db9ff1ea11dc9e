//! resinOS 1.x `config.json`: `wifiSsid`/`wifiKey`, and connman provisioning
//! text carried in `files["network/network.config"]`.

use super::connman;
use super::warning::Warning;
use super::wifi::{Psk, Security, Wifi};
use serde_json::Value;
use std::path::Path;

pub(crate) fn parse(text: &str, source: &Path, warnings: &mut Vec<Warning>) -> Vec<Wifi> {
    let json: Value = match serde_json::from_str(text) {
        Ok(json) => json,
        Err(e) => {
            warnings.push(Warning::new(
                source,
                &format!("not valid JSON ({e}); its WiFi settings were not read"),
            ));
            return Vec::new();
        }
    };
    let mut found = Vec::new();
    if let Some(ssid) = json.get("wifiSsid").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        let security = match json.get("wifiKey").and_then(Value::as_str).filter(|k| !k.is_empty()) {
            None => Security::Open,
            Some(key) if key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Security::WpaPsk(Psk::Raw(key.to_ascii_lowercase()))
            }
            Some(key) => Security::WpaPsk(Psk::Passphrase(key.to_string())),
        };
        found.push(Wifi::new(ssid.as_bytes().to_vec(), security, source.to_path_buf()));
    }
    let files = json.get("files").and_then(Value::as_object);
    for (name, content) in files.into_iter().flatten() {
        if let (true, Some(text)) = (name.ends_with(".config"), content.as_str()) {
            found.extend(connman::parse_config(text, source, warnings));
        }
    }
    found
}
